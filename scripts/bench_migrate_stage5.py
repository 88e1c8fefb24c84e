#!/usr/bin/env python3
"""Whether a visitor of the old Apache sees a failed request while `phphost migrate`
splits the web user's one FPM master into one master per pool (stage 5) and joins
them again (5 -> 4), and how long each switch takes.

    flock /run/lock/phphost-integration.lock \\
        .venv/bin/python scripts/bench_migrate_stage5.py [--sites 20] [--rounds 3] [--clients 4]

The scratch mod_php ServerRoot of bench_migrate_stage4.py (prefork and mod_php from the
.deb scripts/setup-demo downloads, N vhosts with an index.php and a static file, on a
free loopback port): `phphost import`, `phphost migrate` 0 -> 4, then ROUNDS times
4 -> 5 -> 4 while CLIENTS clients each ask, back to back, for the PHP page of its own
vhost (so of its own pool) and record every request that fails (refused, reset, 5xx,
or an answer other than the page). Per switch: migrate's wall time, the requests
answered during it and the failed ones. At the end `--to 0`, the scratch apache2
stopped by its pid and the directory removed, also on errors. The masters run under
the host's supervisord: hold the integration lock."""

from __future__ import annotations

import argparse
import glob
import http.client
import os
import re
import subprocess
import sys
import threading
import time

from bench_migrate_stage4 import DEB, PHPHOST, migrate, scratch_host


class Client(threading.Thread):
    """GET / of siteN.test back to back; (time, ok) of each request."""

    def __init__(self, port: int, site: int) -> None:
        super().__init__(daemon=True)
        self.port, self.site = port, site
        self.seen: list[tuple[float, bool]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        want = f"site {self.site} 42".encode()
        while not self.stop.is_set():
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
            try:
                conn.request("GET", "/", headers={"Host": f"site{self.site}.test"})
                resp = conn.getresponse()
                ok = resp.status == 200 and resp.read() == want
            except (OSError, http.client.HTTPException):
                ok = False
            finally:
                conn.close()
            self.seen.append((time.monotonic(), ok))


def step(args: list[str]) -> tuple[float, float]:
    """migrate's wall time and the step's own (the "[N s]" it prints: both URL fetches
    and the switch, without the command's start-up and its reading of the config)."""
    began = time.monotonic()
    proc = subprocess.run([PHPHOST, "migrate", *args], capture_output=True, text=True,
                          timeout=900)
    if proc.returncode != 0:
        raise SystemExit(f"phphost migrate {' '.join(args)}: exit {proc.returncode}\n"
                         f"{proc.stdout}{proc.stderr}")
    own = re.search(r"\[([0-9.]+) s\]", proc.stdout)
    return time.monotonic() - began, float(own[1]) if own else float("nan")


def counted(clients: list[Client], start: float, end: float) -> tuple[int, int]:
    window = [ok for c in clients for t, ok in c.seen if start <= t <= end]
    return len(window), window.count(False)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sites", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, default=4)
    opts = parser.parse_args()
    if os.geteuid() != 0 or not glob.glob(DEB):
        print("needs root and the .deb scripts/setup-demo downloads", file=sys.stderr)
        return 2
    with scratch_host("phphost-bench-stage5-", opts.sites) as host:
        host.at = 4
        migrate([*host.common, "--to", "4"])
        clients = [Client(host.port, i % opts.sites) for i in range(opts.clients)]
        for c in clients:
            c.start()
        print(f"{opts.sites} vhosts (so {opts.sites} pools), event MPM; {opts.clients} "
              "clients asking for PHP pages of their own pools back to back")
        print("switch  migrate  (the step)  requests  failed")
        for _ in range(opts.rounds):
            for target in (5, 4):
                start = time.monotonic()
                took, own = step([*host.common, "--to", str(target)])
                host.at = target
                time.sleep(0.3)
                total, failed = counted(clients, start, time.monotonic())
                print(f"{'4 -> 5' if target == 5 else '5 -> 4'}  {took:6.2f} s  ({own:5.1f} s)  "
                      f"{total:8d}  {failed:6d}", flush=True)
        for c in clients:
            c.stop.set()
            c.join()
    return 0


if __name__ == "__main__":
    sys.exit(main())
