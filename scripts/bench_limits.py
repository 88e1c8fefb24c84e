"""Resource-limits benchmark: tenant A's pool runs CPU-bound loops on all but one of
its children and a memory hog (a SysV segment past its memory_max, so the kernel
kills it, again and again) on the last one, while tenant B's cheap PHP page is
measured sequentially; B is measured unloaded first. Prints B's p50/p99/max and
errors, A's OOM kills and how many of its requests finished.

It places three small PHP files (A's two in A's docroot, B's in B's, owned by each
tenant, as a tenant would upload them), sends requests over 127.0.0.1 only, removes
the files and prints the figures. Bounded: `--seconds` of load, one request in
flight per client, A's clients = A's max_children. It changes no configuration but
loads the host: run it under the host lock,

    flock /run/lock/phphost-integration.lock \\
        .venv/bin/python scripts/bench_limits.py examples/demo.toml [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import grp
import json
import os
import pwd
import socket
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field

from bench_noisy_neighbour import latency_ms  # scripts/ is sys.path[0] when run

from phphost.facts import cgroups
from phphost.spec.limits import pool_limits
from phphost.spec.loader import load_spec
from phphost.spec.model import Model, Site

CPU_SCRIPT = "phphost-bl-cpu.php"
HOG_SCRIPT = "phphost-bl-hog.php"
CHEAP_SCRIPT = "phphost-bl-cheap.php"
CPU_PHP = ("<?php $end = microtime(true) + min(10.0, (float)($_GET['s'] ?? 1));\n"
           "$x = 0.0; while (microtime(true) < $end) { $x += sqrt(mt_rand()); }\n"
           "echo 'spun ', (int)$x, \"\\n\";\n")
HOG_PHP = ("<?php $size = min(64 << 30, (int)($_GET['bytes'] ?? 0));\n"
           "$seg = shmop_open(random_int(1 << 20, 1 << 30), 'c', 0600, $size);\n"
           "shmop_delete($seg); $chunk = str_repeat('x', 1 << 20);\n"
           "for ($at = 0; $at + (1 << 20) <= $size; $at += 1 << 20) {"
           " shmop_write($seg, $chunk, $at); }\n"
           "echo \"wrote $at\\n\";\n")
CHEAP_PHP = "<?php echo \"cheap \", getmypid(), \"\\n\";\n"


@dataclass(frozen=True)
class Sample:
    status: int           # HTTP status; 0 = connection error or timeout
    seconds: float


@dataclass
class Config:
    seconds: float = 15.0      # load duration
    spin: float = 2.0          # seconds one CPU request spins
    baseline: int = 300        # unloaded requests of B
    ramp: float = 1.0          # load time before B is measured
    cpu: bool = True           # A's CPU-bound loops
    hog: bool = True           # A's memory hog
    timeout: float = 30.0
    port: int = 80


@dataclass
class Report:
    config: dict[str, float]
    tenant_a: str
    tenant_b: str
    a_limits: str
    unloaded: dict[str, float] = field(default_factory=dict)
    loaded: dict[str, float] = field(default_factory=dict)
    a_cpu_requests: dict[str, int] = field(default_factory=dict)
    a_hog_requests: dict[str, int] = field(default_factory=dict)
    a_oom_kills: int | None = None
    ratio_p99: float = 0.0


def request(host: str, path: str, port: int, timeout: float) -> Sample:
    start = time.monotonic()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n"
                         "Connection: close\r\n\r\n".encode())
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        head = b"".join(chunks)
        status = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/") else 0
    except (OSError, ValueError, IndexError):
        status = 0
    return Sample(status, time.monotonic() - start)


def summary(samples: list[Sample]) -> dict[str, float]:
    return {**latency_ms([s.seconds for s in samples]),
            "errors": sum(1 for s in samples if s.status != 200)}


def counts(samples: list[Sample]) -> dict[str, int]:
    out: dict[str, int] = {}
    for s in samples:
        out[str(s.status)] = out.get(str(s.status), 0) + 1
    return out


def php_site(model: Model, name: str) -> Site:
    site = next((s for s in model.sites if s.name == name), None)
    if site is None or not site.php or site.docroot is None or site.tenant is None \
            or site.pool is None:
        raise SystemExit(f"site {name!r} is not a PHP site of the spec")
    return site


@contextlib.contextmanager
def placed(model: Model, site: Site, script: str, content: str) -> Iterator[str]:
    """The file in the site's docroot, owned by its tenant (0640), for the duration."""
    assert site.docroot is not None and site.tenant is not None
    tenant = model.tenant(site.tenant)
    path = f"{site.docroot}/{script}"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o640)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(content)
        os.chown(path, pwd.getpwnam(tenant.user).pw_uid, grp.getgrnam(tenant.group).gr_gid)
        os.utime(path, (time.time() - 60, time.time() - 60))   # past OPcache's protection
        yield f"/{script}"
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def loop(host: str, path: str, cfg: Config, deadline: float, out: list[Sample]) -> None:
    while time.monotonic() < deadline:
        out.append(request(host, path, cfg.port, cfg.timeout))


def run(model: Model, a_name: str, b_name: str, cfg: Config) -> Report:
    a, b = php_site(model, a_name), php_site(model, b_name)
    assert a.pool is not None
    a_pool = model.pool(a.pool)
    lim = pool_limits(a_pool)
    hog_bytes = (lim.memory_max or (1 << 30)) + (64 << 20)
    host = cgroups.detect()
    with placed(model, a, CPU_SCRIPT, CPU_PHP) as cpu, placed(model, a, HOG_SCRIPT, HOG_PHP) \
            as hog, placed(model, b, CHEAP_SCRIPT, CHEAP_PHP) as cheap:
        for _ in range(20):      # warm OPcache and the pools
            request(b.server_name, cheap, cfg.port, cfg.timeout)
        unloaded = [request(b.server_name, cheap, cfg.port, cfg.timeout)
                    for _ in range(cfg.baseline)]
        kills_before = cgroups.oom_kills(host, a_pool.name)
        deadline = time.monotonic() + cfg.seconds
        cpu_out: list[Sample] = []
        hog_out: list[Sample] = []
        threads = [threading.Thread(target=loop, args=(a.server_name, f"{cpu}?s={cfg.spin}",
                                                      cfg, deadline, cpu_out))
                   for _ in range(max(1, a_pool.settings.max_children - 1) if cfg.cpu else 0)]
        if cfg.hog:
            threads.append(threading.Thread(target=loop, args=(
                a.server_name, f"{hog}?bytes={hog_bytes}", cfg, deadline, hog_out)))
        for t in threads:
            t.start()
        time.sleep(cfg.ramp)
        loaded: list[Sample] = []
        while time.monotonic() < deadline:
            loaded.append(request(b.server_name, cheap, cfg.port, cfg.timeout))
        for t in threads:
            t.join()
        kills_after = cgroups.oom_kills(host, a_pool.name)
    rep = Report({k: float(v) for k, v in asdict(cfg).items()}, a.name, b.name,
                 f"pool {a_pool.name}: {lim.memory_max and lim.memory_max >> 20}M, "
                 f"pids {lim.pids_max}, cpu weight {lim.cpu_weight}, "
                 f"{a_pool.settings.max_children} children")
    rep.unloaded, rep.loaded = summary(unloaded), summary(loaded)
    rep.a_cpu_requests, rep.a_hog_requests = counts(cpu_out), counts(hog_out)
    if kills_before is not None and kills_after is not None:
        rep.a_oom_kills = kills_after - kills_before
    rep.ratio_p99 = round(rep.loaded["p99_ms"] / max(rep.unloaded["p99_ms"], 0.1), 2)
    return rep


def print_report(r: Report) -> None:
    print(f"tenant A: site {r.tenant_a} ({r.a_limits}); tenant B: site {r.tenant_b}")
    print(f"{'B':<10} {'requests':>8} {'errors':>6} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for name, s in (("unloaded", r.unloaded), ("loaded", r.loaded)):
        print(f"{name:<10} {int(s['count']):>8} {int(s['errors']):>6} {s['p50_ms']:>8} "
              f"{s['p99_ms']:>8} {s['max_ms']:>8}")
    print(f"B p99 loaded / unloaded: {r.ratio_p99}x")
    print(f"A CPU requests by status: {r.a_cpu_requests}; hog requests by status: "
          f"{r.a_hog_requests}; OOM kills in A's cgroup: {r.a_oom_kills}")


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("spec")
    p.add_argument("--a", default="files", help="the loaded tenant's site (default files)")
    p.add_argument("--b", default="blog", help="the measured tenant's site (default blog)")
    p.add_argument("--seconds", type=float, default=Config.seconds)
    p.add_argument("--baseline", type=int, default=Config.baseline)
    p.add_argument("--no-cpu", action="store_true", help="no CPU-bound loops in A")
    p.add_argument("--no-hog", action="store_true", help="no memory hog in A")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    if not 1 <= args.seconds <= 120 or not 10 <= args.baseline <= 5000:
        raise SystemExit("--seconds 1..120, --baseline 10..5000")
    cfg = Config(seconds=args.seconds, baseline=args.baseline, cpu=not args.no_cpu,
                 hog=not args.no_hog)
    rep = run(load_spec(args.spec), args.a, args.b, cfg)
    if args.json:
        print(json.dumps(asdict(rep), indent=1))
    else:
        print_report(rep)
    ok = rep.loaded["errors"] == 0 and rep.ratio_p99 <= 2.0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
