"""Idle-tenant benchmark (issue 12, item 1): what a tenant costs while nobody asks it,
and what the first request to a sleeping one takes.

Applies examples/demo.toml plus one bench tenant with N ondemand pools, one site each
(jailed, base features, idle_timeout 2s): half of them socket-activated (the default),
half with `activation = false`. Then, reading /proc only:

* asleep: PSS of an activated pool's processes once its master has gone (the launcher);
* awake, no request: PSS of a non-activated pool's launcher + master once its workers
  have gone (what an activated pool costs between its last worker and its sleep);
* cold: the first request to each asleep pool through Apache (127.0.0.1, Host header),
  several rounds, each after every pool went back to sleep: p50 / p99 / max;
* warm: sequential requests to pools with a worker, activated and not: p50 of each.

Then it applies the demo again and destroys the bench tenant (`destroy --purge` of the
bench part alone: its user and home), and checks that `plan` of the demo is clean. It
takes the host lock itself (do not wrap it in flock: a second lock would wait forever):

    .venv/bin/python scripts/bench_idle.py [--pools 20] [--rounds 6] [--opcache-mb 16] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import http.client
import json
import os
import pwd
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from phphost import layout
from phphost.facts.gather import fpm_master_pid, read_programs

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "examples" / "demo.toml"
PHPHOST = str(Path(sys.executable).parent / "phphost")
LOCK = "/run/lock/phphost-integration.lock"
HOME = "/srv/phphost-bench/idle"
TENANT = "benchidle"
OPCACHE_MB = 16       # the bench pools' opcache_memory_mb (--opcache-mb)
HELLO = "<?php echo 'hello ', getmypid(), \"\\n\";\n"


def bench_toml(pools: int) -> str:
    out = [f'[tenants.{TENANT}]\nhome = "{HOME}"\n']
    for i in range(pools):
        name = f"bi{i:03d}"
        activation = "" if i % 2 == 0 else "activation = false\n"
        out.append(f'[pools.{name}]\ntenant = "{TENANT}"\npm = "ondemand"\nmax_children = 2\n'
                   f'idle_timeout = "2s"\nopcache_memory_mb = {OPCACHE_MB}\n{activation}')
        out.append(f'[sites.{name}]\nserver_name = "{name}.bench.test"\ntenant = "{TENANT}"\n'
                   f'docroot = "htdocs/{name}"\npool = "{name}"\n')
    return "\n".join(out)


def phphost(*args: str) -> None:
    proc = subprocess.run([PHPHOST, *args], capture_output=True, text=True, timeout=1800,
                          check=False)
    if proc.returncode not in (0, 10):
        raise SystemExit(f"phphost {' '.join(args)} failed ({proc.returncode}):\n"
                         f"{proc.stderr[-3000:]}")


@contextlib.contextmanager
def host_lock() -> Iterator[None]:
    with open(LOCK, "a", encoding="utf-8") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def pss_kb(pid: int) -> int:
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return 0
    return next(int(line.split()[1]) for line in text.splitlines() if line.startswith("Pss:"))


def children(pid: int) -> list[int]:
    try:
        return [int(x) for x in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def tree(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children(p)
    return out


def launchers(names: list[str]) -> dict[str, int]:
    programs, _ = read_programs()
    out = {}
    for name in names:
        prog = programs.get(layout.program_name(name))
        if prog is None or prog.pid is None:
            raise SystemExit(f"pool {name} has no running launcher")
        out[name] = prog.pid
    return out


def wait_until(what: str, check: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.2)


def asleep(pids: dict[str, int]) -> bool:
    return all(fpm_master_pid(p) is None for p in pids.values())


def no_workers(pids: dict[str, int]) -> bool:
    return all((m := fpm_master_pid(p)) is not None and not children(m) for p in pids.values())


def get(name: str) -> tuple[int, float]:
    start = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", 80, timeout=30)
    try:
        conn.request("GET", "/hello.php", headers={"Host": f"{name}.bench.test"})
        resp = conn.getresponse()
        resp.read()
        return resp.status, time.perf_counter() - start
    finally:
        conn.close()


def place_scripts(names: list[str]) -> None:
    pw = pwd.getpwnam(TENANT)
    for name in names:
        path = Path(HOME, "htdocs", name, "hello.php")
        path.write_text(HELLO)
        os.chown(path, pw.pw_uid, pw.pw_gid)
        os.chmod(path, 0o640)
        os.utime(path, (1, 1))        # older than opcache.file_update_protection


def ms(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def measure(names: list[str], rounds: int, warm: int) -> dict[str, object]:
    on, off = names[0::2], names[1::2]
    pid_on, pid_off = launchers(on), launchers(off)
    place_scripts(names)
    for name in off:                                   # a master each, then no worker
        assert get(name)[0] == 200
    wait_until("activated pools to sleep", lambda: asleep(pid_on))
    wait_until("the other pools' workers to go", lambda: no_workers(pid_off))
    asleep_kb = [sum(pss_kb(p) for p in tree(pid)) for pid in pid_on.values()]
    awake_kb = [sum(pss_kb(p) for p in tree(pid)) for pid in pid_off.values()]
    master_kb = [pss_kb(m) for pid in pid_off.values() if (m := fpm_master_pid(pid))]
    launcher_kb = [pss_kb(pid) for pid in (*pid_on.values(), *pid_off.values())]
    masters_up = count_masters()
    cold: list[float] = []
    errors = 0
    for _ in range(rounds):
        wait_until("activated pools to sleep", lambda: asleep(pid_on))
        for name in on:
            status, took = get(name)
            errors += status != 200
            cold.append(took)
    warm_on: list[float] = []
    warm_off: list[float] = []
    for group, out in ((on, warm_on), (off, warm_off)):
        for name in group:
            get(name)
            for _ in range(warm):
                status, took = get(name)
                errors += status != 200
                out.append(took)
    return {
        "pools": len(names), "activated": len(on), "rounds": rounds,
        "asleep_pss_mb": statistics.mean(asleep_kb) / 1024,
        "awake_no_request_pss_mb": statistics.mean(awake_kb) / 1024,
        "awake_master_pss_mb": statistics.mean(master_kb) / 1024,
        "launcher_pss_mb": statistics.mean(launcher_kb) / 1024,
        "masters_up": masters_up, "opcache_memory_mb": OPCACHE_MB,
        "cold_requests": len(cold), "cold_p50_ms": ms(cold, 0.50),
        "cold_p99_ms": ms(cold, 0.99), "cold_max_ms": max(cold) * 1000,
        "warm_p50_ms_activated": ms(warm_on, 0.50), "warm_p50_ms_not_activated":
            ms(warm_off, 0.50), "errors": errors,
    }


def count_masters() -> int:
    """FPM masters running on the host (PSS divides shared pages among them)."""
    n = 0
    for entry in os.listdir("/proc"):
        with contextlib.suppress(OSError):
            if entry.isdigit() and Path(f"/proc/{entry}/cmdline").read_bytes().startswith(
                    b"php-fpm: master process"):
                n += 1
    return n


def report(r: dict[str, object]) -> None:
    print(f"pools: {r['pools']} ({r['activated']} socket-activated, the rest activation = false),"
          f" ondemand, jailed, idle_timeout 2s, opcache_memory_mb {r['opcache_memory_mb']};"
          f" FPM masters up while measured: {r['masters_up']}")
    print(f"launcher alone (PSS)                   {r['launcher_pss_mb']:.2f} MB")
    print(f"per tenant, master asleep (PSS)        {r['asleep_pss_mb']:.2f} MB")
    print(f"per tenant, master awake, no request   {r['awake_no_request_pss_mb']:.2f} MB "
          f"(master {r['awake_master_pss_mb']:.2f} MB)")
    print(f"cold first request ({r['cold_requests']} asleep pools)  p50 {r['cold_p50_ms']:.1f} ms"
          f"  p99 {r['cold_p99_ms']:.1f} ms  max {r['cold_max_ms']:.1f} ms")
    print(f"warm p50: activated {r['warm_p50_ms_activated']:.2f} ms, not activated "
          f"{r['warm_p50_ms_not_activated']:.2f} ms;  errors: {r['errors']}")


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pools", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--warm", type=int, default=20)
    ap.add_argument("--opcache-mb", type=int, default=16,
                    help="opcache_memory_mb of the bench pools (phphost's default: 64)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    global OPCACHE_MB
    OPCACHE_MB = args.opcache_mb
    if not 2 <= args.pools <= 400:
        ap.error("--pools: 2..400")
    names = [f"bi{i:03d}" for i in range(args.pools)]
    with host_lock(), tempfile.TemporaryDirectory() as d:
        full, alone = Path(d, "bench.toml"), Path(d, "bench-alone.toml")
        full.write_text(DEMO.read_text() + "\n" + bench_toml(args.pools))
        alone.write_text(bench_toml(args.pools))
        try:
            phphost("apply", str(full))
            result = measure(names, args.rounds, args.warm)
        finally:
            phphost("apply", str(DEMO))
            phphost("destroy", str(alone), "--purge")
            phphost("apply", str(DEMO))
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        report(result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
