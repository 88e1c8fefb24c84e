"""`phphost exporter` on the demo host, scraped by a real Prometheus (Debian's
package, started here on a loopback port with its own config and storage, ended
by pid), under bounded loopback load and a short noisy-neighbour burst; a stuck pool
costs its timeout and a healthy pool killed just before the scrape reaches it
costs one `phphost_scrape_errors` increment, not the scrape;
`phphost top` in a real terminal (tmux) shows every pool and reacts to load."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from phphost import layout
from phphost.errors import FastCGIError
from phphost.facts.gather import fpm_master_pid, read_programs
from phphost.fastcgi.status import fpm_status
from phphost.render.monitor import EXPORTER_PROGRAM
from phphost.spec.model import Model
from tests.integration import hostkit
from tests.integration.test_noisy_neighbour import load_bench

SUPERVISORCTL = ["supervisorctl", "-c", "/etc/supervisor/supervisord.conf"]
FLOOD = "files"
LOADED = ("files", "blog", "search")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def scrape(port: int, timeout: float = 15.0) -> tuple[dict[str, Any], float]:
    """GET /metrics, parsed with prometheus_client's text parser: family -> samples."""
    start = time.monotonic()
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=timeout) as resp:
        assert resp.status == 200
        text = resp.read().decode()
    took = time.monotonic() - start
    return {f.name: f.samples for f in text_string_to_metric_families(text)}, took


def by_pool(samples: list[Any], name: str | None = None) -> dict[str, float]:
    return {s.labels["pool"]: s.value for s in samples if name is None or s.name == name}


# --- the supervised exporter ----------------------------------------------------------------


@pytest.fixture(scope="module")
def exporter(demo: Model) -> int:
    assert demo.exporter is not None
    # apply itself told supervisord about the program (UpdatePrograms)
    programs, _ = read_programs()
    assert EXPORTER_PROGRAM in programs, sorted(programs)
    port = demo.exporter.port
    hostkit.wait_for(lambda: scrape(port)[0].get("phpfpm_up"), timeout=20, interval=0.5)
    return port


def test_exporter_answer_parses_and_names_every_pool(exporter: int, demo: Model) -> None:
    hostkit.wake(demo)      # a worker in every pool: none is left unasked (docs/monitoring.md)
    fams, took = scrape(exporter)
    pools = {p.name for p in demo.pools}
    assert by_pool(fams["phpfpm_up"]) == dict.fromkeys(pools, 1.0)
    for family in ("phpfpm_accepted_connections", "phpfpm_active_processes",
                   "phpfpm_idle_processes", "phpfpm_total_processes",
                   "phpfpm_max_children_reached", "phpfpm_listen_queue",
                   "phpfpm_slow_requests", "phpfpm_start_since", "phphost_master_up",
                   "phphost_apache_inflight_requests", "phphost_scrape_errors",
                   "phphost_jail_built_timestamp_seconds"):
        assert set(by_pool(fams[family])) == pools, family
    assert {s.labels["tenant"] for s in fams["phpfpm_up"]} == {t.name for t in demo.tenants}
    assert fams["phpfpm_process_requests"], "no per-process samples"
    assert {s.labels["pool"] for s in fams["phphost_apache_requests"]} >= {FLOOD}
    assert by_pool(fams["phphost_master_up"]) == dict.fromkeys(pools, 1.0)
    assert took < 5


def fetch_as(uid: int, port: int) -> str:
    """GET /metrics as `uid` (setuid child, loopback): "200", "403"..., or "blocked"
    when the connection itself is refused or reset (a host firewall for pool users)."""
    code = ("import urllib.request,urllib.error\ntry:\n urllib.request.urlopen("
            f"'http://127.0.0.1:{port}/metrics', timeout=10)\n print(200)\n"
            "except urllib.error.HTTPError as e:\n print(e.code)\n"
            "except (urllib.error.URLError, ConnectionError):\n print('blocked')\n")
    proc = subprocess.run(["setpriv", f"--reuid={uid}", "--regid=65534", "--clear-groups",
                           "/usr/bin/python3", "-I", "-c", code],
                          capture_output=True, text=True, timeout=20, check=False)
    return proc.stdout.strip() or proc.stderr


def test_tenant_and_pool_users_are_refused(exporter: int, demo: Model) -> None:
    """A tenant's login and a pool's PHP get 403 from the exporter itself; a pool user
    may instead be stopped before it by a host firewall (an nftables table for pool users)."""
    assert fetch_as(hostkit.uid(demo.tenants[0].user), exporter) == "403"
    assert fetch_as(hostkit.uid(demo.pools[0].user), exporter) in ("403", "blocked")


# --- Prometheus -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def prometheus(exporter: int, tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail("prometheus is not installed: scripts/setup-demo installs it")
    work = tmp_path_factory.mktemp("prometheus")
    (work / "prometheus.yml").write_text(
        "global:\n  scrape_interval: 2s\n  scrape_timeout: 2s\n"
        "scrape_configs:\n  - job_name: phphost\n    static_configs:\n"
        f"      - targets: ['127.0.0.1:{exporter}']\n")
    port = free_port()
    log = (work / "prometheus.log").open("w")
    proc = subprocess.Popen(
        [binary, f"--config.file={work / 'prometheus.yml'}", f"--storage.tsdb.path={work}/data",
         f"--web.listen-address=127.0.0.1:{port}", "--storage.tsdb.retention.time=1h"],
        stdout=log, stderr=subprocess.STDOUT)
    try:
        hostkit.wait_for(lambda: query(port, 'up{job="phphost"} == 1'), timeout=30,
                         interval=0.5)
        yield port
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


def query(port: int, promql: str) -> list[dict[str, Any]]:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    with urllib.request.urlopen(url, timeout=10) as resp:
        body = json.load(resp)
    assert body["status"] == "success", body
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def values(port: int, promql: str) -> dict[str, float]:
    return {r["metric"].get("pool", ""): float(r["value"][1]) for r in query(port, promql)}


def fresh_sample(port: int, promql: str) -> dict[str, float]:
    """Wait until Prometheus has scraped after now, then query."""
    mark = time.time()
    hostkit.wait_for(lambda: query(port, f"timestamp(phphost_scrape_seconds) > {mark}"),
                     timeout=10, interval=0.25)
    return values(port, promql)


def cheap_load(bench: ModuleType, demo: Model, per_site: int = 100) -> dict[str, int]:
    targets = [bench.target(demo, site, bench.CHEAP_SCRIPT) for site in LOADED]
    statuses: dict[str, int] = {}
    with ThreadPoolExecutor(max_workers=2) as pool:    # below every pool's bound: no 503
        for t in targets:
            with bench.placed(t, bench.CHEAP_PHP):
                samples = list(pool.map(
                    lambda _i, t=t: bench.request(t.host, t.path, demo.apache.http_port, 10.0),
                    range(per_site)))
            statuses[t.site] = sum(1 for s in samples if s.status == 200)
    return statuses


def burst(bench: ModuleType, demo: Model, clients: int = 80, seconds: float = 4.0,
          sleep: float = 1.0) -> list[Any]:
    """Bounded flood of the FLOOD site with sleeping requests: its excess gets 503."""
    flood = bench.target(demo, FLOOD, bench.SLEEP_SCRIPT)
    cfg = bench.Config(connections=clients, seconds=seconds, sleep=sleep, think=0.05,
                       timeout=20.0, port=demo.apache.http_port)
    out: list[list[Any]] = [[] for _ in range(clients)]
    with bench.placed(flood, bench.SLEEP_PHP % sleep), ThreadPoolExecutor(clients) as pool:
        deadline = time.monotonic() + seconds
        for samples in out:
            pool.submit(bench.flood_client, flood, cfg, deadline, samples)
    return [s for samples in out for s in samples]


def test_prometheus_sees_every_pool_under_load(prometheus: int, demo: Model) -> None:
    bench = load_bench()
    served = cheap_load(bench, demo)
    assert all(n >= 95 for n in served.values()), served
    # two clients of sleeping requests (below the pool's bound: no 503) for longer
    # than two scrape intervals: some scrape sees workers busy beyond its own ask
    slept = burst(bench, demo, clients=2, seconds=5.0, sleep=0.5)
    assert slept and all(s.status == 200 for s in slept), {s.status for s in slept}
    peak = fresh_sample(prometheus, "max_over_time(phpfpm_active_processes[1m])")
    assert peak.get(FLOOD, 0) > 1, peak
    pools = {p.name for p in demo.pools}
    accepted = fresh_sample(prometheus, "phpfpm_accepted_connections_total")
    assert set(accepted) == pools
    for site in LOADED:
        assert accepted[demo.pool(site).name] >= 100, accepted
    active = values(prometheus, "phpfpm_active_processes")
    assert set(active) == pools and all(v >= 1 for v in active.values())   # the status ask
    rate = values(prometheus, 'sum by (pool) (rate(phpfpm_accepted_connections_total[15s]))')
    assert rate.get(FLOOD, 0) > 0


def test_prometheus_counts_the_burst_503s(prometheus: int, demo: Model) -> None:
    bench = load_bench()
    q503 = f'sum by (pool) (phphost_apache_requests_total{{pool="{FLOOD}",code="503"}})'
    all503 = 'sum by (pool) (phphost_apache_requests_total{code="503"})'
    others_before = fresh_sample(prometheus, all503)
    before = others_before.get(FLOOD, 0.0)
    samples = burst(bench, demo)
    got_503 = sum(1 for s in samples if s.status == 503)
    assert got_503 > 50, {s.status for s in samples}

    def counted() -> bool:
        return values(prometheus, q503).get(FLOOD, 0.0) - before >= got_503

    hostkit.wait_for(counted, timeout=15, interval=0.5)
    time.sleep(2.5)                                    # one more scrape: nothing else comes
    # a client that timed out or lost the connection (status 0) may still have been
    # answered 503 in Apache's log
    lost = sum(1 for s in samples if s.status == 0)
    counted_503 = values(prometheus, q503)[FLOOD] - before
    assert got_503 <= counted_503 <= got_503 + lost, (counted_503, got_503, lost)
    # the other pools got none from the burst
    others = values(prometheus, all503)
    assert {p: v - others_before[p] for p, v in others.items() if p != FLOOD} == {
        p: 0.0 for p in others if p != FLOOD}, (others_before, others)
    assert values(prometheus, "phphost_last_run_success")  # apply ran (runs.json)


# emitted only once pools have cgroups (phphost makes none yet): may be empty
CGROUP_METRICS = ("phphost_pool_memory_bytes", "phphost_pool_cpu_seconds_total")


def test_grafana_dashboard_queries_return_series(prometheus: int, demo: Model) -> None:
    """Every query of examples/grafana-phphost.json is valid PromQL here and, but
    for the cgroup panels, returns at least one series (runs after the load and
    the burst above, so the 503 and per-request panels have data)."""
    dash = json.loads((hostkit.ROOT / "examples" / "grafana-phphost.json").read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    assert len(exprs) > 10
    empty = []
    for expr in exprs:
        result = query(prometheus, expr.replace("$pool", ".*").replace("$__rate_interval", "1m"))
        if not result and not any(m in expr for m in CGROUP_METRICS):
            empty.append(expr)
    assert not empty, empty
    mean = next(e for e in exprs if "phphost_apache_request_seconds_total" in e)
    series = query(prometheus, mean.replace("$pool", ".*").replace("$__rate_interval", "1m"))
    assert all(set(r["metric"]) == {"pool", "tenant"} for r in series), series
    assert {r["metric"]["pool"] for r in series} >= {FLOOD}


# --- one pool stuck or killed mid-scrape ----------------------------------------------------


@pytest.fixture
def own_exporter(demo: Model) -> Iterator[int]:
    """A second exporter of the test's own (no Prometheus scrapes it), ended by pid."""
    port = free_port()
    proc = subprocess.Popen([hostkit.PHPHOST, "exporter", "--listen", f"127.0.0.1:{port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        hostkit.wait_for(lambda: scrape(port)[0], timeout=15, interval=0.25)
        yield port
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)


def occupy(sock_path: str, workers: int) -> list[socket.socket]:
    """Every worker of the pool busy reading a request that never comes."""
    conns = []
    for _ in range(workers):
        c = socket.socket(socket.AF_UNIX)
        c.connect(sock_path)
        conns.append(c)
    return conns


def answers(sock_path: str) -> bool:
    try:
        return fpm_status(sock_path, timeout=1.0) is not None
    except FastCGIError:
        return False


def test_stuck_pool_costs_its_timeout_and_one_error(own_exporter: int, demo: Model) -> None:
    pool = demo.pool("chords")
    assert demo.exporter is not None
    timeout = demo.exporter.pool_timeout
    fams, _ = scrape(own_exporter)
    errors0 = by_pool(fams["phphost_scrape_errors"])
    conns = occupy(pool.socket, pool.settings.max_children)
    try:
        time.sleep(0.5)                                    # ondemand: workers forked
        fams, took = scrape(own_exporter)                  # stuck pool: costs its timeout
        assert took < timeout + 1.5, took
        up = by_pool(fams["phpfpm_up"])
        assert up.pop(pool.name) == 0 and set(up.values()) == {1.0}
        errors1 = by_pool(fams["phphost_scrape_errors"])
        assert errors1 == {**errors0, pool.name: errors0[pool.name] + 1}
    finally:
        for c in conns:
            c.close()
    hostkit.wait_for(lambda: answers(pool.socket), timeout=15, interval=0.2)


def launcher_and_master(pool: str) -> tuple[int, int]:
    """The pool's launcher (supervisord's program) and its master, once the pool answers
    (a socket-activated pool wakes) and supervisord shows the launcher RUNNING."""
    found: dict[str, int] = {}

    def ready() -> bool:
        if not answers(layout.default_socket(pool)):
            return False
        launcher = read_programs()[0][hostkit.program(pool)].pid
        master = fpm_master_pid(launcher) if launcher else None
        if launcher and master:
            found.update(launcher=launcher, master=master)
        return master is not None

    hostkit.wait_for(ready, timeout=15, interval=0.2)
    return found["launcher"], found["master"]


def test_healthy_pool_killed_costs_one_error_not_the_scrape(own_exporter: int,
                                                            demo: Model) -> None:
    """The master of a healthy pool (answering, workers free) is SIGKILLed by pid and
    the exporter scraped before supervisord has the pool back: the scrape answers within
    the per-pool timeout and counts exactly one error for that pool. "Before" is made
    certain, not raced: the pool's launcher is stopped (SIGSTOP, by pid) around the kill
    and the scrape, so it cannot reap the master and exit, and supervisord cannot start
    the next one, until the scrape is over. The dead master stays the launcher's
    (zombie) child, as in the moment after a real crash. A pool that is not
    socket-activated: an activated one comes back asleep at once (its launcher holds the
    socket) and is not asked."""
    pool = demo.pool("blog")
    assert not pool.settings.activated
    assert demo.exporter is not None
    timeout = demo.exporter.pool_timeout
    hostkit.wait_for(lambda: answers(pool.socket), timeout=15, interval=0.2)
    fams, _ = scrape(own_exporter)
    assert set(by_pool(fams["phpfpm_up"]).values()) == {1.0}      # healthy, not stuck
    assert by_pool(fams["phpfpm_active_processes"])[pool.name] <= 1   # only our ask
    errors0 = by_pool(fams["phphost_scrape_errors"])
    launcher, master = launcher_and_master(pool.name)
    os.kill(launcher, signal.SIGSTOP)
    try:
        os.kill(master, signal.SIGKILL)                    # that one master, by pid
        hostkit.wait_for(lambda: not answers(pool.socket), timeout=5, interval=0.05)
        fams, took = scrape(own_exporter)
    finally:
        os.kill(launcher, signal.SIGCONT)
    assert took < timeout, took
    up = by_pool(fams["phpfpm_up"])
    assert up.pop(pool.name) == 0 and set(up.values()) == {1.0}
    assert by_pool(fams["phphost_scrape_errors"]) == {**errors0,
                                                      pool.name: errors0[pool.name] + 1}
    hostkit.wait_for(lambda: answers(pool.socket), timeout=15, interval=0.2)
    fams, _ = scrape(own_exporter)
    assert by_pool(fams["phpfpm_up"])[pool.name] == 1.0
    assert by_pool(fams["phphost_scrape_errors"])[pool.name] == errors0[pool.name] + 1


# --- phphost top in a real terminal ---------------------------------------------------------


TMUX = ["tmux", "-L", "phphost-top-test"]


def capture() -> str:
    return subprocess.run([*TMUX, "capture-pane", "-p", "-t", "top"], capture_output=True,
                          text=True, check=False).stdout


def files_row(text: str) -> list[str]:
    return next((ln.split() for ln in text.splitlines() if ln.split()[:1] == [FLOOD]), [])


def test_top_in_tmux_shows_every_pool_and_reacts(demo: Model) -> None:
    if shutil.which("tmux") is None:
        pytest.fail("tmux is not installed: scripts/setup-demo installs it")
    subprocess.run([*TMUX, "new-session", "-d", "-s", "top", "-x", "100", "-y", "30",
                    f"{hostkit.PHPHOST} top --interval 1"], check=True)
    subprocess.run([*TMUX, "resize-window", "-t", "top", "-x", "100", "-y", "30"],
                   capture_output=True, check=False)
    try:
        def all_running() -> bool:     # the kill test above may have just restarted one
            text = capture()
            return all(f"\n{p.name} " in text for p in demo.pools) and "STARTING" not in text

        hostkit.wait_for(all_running, timeout=20, interval=0.5)
        idle = capture()
        subprocess.run([*TMUX, "send-keys", "-t", "top", "e"], check=True)   # sort by 503/s
        bench = load_bench()
        seen: list[str] = []
        worker = threading.Thread(target=burst, args=(bench, demo),
                                  kwargs={"clients": 60, "seconds": 5.0})
        worker.start()

        def busy_or_refusing() -> bool:
            row = files_row(capture())
            seen.append(capture())
            # columns: pool tenant state pm busy idle max queue req/s slow 503/s mem
            # (its busy column may be "-": FPM answers its status page from a worker too)
            return len(row) == 12 and row[10] not in ("-", "0.0")

        hostkit.wait_for(busy_or_refusing, timeout=12, interval=0.5)
        loaded = seen[-1]
        worker.join()
        subprocess.run([*TMUX, "send-keys", "-t", "top", "q"], check=True)
        hostkit.wait_for(lambda: subprocess.run([*TMUX, "has-session", "-t", "top"],
                                                capture_output=True).returncode != 0, 5)
    finally:
        subprocess.run([*TMUX, "kill-server"], capture_output=True, check=False)
    assert "503/sv" in loaded, loaded
    first = next(ln for ln in loaded.splitlines()[2:] if ln.strip())
    assert first.split()[0] == FLOOD, loaded           # sorted by 503/s: the flooded pool
    out = os.environ.get("PHPHOST_TOP_CAPTURE")
    if out:
        Path(out).write_text(f"--- idle ---\n{idle}\n--- under the burst ---\n{loaded}\n")
