"""Pools' own logs on the demo host: a slow request in a jailed pool is traced
into POOL.slow.log by its master and counted by `phpfpm_slow_requests` (exporter,
`phphost top --json`); `logrotate -f` on /etc/logrotate.d/phphost rotates every
pool's FPM log, each master reopens it (USR1 through supervisord and the launcher)
and writes to the new files afterwards (FPM opens the slow log per trace)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from phphost import layout
from phphost.facts.gather import fpm_master_pid, read_programs
from phphost.fastcgi.status import fpm_status
from phphost.spec.model import Model
from tests.integration import hostkit
from tests.integration.test_noisy_neighbour import load_bench

SLOW_POOL = "search"          # jailed (chroot + PID namespace), ondemand
SLOW_SCRIPT = "phphost-slow-probe.php"
SLOW_FUNCTION = "phphost_slow_probe"


def slow_php(seconds: float) -> str:
    return (f"<?php\nfunction {SLOW_FUNCTION}($s) {{ usleep((int)($s * 1000000)); }}\n"
            f"{SLOW_FUNCTION}({seconds});\necho \"slept\\n\";\n")


def file_size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return 0


def read_from(path: str, offset: int) -> str:
    with open(path, "rb") as fh:
        fh.seek(offset)
        return fh.read().decode("utf-8", "replace")


def exporter_slow(port: int, pool: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=15) as resp:
        text = resp.read().decode()
    return next(s.value for f in text_string_to_metric_families(text) for s in f.samples
                if f.name == "phpfpm_slow_requests" and s.labels.get("pool") == pool)


def top_slow(pool: str) -> int:
    rows = json.loads(hostkit.phphost("top", "--json").stdout)
    return int(next(r["slow"] for r in rows if r["pool"] == pool))


def test_slow_request_in_jailed_pool_is_traced_and_counted(demo: Model) -> None:
    pool = demo.pool(SLOW_POOL)
    assert pool.jail.enabled and demo.exporter is not None
    limit = pool.settings.request_slowlog_timeout
    assert 0 < limit < pool.settings.request_terminate_timeout - 2
    slow_log, fpm_log = layout.slow_log(pool.name), layout.fpm_log(pool.name)
    slow_at, fpm_at = file_size(slow_log), file_size(fpm_log)
    before = fpm_status(pool.socket).slow_requests
    exported_before = exporter_slow(demo.exporter.port, pool.name)

    bench = load_bench()
    target = bench.target(demo, SLOW_POOL, SLOW_SCRIPT)
    with bench.placed(target, slow_php(limit + 2.0)):
        sample = bench.request(target.host, target.path, demo.apache.http_port, limit + 15.0)
    assert sample.status == 200, sample

    hostkit.wait_for(lambda: file_size(slow_log) > slow_at, timeout=5)
    trace = read_from(slow_log, slow_at)
    # the master (outside the chroot) ptraced the jailed worker: the script's path
    # inside the jail and the PHP stack, innermost call first
    assert f"pool {pool.name}" in trace, trace
    assert "usleep()" in trace and f"{SLOW_FUNCTION}()" in trace, trace
    assert SLOW_SCRIPT in trace, trace
    assert "executing too slow" in read_from(fpm_log, fpm_at)

    assert fpm_status(pool.socket).slow_requests == before + 1
    # the supervised exporter reads the same counter, and so does `phphost top`
    hostkit.wait_for(lambda: exporter_slow(demo.exporter.port, pool.name)   # type: ignore[union-attr]
                     == exported_before + 1, timeout=10, interval=0.5)
    assert top_slow(pool.name) == before + 1


# --- rotation ------------------------------------------------------------------------------


def error_log_fd_inode(master: int, path: str) -> int | None:
    """The inode of the master's open error log (the fd whose link names `path`)."""
    for fd in os.listdir(f"/proc/{master}/fd"):
        try:
            if os.readlink(f"/proc/{master}/fd/{fd}") == path:
                return os.stat(f"/proc/{master}/fd/{fd}").st_ino
        except OSError:
            continue
    return None


def masters(demo: Model) -> dict[str, int]:
    hostkit.wake(demo)                      # socket-activated pools: a master to look at
    programs, _ = read_programs()
    out: dict[str, int] = {}
    for pool in demo.pools:
        launcher = programs[hostkit.program(pool.name)].pid
        assert launcher is not None, pool.name
        master = fpm_master_pid(launcher)
        assert master is not None, pool.name
        out[pool.name] = master
    return out


def test_logrotate_rotates_and_every_master_reopens(demo: Model, tmp_path: Path) -> None:
    binary = shutil.which("logrotate")
    if binary is None:
        pytest.fail("logrotate is not installed: scripts/setup-demo installs it")
    conf = Path(layout.LOGROTATE_CONF).read_text()
    assert all(f" {hostkit.program(p.name)}" in conf for p in demo.pools), conf
    pids = masters(demo)
    old = {p: os.stat(layout.fpm_log(p)).st_ino for p in pids}
    assert {p: error_log_fd_inode(m, layout.fpm_log(p)) for p, m in pids.items()} == old

    proc = subprocess.run([binary, "-f", "-s", str(tmp_path / "state"), layout.LOGROTATE_CONF],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr

    for pool, master in pids.items():
        log = layout.fpm_log(pool)
        assert os.stat(f"{log}.1").st_ino == old[pool], pool     # moved aside, not copied
        # USR1 went through supervisord and the launcher: the master opened the new file
        hostkit.wait_for(lambda log=log, m=master: error_log_fd_inode(m, log)
                         == os.stat(log).st_ino, timeout=10)
        assert "error log file re-opened" in Path(log).read_text(), pool
        assert error_log_fd_inode(master, f"{log}.1") is None
    assert masters(demo) == pids                         # reopened, not restarted

    # what the master writes next (a slow request's warning and its trace) lands in
    # the new files, not the rotated ones
    slow = layout.slow_log(SLOW_POOL)
    rotated = {f: file_size(f"{f}.1") for f in (layout.fpm_log(SLOW_POOL), slow)}
    at = {f: file_size(f) for f in rotated}
    seconds = demo.pool(SLOW_POOL).settings.request_slowlog_timeout + 2.0
    bench = load_bench()
    target = bench.target(demo, SLOW_POOL, SLOW_SCRIPT)
    with bench.placed(target, slow_php(seconds)):
        sample = bench.request(target.host, target.path, demo.apache.http_port, seconds + 15)
    assert sample.status == 200, sample
    hostkit.wait_for(lambda: f"{SLOW_FUNCTION}()" in read_from(slow, at[slow]), timeout=5)
    assert "executing too slow" in read_from(layout.fpm_log(SLOW_POOL),
                                             at[layout.fpm_log(SLOW_POOL)])
    assert {f: file_size(f"{f}.1") for f in rotated} == rotated
