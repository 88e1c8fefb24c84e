#!/usr/bin/env python3
"""CPU time per request of the web server in front of one PHP-FPM pool: nginx, and
Apache with the config phphost renders and with variants of it that drop one thing the
generated config does per request (issue 12, item 4: is the gap to nginx in the config?).

The same private set-up as scripts/trace_requests.py (a temporary tenant home and
docroot, a bare FPM master of 4 children, `apache2 -X` with Debian's enabled modules and
phphost's rendered global config and vhost, nginx with bench_vs_nginx's config; nothing
of the host's configuration read or changed beyond Debian's module list, everything
stopped by pid), so it needs no host lock. For each server it runs wrk (1 thread,
8 connections, `--seconds`) and reads the server's CPU time (user + system of all its
threads, /proc/PID/task/*/stat) and FPM's (master and children) before and after:
microseconds of CPU per request are much steadier than requests per second on a shared
machine. Apache variants:

  rendered   as phphost renders it
  nolog      without the site's access log
  follow     FollowSymLinks everywhere (no lstat per path component)
  noif       SetHandler without the `<If "-f %{REQUEST_FILENAME}">` around it
  minmods    only the modules the rendered site needs (no deflate, negotiation,
             autoindex, setenvif, status, reqtimeout, ssl, auth*, alias, env, filter)

    .venv/bin/python scripts/cpu_per_request.py [--page hello.php|static.html]
        [--rounds 3] [--seconds 4] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

import trace_requests as tr

from phphost import layout

HZ = os.sysconf("SC_CLK_TCK")
UNNEEDED = ("deflate", "negotiation", "autoindex", "setenvif", "status", "reqtimeout", "env",
            "filter", "ssl", "socache_shmcb", "auth_basic", "authn_file", "authn_core",
            "authz_user", "access_compat", "alias")
_UNNEEDED_LOAD = re.compile(rf"^LoadModule ({'|'.join(UNNEEDED)})_module ")
_IF_F = re.compile(r'<If "-f %\{REQUEST_FILENAME\}">\s*(SetHandler[^\n]*)\s*</If>')


def _minmods(conf: str) -> str:
    lines = [line for line in conf.splitlines() if not _UNNEEDED_LOAD.match(line)]
    needed = "\n".join(f"Include {layout.APACHE_DIR}/mods-enabled/{m}.conf"
                       for m in ("mime", "dir", "mpm_event"))
    return "\n".join(lines).replace(f"Include {layout.APACHE_DIR}/mods-enabled/*.conf", needed)


VARIANTS: dict[str, Callable[[str], str]] = {
    "rendered": lambda conf: conf,
    "nolog": lambda conf: "\n".join(line for line in conf.splitlines()
                                    if "CustomLog" not in line),
    "follow": lambda conf: conf.replace("-FollowSymLinks -SymLinksIfOwnerMatch",
                                        "+FollowSymLinks")
                               .replace("+SymLinksIfOwnerMatch", "+FollowSymLinks"),
    "noif": lambda conf: _IF_F.sub(r"\1", conf),
    "minmods": _minmods,
}


def ticks(pid: int) -> int:
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/stat", encoding="ascii") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total


def tree_ticks(pid: int) -> int:
    """pid and its children (an FPM master and its workers)."""
    with open(f"/proc/{pid}/task/{pid}/children", encoding="ascii") as fh:
        children = [int(c) for c in fh.read().split()]
    return ticks(pid) + sum(ticks(c) for c in children)


def wrk(port: int, page: str, seconds: int) -> tuple[int, int]:
    """(requests, non-2xx/3xx answers)."""
    proc = subprocess.run(["wrk", "-t1", "-c8", f"-d{seconds}s", "-H", f"Host: {tr.HOST}",
                           f"http://127.0.0.1:{port}/{page}"],
                          capture_output=True, text=True, check=True, timeout=seconds + 30)
    done = re.search(r"(\d+) requests in", proc.stdout)
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", proc.stdout)
    return int(done.group(1)) if done else 0, int(bad.group(1)) if bad else 0


def measure(cmd: list[str], port: int, fpm: int, page: str, seconds: int) -> dict[str, float]:
    with tr.started(cmd, port) as proc:
        wrk(port, page, 1)                                   # warm-up
        server0, fpm0 = ticks(proc.pid), tree_ticks(fpm)
        done, bad = wrk(port, page, seconds)
        server1, fpm1 = ticks(proc.pid), tree_ticks(fpm)
    per = 1e6 / HZ / max(done, 1)
    return {"rps": done / seconds, "server_us": (server1 - server0) * per,
            "fpm_us": (fpm1 - fpm0) * per, "non2xx": bad}


def prepare(d: str) -> tuple[str, str, str]:
    """The private docroot and configs; (apache conf, fpm conf path, nginx conf path)."""
    os.chmod(d, 0o711)                          # noqa: S103 www-data walks to the docroot
    home, sock = f"{d}/home", f"{d}/fpm.sock"
    docroot = f"{home}/htdocs"
    os.makedirs(docroot)
    os.makedirs(f"{d}/logs")
    for name, content in (("hello.php", '<?php echo "hello\\n";\n'), ("static.html", "x" * 2048)):
        with open(f"{docroot}/{name}", "w", encoding="utf-8") as fh:
            fh.write(content)
        os.chmod(f"{docroot}/{name}", 0o644)
    for path in (home, docroot):
        os.chmod(path, 0o755)                   # noqa: S103 a throw-away public docroot
    fpm = tr.fpm_conf(d, sock).replace("pm.max_children = 2", "pm.max_children = 4")
    for name, text in (("fpm.conf", fpm), ("nginx.conf", tr.nginx_conf(d, docroot, sock))):
        with open(f"{d}/{name}", "w", encoding="utf-8") as fh:
            fh.write(text)
    return tr.apache_conf(d, home, sock), f"{d}/fpm.conf", f"{d}/nginx.conf"


def run_all(page: str, rounds: int, seconds: int) -> dict[str, list[dict[str, float]]]:
    results: dict[str, list[dict[str, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="phphost-cpu-") as d:
        apache, fpm_conf, nginx_conf = prepare(d)
        servers = [("nginx", ["nginx", "-c", nginx_conf], tr.NGINX_PORT)]
        for name, variant in VARIANTS.items():
            with open(f"{d}/apache-{name}.conf", "w", encoding="utf-8") as fh:
                fh.write(variant(apache))
            servers.append((f"apache {name}", ["apache2", "-X", "-f", f"{d}/apache-{name}.conf"],
                            tr.APACHE_PORT))
        with tr.started([layout.FPM_BINARY, "--nodaemonize", "--fpm-config", fpm_conf],
                        None) as fpm:
            time.sleep(1)
            for _ in range(rounds):          # interleaved: drift hits every server alike
                for name, cmd, port in servers:
                    results.setdefault(name, []).append(
                        measure(cmd, port, fpm.pid, page, seconds))
    return results


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--page", default="hello.php", choices=("hello.php", "static.html"))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=4)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    for tool in ("wrk", "nginx", "apache2", layout.FPM_BINARY):
        if shutil.which(tool) is None:
            ap.error(f"{tool} is missing (scripts/bench_vs_nginx.py installs nginx and wrk)")
    results = run_all(args.page, args.rounds, args.seconds)
    if args.json:
        print(json.dumps(results, indent=1))
        return 0
    print(f"{args.page}: wrk -t1 -c8 -d{args.seconds}s, {args.rounds} rounds; "
          "median (min-max) of the rounds")
    print(f"{'server':16s} {'r/s':>7s}  {'server us/req':>18s}  {'FPM us/req':>16s}  non-2xx")
    for name, runs in results.items():
        def col(key: str, runs: list[dict[str, float]] = runs) -> str:
            vals = [r[key] for r in runs]
            return f"{statistics.median(vals):5.1f} ({min(vals):.0f}-{max(vals):.0f})"
        rps = statistics.median(r["rps"] for r in runs)
        bad = sum(int(r["non2xx"]) for r in runs)
        print(f"{name:16s} {rps:7.0f}  {col('server_us'):>18s}  {col('fpm_us'):>16s}  {bad}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
