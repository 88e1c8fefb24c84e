"""apply is idempotent, plan changes nothing, one changed pool reloads alone
and no request fails meanwhile."""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path

from phphost import layout
from phphost.facts.gather import read_programs, running_launchers
from phphost.fastcgi.status import fpm_status
from phphost.spec.model import Model
from tests.integration import hostkit
from tests.integration.conftest import DEMO
from tests.integration.hostkit import get, master_pids, phphost


def test_second_apply_and_plan_report_no_changes(demo: Model) -> None:
    before = hostkit.snapshot()
    again = phphost("apply", str(DEMO))
    assert "No changes" in again.stdout
    plan = phphost("plan", str(DEMO), check=False)
    assert plan.returncode == 0 and "No changes" in plan.stdout
    assert hostkit.snapshot() == before


def test_plan_changes_nothing_on_the_host(demo: Model, spec_dir: Path, demo_text: str) -> None:
    pool = demo.pools[0].name
    spec = hostkit.write_spec(spec_dir, "more.toml",
                              hostkit.set_pool_key(demo_text, f"pools.{pool}", "max_requests",
                                                   "777"))
    before = hostkit.snapshot()
    plan = phphost("plan", spec, check=False)
    assert plan.returncode == 10, plan.stdout + plan.stderr
    assert "pm.max_requests = 777" in plan.stdout
    assert hostkit.snapshot() == before


class Load:
    """A bounded load generator: GETs against one site until stopped (max 60 s)."""

    def __init__(self, host: str, path: str) -> None:
        self.host, self.path = host, path
        self.ok = 0
        self.failures: list[str] = []
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self.run) for _ in range(4)]

    def run(self) -> None:
        deadline = time.monotonic() + 60
        while not self.stop.is_set() and time.monotonic() < deadline:
            try:
                status, _, body = get(self.host, self.path)
                if status == 200:
                    self.ok += 1
                else:
                    self.failures.append(f"{status} {body[:80]}")
            except OSError as err:
                self.failures.append(repr(err))

    def __enter__(self) -> Load:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join()


def test_changing_one_pool_reloads_only_its_master(demo: Model, spec_dir: Path,
                                                   demo_text: str) -> None:
    target = demo.pools[0]
    other_site = next(s for s in demo.sites if s.php and s.pool != target.name
                      and all(r.pool != target.name for r in s.routes))
    pids = master_pids()
    started = fpm_status(target.socket).start_time
    new_max = target.settings.max_children + 1
    spec = hostkit.write_spec(spec_dir, "bigger.toml", hostkit.set_pool_key(
        demo_text, f"pools.{target.name}", "max_children", str(new_max)))
    with Load(other_site.server_name, "/index.php") as load:
        time.sleep(0.5)
        out = phphost("apply", spec)
        time.sleep(0.5)
    assert not load.failures, load.failures[:5]
    assert load.ok > 20
    assert f"reload FPM master of pool {target.name}" in out.stdout
    after = master_pids()
    assert after == pids, "a master was restarted (pids changed)"
    assert fpm_status(target.socket).start_time != started, "the changed master was not reloaded"
    for pool in demo.pools:
        if pool.name != target.name:
            assert f"master of pool {pool.name}" not in out.stdout
    phphost("apply", str(DEMO))


def test_a_stopped_master_is_seen_and_started_alone(demo: Model) -> None:
    """The plan reads which pools' programs run from /proc below supervisord
    (facts/gather.py running_launchers), not from supervisord's listing: it agrees with
    that listing, a program stopped through supervisord is the one pool the plan
    starts, and apply starts it."""
    pool = demo.pools[-1].name
    name = hostkit.program(pool)
    sup = ["supervisorctl", "-c", layout.SUPERVISOR_MAIN_CONF]
    subprocess.run([*sup, "stop", name], check=True, capture_output=True)
    try:
        found, up = running_launchers()
        listed, _ = read_programs()
        pools = {hostkit.program(p.name) for p in demo.pools}     # not the exporter's
        assert up and {n: p.pid for n, p in found.items()} == \
            {n: p.pid for n, p in listed.items() if p.state == "RUNNING" and n in pools}
        assert name not in found and listed[name].state == "STOPPED"
        plan = phphost("plan", str(DEMO), check=False)
        starts = [ln for ln in plan.stdout.splitlines() if ln.startswith("* start FPM master")]
        assert starts == [f"* start FPM master of pool {pool}"], plan.stdout
    finally:
        phphost("apply", str(DEMO))
    assert read_programs()[0][name].state in ("RUNNING", "STARTING")
    assert name in running_launchers()[0]
