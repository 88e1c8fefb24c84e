"""Noisy-neighbour benchmark: flood one tenant's site with slow PHP requests and
measure another tenant's cheap PHP page, sequentially, before and during the flood.

It places two small PHP files (a sleeping one in the flooded site's docroot, a cheap
one in the measured site's docroot, each owned by its tenant, the way a tenant would
upload them), runs the load over 127.0.0.1 only, removes the files and prints the
figures. Bounded: `--connections` flood clients for `--seconds`, one request in
flight per client, a `--think` pause between a client's requests.

It changes no configuration, but it loads the host: run it under the host lock,

    flock /run/lock/phphost-integration.lock \\
        .venv/bin/python scripts/bench_noisy_neighbour.py examples/demo.toml

usage: bench_noisy_neighbour.py SPEC [--flood SITE] [--victim SITE] [--json] ...
"""

from __future__ import annotations

import argparse
import contextlib
import grp
import json
import multiprocessing
import multiprocessing.connection
import os
import pwd
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field

from phphost import safefs
from phphost.errors import PhphostError
from phphost.spec.loader import load_spec
from phphost.spec.model import Model

SLEEP_SCRIPT = "phphost-nn-sleep.php"
CHEAP_SCRIPT = "phphost-nn-cheap.php"
SLEEP_PHP = "<?php usleep((int)(%f * 1000000)); echo \"slept\\n\";\n"
CHEAP_PHP = "<?php echo \"cheap \", getmypid(), \"\\n\";\n"


@dataclass(frozen=True)
class Sample:
    status: int           # HTTP status; 0 = connection error or timeout
    seconds: float
    start: float = 0.0    # monotonic time the request started


@dataclass(frozen=True)
class Target:
    site: str
    host: str             # Host header
    path: str             # URL path of the placed script
    file: str             # its path on disk
    user: str
    group: str


@dataclass
class Config:
    connections: int = 300
    seconds: float = 12.0          # flood duration, the victim is measured meanwhile
    ramp: float = 2.5              # flood time before the victim is measured
    sleep: float = 2.0             # seconds the flooded script sleeps
    think: float = 0.2             # a flood client's pause between its requests
    baseline: int = 200            # unloaded victim requests
    timeout: float = 30.0
    port: int = 80


@dataclass
class Report:
    config: dict[str, float]
    flood_site: str
    victim_site: str
    baseline: dict[str, float] = field(default_factory=dict)
    loaded: dict[str, float] = field(default_factory=dict)
    victim_errors: int = 0
    flood_statuses: dict[str, int] = field(default_factory=dict)
    flood_503: dict[str, float] = field(default_factory=dict)
    flood_200: dict[str, float] = field(default_factory=dict)
    flood_rate: float = 0.0        # flood requests per second
    busy_workers_max: int = -1     # Apache BusyWorkers seen during the flood (-1: no answer)
    busy_scoreboard: str = ""      # mod_status's Scoreboard line of that sample
    busy_workers_median: float = -1.0  # the median of those samples: threads held, not
                                       # the fast 503s' moments of work


# --- HTTP over loopback ---------------------------------------------------------------


def request(host: str, path: str, port: int, timeout: float) -> Sample:
    """One GET over a fresh connection; status 0 on a connection error or timeout."""
    start = time.monotonic()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n"
                         "Connection: close\r\n\r\n".encode())
            head = _read_all(sock)
        status = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/") else 0
    except (OSError, ValueError, IndexError):
        status = 0
    return Sample(status, time.monotonic() - start, start)


def _read_all(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


STATUS_PATH = "/phphost-bench-scoreboard"
STATUS_CONF = "/etc/apache2/conf-enabled/zz-phphost-bench-scoreboard.conf"


@contextlib.contextmanager
def scoreboard() -> Iterator[None]:
    """phphost denies /server-status (it lists every tenant's requests); for the
    measurement only, expose the scoreboard on a path of the bench's own."""
    with open(STATUS_CONF, "w", encoding="utf-8") as fh:
        fh.write(f'<Location "{STATUS_PATH}">\n    SetHandler server-status\n'
                 "    Require local\n</Location>\n")
    subprocess.run(["apache2ctl", "graceful"], check=True, capture_output=True)
    try:
        yield
    finally:
        os.unlink(STATUS_CONF)
        subprocess.run(["apache2ctl", "graceful"], check=True, capture_output=True)


def busy_workers(port: int) -> tuple[int, str]:
    """Apache's BusyWorkers and Scoreboard line from mod_status (see scoreboard());
    (-1, "") if not."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(f"GET {STATUS_PATH}?auto HTTP/1.1\r\nHost: localhost\r\n"
                         "Connection: close\r\n\r\n".encode())
            text = _read_all(sock).decode("latin-1")
    except OSError:
        return -1, ""
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    try:
        return int(fields["BusyWorkers"]), fields.get("Scoreboard", "").strip()
    except (KeyError, ValueError):
        return -1, ""


# --- figures --------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of values; 0.0 for none."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))
    return ordered[int(rank) - 1]


def latency_ms(secs: list[float]) -> dict[str, float]:
    """count, p50, p99 and max (ms) of request times in seconds (bench_limits.py too)."""
    return {"count": len(secs), "p50_ms": round(percentile(secs, 50) * 1000, 1),
            "p99_ms": round(percentile(secs, 99) * 1000, 1),
            "max_ms": round(max(secs, default=0.0) * 1000, 1)}


def summary(samples: list[Sample]) -> dict[str, float]:
    return latency_ms([s.seconds for s in samples])


# --- placing the scripts --------------------------------------------------------------


def target(model: Model, name: str, script: str) -> Target:
    site = next((s for s in model.sites if s.name == name), None)
    if site is None or not site.php or site.docroot is None or site.tenant is None:
        raise SystemExit(f"site {name!r} is not a PHP site of the spec")
    tenant = model.tenant(site.tenant)
    return Target(site.name, site.server_name, f"/{script}", f"{site.docroot}/{script}",
                  tenant.user, tenant.group)


@contextlib.contextmanager
def placed(t: Target, content: str) -> Iterator[None]:
    """The file in place, owned by the site's tenant (mode 0640), for the duration.
    The docroot is the tenant's: it is walked from / by descriptor (safefs), the file
    is created with O_EXCL|O_NOFOLLOW in the descriptor of its directory and chowned
    through its own descriptor, so a symlink the tenant swaps in (at the docroot,
    above it or at the file name) is refused, never followed."""
    uid, gid = pwd.getpwnam(t.user).pw_uid, grp.getgrnam(t.group).gr_gid
    with safefs.parent(t.file) as (pfd, name, _trusted):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name, dir_fd=pfd)         # a leftover (or a link): unlinkat, no follow
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o640, dir_fd=pfd)
        with os.fdopen(fd, "w") as fh:
            os.fchown(fh.fileno(), uid, gid)
            fh.write(content)
    try:
        yield
    finally:
        with contextlib.suppress(FileNotFoundError, safefs.UnsafePath), \
                safefs.parent(t.file) as (pfd, name, _trusted):
            os.unlink(name, dir_fd=pfd)


# --- load -----------------------------------------------------------------------------


def flood_client(t: Target, cfg: Config, deadline: float, out: list[Sample]) -> None:
    while time.monotonic() < deadline:
        out.append(request(t.host, t.path, cfg.port, cfg.timeout))
        time.sleep(cfg.think)


def sequential(t: Target, cfg: Config, count: int = 0, until: float = 0.0) -> list[Sample]:
    """Victim requests one after another: `count` of them, or until `until`."""
    out: list[Sample] = []
    while (count and len(out) < count) or (until and time.monotonic() < until):
        out.append(request(t.host, t.path, cfg.port, cfg.timeout))
    return out


def watch_busy(cfg: Config, stop: threading.Event, seen: list[tuple[int, str]]) -> None:
    while not stop.wait(0.25):
        seen.append(busy_workers(cfg.port))


def _flood_process(flood: Target, cfg: Config, deadline: float,
                   conn: multiprocessing.connection.Connection) -> None:
    """In a child process: the flood clients, their samples sent back over `conn`."""
    results: list[list[Sample]] = [[] for _ in range(cfg.connections)]
    with ThreadPoolExecutor(max_workers=cfg.connections) as pool:
        for out in results:
            pool.submit(flood_client, flood, cfg, deadline, out)
    conn.send([s for out in results for s in out])
    conn.close()


def run_flood(flood: Target, victim: Target, cfg: Config
              ) -> tuple[list[Sample], list[Sample], list[tuple[int, str]]]:
    """Flood `flood` while measuring `victim`; -> (flood samples, victim samples,
    scoreboard samples: BusyWorkers and the Scoreboard line every 0.25 s).
    The flood's clients run in a process of their own: 300 client threads in the
    measuring interpreter would make the victim's requests wait for Python's GIL
    (a switch every 5 ms), latency of the benchmark, not of the host."""
    deadline = time.monotonic() + cfg.seconds
    ctx = multiprocessing.get_context("fork")
    mine, theirs = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_flood_process, args=(flood, cfg, deadline, theirs))
    stop, busy = threading.Event(), list[tuple[int, str]]()
    watcher = threading.Thread(target=watch_busy, args=(cfg, stop, busy), daemon=True)
    child.start()
    theirs.close()
    try:
        watcher.start()
        time.sleep(cfg.ramp)
        measured = sequential(victim, cfg, until=deadline)
        flood_samples: list[Sample] = mine.recv() if mine.poll(cfg.timeout + 60) else []
    finally:
        stop.set()
        child.join(cfg.timeout + 60)
        if child.is_alive():
            child.kill()            # our own child, by pid
            child.join()
    watcher.join()
    return flood_samples, measured, [seen for seen in busy if seen[0] >= 0]


def run(model: Model, flood_site: str, victim_site: str, cfg: Config) -> Report:
    flood = target(model, flood_site, SLEEP_SCRIPT)
    victim = target(model, victim_site, CHEAP_SCRIPT)
    with placed(flood, SLEEP_PHP % cfg.sleep), placed(victim, CHEAP_PHP), scoreboard():
        sequential(victim, cfg, count=20)                    # warm up opcache and children
        request(flood.host, flood.path, cfg.port, cfg.timeout)
        baseline = sequential(victim, cfg, count=cfg.baseline)
        flood_samples, loaded, busy = run_flood(flood, victim, cfg)
    return report(cfg, flood, victim, baseline, loaded, flood_samples, busy)


def report(cfg: Config, flood: Target, victim: Target, baseline: list[Sample],
           loaded: list[Sample], flood_samples: list[Sample],
           busy: list[tuple[int, str]]) -> Report:
    statuses = Counter(s.status for s in flood_samples)
    busiest = max(busy, key=lambda seen: seen[0], default=(-1, ""))
    counts = sorted(seen[0] for seen in busy)
    return Report(
        config={k: float(v) for k, v in asdict(cfg).items()},
        flood_site=flood.site, victim_site=victim.site,
        baseline=summary(baseline), loaded=summary(loaded),
        victim_errors=sum(1 for s in baseline + loaded if s.status != 200),
        flood_statuses={str(k): v for k, v in sorted(statuses.items())},
        flood_503=summary([s for s in flood_samples if s.status == 503]),
        flood_200=summary([s for s in flood_samples if s.status == 200]),
        flood_rate=round(len(flood_samples) / cfg.seconds, 1),
        busy_workers_max=busiest[0], busy_scoreboard=busiest[1],
        busy_workers_median=float(counts[len(counts) // 2]) if counts else -1.0,
    )


def print_report(r: Report) -> None:
    b, ld = r.baseline, r.loaded
    print(f"victim {r.victim_site}: unloaded p50 {b['p50_ms']} ms  p99 {b['p99_ms']} ms  "
          f"max {b['max_ms']} ms  ({int(b['count'])} requests)")
    print(f"victim {r.victim_site}: loaded   p50 {ld['p50_ms']} ms  p99 {ld['p99_ms']} ms  "
          f"max {ld['max_ms']} ms  ({int(ld['count'])} requests), errors {r.victim_errors}")
    print(f"flood {r.flood_site}: {int(r.config['connections'])} clients, "
          f"{r.flood_rate} req/s, statuses {r.flood_statuses}")
    print(f"flood {r.flood_site}: 503 p50 {r.flood_503['p50_ms']} ms  "
          f"p99 {r.flood_503['p99_ms']} ms; 200 p50 {r.flood_200['p50_ms']} ms  "
          f"max {r.flood_200['max_ms']} ms")
    busy = r.busy_workers_max
    print("apache BusyWorkers during the flood: "
          + (f"max {busy}, median {r.busy_workers_median:g}" if busy >= 0
             else "no answer (/server-status got no thread)"))
    if r.busy_scoreboard:
        print(f"  its scoreboard: {r.busy_scoreboard}")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("spec")
    p.add_argument("--flood", default="files", help="site to flood (default: files)")
    p.add_argument("--victim", default="blog", help="site to measure (default: blog)")
    p.add_argument("--json", action="store_true")
    defaults = Config()
    for name in ("connections", "seconds", "ramp", "sleep", "think", "baseline", "timeout",
                 "port"):
        kind = type(getattr(defaults, name))
        p.add_argument(f"--{name}", type=kind, default=getattr(defaults, name))
    return p


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    cfg = Config(connections=min(args.connections, 1000), seconds=min(args.seconds, 45.0),
                 ramp=args.ramp, sleep=args.sleep, think=args.think,
                 baseline=args.baseline, timeout=args.timeout, port=args.port)
    try:
        result = run(load_spec(args.spec), args.flood, args.victim, cfg)
    except PhphostError as err:     # e.g. a docroot a tenant swapped for a symlink
        print(f"bench_noisy_neighbour: error: {err}", file=sys.stderr)
        return err.exit_code
    if args.json:
        print(json.dumps(asdict(result), indent=1))
    else:
        print_report(result)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
