"""Throughput benchmark: the generated Apache stack against nginx in front of the
same PHP-FPM pool, side by side, same run, same load generator (wrk).

It installs wrk and nginx-light when missing (apt-get; with a policy-rc.d in place
for the install when the host has none, so Debian's nginx never starts on port 80),
places four small files in one site's docroot (owned by the site's tenant, as a
tenant would upload them: hello.php, a CPU-bound page, a page that sleeps 20 ms, a
static file), starts its own nginx (a config in a temporary directory, listening
only on 127.0.0.1:--nginx-port, workers as www-data so they may use the pool's
socket and read the docroot through its ACL), runs wrk against Apache and nginx
for each page in turn, stops nginx by its pid, removes the files and prints
requests/s, the ratio Apache / nginx and every non-2xx answer.

It changes no configuration of the host but loads it: run it under the host lock,

    flock /run/lock/phphost-integration.lock \\
        .venv/bin/python scripts/bench_vs_nginx.py examples/demo.toml [--json]

The 16-client run on the `files` pool (6 children) is also issue 12's burst test:
every request must get a 2xx from Apache, none a 503.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field

from bench_noisy_neighbour import Target, placed, target  # scripts/ is sys.path[0]

from phphost.errors import PhphostError
from phphost.spec.loader import load_spec
from phphost.spec.model import Model

POLICY_RC = "/usr/sbin/policy-rc.d"
# name -> (file name, content); CPU page: about 5 ms of PHP on this VM
PAGES: dict[str, tuple[str, str]] = {
    "hello": ("phphost-bench-hello.php", "<?php echo \"hello\\n\";\n"),
    "cpu": ("phphost-bench-cpu.php",
            "<?php $x = 0; for ($i = 0; $i < 200000; $i++) { $x += $i % 7; } "
            "echo $x, \"\\n\";\n"),
    "sleep20": ("phphost-bench-sleep.php", "<?php usleep(20000); echo \"slept\\n\";\n"),
    "static": ("phphost-bench-static.html", "<!doctype html><title>x</title>\n"
               + "<p>" + "static file " * 170 + "</p>\n"),     # about 2 KiB
}


@dataclass
class Run:
    rps: float = 0.0
    requests: int = 0
    non_2xx: int = 0
    socket_errors: int = 0
    p50_ms: float = 0.0
    p99_ms: float = 0.0

    @property
    def ok_rps(self) -> float:
        """Requests per second that got a 2xx (wrk counts non-2xx as served)."""
        if not self.requests:
            return 0.0
        return self.rps * max(0, self.requests - self.non_2xx) / self.requests


@dataclass
class Row:
    page: str
    apache: Run = field(default_factory=Run)
    nginx: Run = field(default_factory=Run)
    ratio: float = 0.0


@dataclass
class Config:
    connections: int = 16
    threads: int = 2
    seconds: int = 10
    port: int = 80
    nginx_port: int = 8089
    rounds: int = 1
    nginx: bool = True


# --- tools ----------------------------------------------------------------------------


def ensure_tools() -> None:
    """wrk and nginx-light from Debian when missing. Debian starts a service on
    install; a policy-rc.d that says no (exit 101) keeps nginx off port 80."""
    missing = [pkg for pkg, exe in (("wrk", "wrk"), ("nginx-light", "nginx"))
               if shutil.which(exe) is None and not os.path.exists(f"/usr/sbin/{exe}")]
    if not missing:
        return
    placed_policy = not os.path.exists(POLICY_RC)
    if placed_policy:
        with open(POLICY_RC, "w", encoding="utf-8") as fh:
            fh.write("#!/bin/sh\n# bench_vs_nginx.py: no service starts during its install\n"
                     "exit 101\n")
        os.chmod(POLICY_RC, 0o700)
    try:
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends",
                        *missing], check=True, env=env, stdout=subprocess.DEVNULL)
    finally:
        if placed_policy:
            os.unlink(POLICY_RC)


# --- nginx ----------------------------------------------------------------------------


def nginx_conf(tmp: str, site_host: str, docroot: str, socket_path: str, port: int) -> str:
    """The fair counterpart of a phphost PHP site: .php only when the file exists
    (try_files, like Apache's <If -f>), everything else static, access log on."""
    return f"""
user www-data;
worker_processes auto;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log;
events {{ worker_connections 1024; }}
http {{
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    sendfile on;
    tcp_nopush on;
    access_log {tmp}/access.log combined;
    client_body_temp_path {tmp}/body;
    fastcgi_temp_path {tmp}/fastcgi;
    proxy_temp_path {tmp}/proxy;
    server {{
        listen 127.0.0.1:{port};
        server_name {site_host};
        root {docroot};
        index index.php index.html;
        location ~ \\.php$ {{
            try_files $uri =404;
            include /etc/nginx/fastcgi_params;
            fastcgi_param SCRIPT_FILENAME $document_root$fastcgi_script_name;
            fastcgi_pass unix:{socket_path};
        }}
    }}
}}
"""


def wait_port(port: int, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return
        time.sleep(0.05)
    raise SystemExit(f"nginx did not listen on 127.0.0.1:{port} within {seconds} s")


@contextlib.contextmanager
def nginx(site_host: str, docroot: str, socket_path: str, port: int) -> Iterator[None]:
    """Our own nginx master in the foreground: started and stopped by its pid."""
    tmp = tempfile.mkdtemp(prefix="phphost-bench-nginx-")
    os.chown(tmp, 0, 0)
    conf = os.path.join(tmp, "nginx.conf")
    with open(conf, "w", encoding="utf-8") as fh:
        fh.write(nginx_conf(tmp, site_host, docroot, socket_path, port))
    proc = subprocess.Popen(["nginx", "-c", conf, "-g", "daemon off;"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        try:
            wait_port(port)
        except SystemExit:
            proc.kill()
            _out, err = proc.communicate()
            raise SystemExit(f"nginx failed: {err.decode(errors='replace').strip()}") from None
        yield
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGQUIT)      # graceful: workers finish, master exits
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)


# --- wrk ------------------------------------------------------------------------------

_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    return round(float(m.group(1)) * _UNITS[m.group(2)], 2) if m else 0.0


def parse_wrk(out: str) -> Run:
    """Pure: wrk's text output (with --latency) as a Run."""
    run = Run()
    if m := re.search(r"Requests/sec:\s+([\d.]+)", out):
        run.rps = float(m.group(1))
    if m := re.search(r"(\d+) requests in", out):
        run.requests = int(m.group(1))
    if m := re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out):
        run.non_2xx = int(m.group(1))
    if m := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
                      out):
        run.socket_errors = sum(int(x) for x in m.groups())
    if m := re.search(r"^\s+50%\s+(\S+)", out, re.M):
        run.p50_ms = _ms(m.group(1))
    if m := re.search(r"^\s+99%\s+(\S+)", out, re.M):
        run.p99_ms = _ms(m.group(1))
    return run


def wrk(host: str, port: int, path: str, cfg: Config) -> Run:
    argv = ["wrk", f"-t{cfg.threads}", f"-c{cfg.connections}", f"-d{cfg.seconds}s",
            "--latency", "-H", f"Host: {host}", f"http://127.0.0.1:{port}{path}"]
    done = subprocess.run(argv, capture_output=True, text=True, check=True,
                          timeout=cfg.seconds + 60)
    return parse_wrk(done.stdout)


def _best(a: Run, b: Run) -> Run:
    return a if a.rps >= b.rps else b


def measure(t: Target, page: str, cfg: Config) -> Row:
    """Apache then nginx, `rounds` times, interleaved; the better run of each."""
    row = Row(page)
    for _ in range(cfg.rounds):
        row.apache = _best(row.apache, wrk(t.host, cfg.port, t.path, cfg))
        if cfg.nginx:
            row.nginx = _best(row.nginx, wrk(t.host, cfg.nginx_port, t.path, cfg))
    row.ratio = round(row.apache.ok_rps / row.nginx.ok_rps, 2) if row.nginx.ok_rps else 0.0
    return row


def site_socket(model: Model, t: Target) -> tuple[str, str]:
    site = next(s for s in model.sites if s.name == t.site)
    if site.pool is None or site.docroot is None:
        raise SystemExit(f"site {t.site!r} has no pool")
    return site.docroot, model.pool(site.pool).socket


def run(model: Model, site: str, pages: list[str], cfg: Config) -> list[Row]:
    targets = {name: target(model, site, PAGES[name][0]) for name in pages}
    first = next(iter(targets.values()))
    docroot, sock = site_socket(model, first)
    pwd.getpwnam("www-data")
    with contextlib.ExitStack() as stack:
        for name, t in targets.items():
            stack.enter_context(placed(t, PAGES[name][1]))
        if cfg.nginx:
            stack.enter_context(nginx(first.host, docroot, sock, cfg.nginx_port))
        warm = Config(connections=2, threads=1, seconds=1, port=cfg.port,
                      nginx_port=cfg.nginx_port, nginx=cfg.nginx)
        rows = []
        for name, t in targets.items():
            measure(t, name, warm)                        # opcache, children
            rows.append(measure(t, name, cfg))
    return rows


def print_rows(rows: list[Row], cfg: Config) -> None:
    print(f"wrk -t{cfg.threads} -c{cfg.connections} -d{cfg.seconds}s, best of {cfg.rounds}")
    print("r/s: answers with a 2xx per second; ratio = apache / nginx")
    print(f"{'page':8} {'apache r/s':>11} {'nginx r/s':>10} {'ratio':>6}  "
          f"{'apache non-2xx/err':>18} {'nginx non-2xx/err':>17}  apache p50/p99 ms")
    for r in rows:
        a, n = r.apache, r.nginx
        print(f"{r.page:8} {a.ok_rps:11.0f} {n.ok_rps:10.0f} {r.ratio:6.2f}  "
              f"{a.non_2xx:>8}/{a.socket_errors:<9} {n.non_2xx:>8}/{n.socket_errors:<8}  "
              f"{a.p50_ms}/{a.p99_ms}")


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("spec")
    p.add_argument("--site", default="files", help="a PHP site of the spec (default: files)")
    p.add_argument("--pages", default=",".join(PAGES), help=f"of {','.join(PAGES)}")
    p.add_argument("--json", action="store_true")
    p.add_argument("--no-nginx", action="store_true",
                   help="Apache only (the burst test: every answer must be a 2xx)")
    defaults = Config()
    for name in ("connections", "threads", "seconds", "port", "nginx_port", "rounds"):
        p.add_argument(f"--{name.replace('_', '-')}", type=int, default=getattr(defaults, name))
    args = p.parse_args(argv)
    pages = [x for x in args.pages.split(",") if x]
    if unknown := [x for x in pages if x not in PAGES]:
        p.error(f"unknown page(s) {', '.join(unknown)}; choose from {', '.join(PAGES)}")
    cfg = Config(connections=min(args.connections, 1000), threads=args.threads,
                 seconds=min(args.seconds, 120), port=args.port, nginx_port=args.nginx_port,
                 rounds=max(1, min(args.rounds, 5)), nginx=not args.no_nginx)
    ensure_tools()
    try:
        rows = run(load_spec(args.spec), args.site, pages, cfg)
    except PhphostError as err:
        print(f"bench_vs_nginx: error: {err}", file=sys.stderr)
        return err.exit_code
    if args.json:
        out = [dict(asdict(r), apache_ok_rps=round(r.apache.ok_rps, 1),
                    nginx_ok_rps=round(r.nginx.ok_rps, 1)) for r in rows]
        print(json.dumps({"config": asdict(cfg), "rows": out}, indent=1))
    else:
        print_rows(rows, cfg)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
