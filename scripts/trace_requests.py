"""System calls the generated Apache config makes per request, against nginx in front
of the same PHP-FPM pool (issue 12, item 4: what the generated config costs).

Everything is private and small: a temporary directory holds a tenant home with a
docroot (hello.php and a 2 KiB static file), a bare FPM master (its own config and
socket), an Apache config made of Debian's enabled modules plus phphost's rendered
global config and vhost for a one-site spec (render/apache.py, socket and port
rewritten to the private ones), and nginx with bench_vs_nginx's config. Each server
runs in the foreground (`apache2 -X`, nginx without master), gets one warm-up
request, then one request under `strace -f`; the script prints the calls of that
request by name (without epoll_wait and futex, counted apart) and stops everything
by pid. No host configuration is read or changed beyond Debian's module list, no
load is generated (four requests per server), so it needs no host lock.

    .venv/bin/python scripts/trace_requests.py [--json]
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import glob
import http.client
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator

from phphost import layout
from phphost.render.apache import render_apache_global, render_site
from phphost.spec.loader import parse_spec

APACHE_PORT, NGINX_PORT = 18089, 18090
HOST = "trace.phphost.test"
PAGES = {"static": "static.html", "hello.php": "hello.php"}
_CALL = re.compile(r"^\d+\s+(?:<\.\.\. )?([a-z_0-9]+)[( ]")


def spec_text(home: str) -> str:
    return (f'[apache]\nhttp_port = {APACHE_PORT}\n[tenants.trace]\nhome = "{home}"\n'
            f'[pools.trace]\ntenant = "trace"\npm = "static"\nmax_children = 2\n'
            f'[sites.trace]\nserver_name = "{HOST}"\ntenant = "trace"\n'
            f'docroot = "htdocs"\npool = "trace"\n')


def apache_conf(d: str, home: str, sock: str) -> str:
    model = parse_spec(spec_text(home), "trace.toml")
    site = model.sites[0]
    rendered = render_apache_global(model) + render_site(site, model)
    rendered = rendered.replace(model.pool("trace").socket, sock)
    rendered = rendered.replace("${APACHE_LOG_DIR}", f"{d}/logs")
    mods = []
    for load in sorted(glob.glob(f"{layout.APACHE_DIR}/mods-enabled/*.load")):
        with open(load, encoding="utf-8") as fh:
            mods += [line for line in fh if line.startswith("LoadModule")]
    for needed in ("proxy", "proxy_fcgi", "headers"):
        if not any(f"/mod_{needed}.so" in m for m in mods):
            mods.append(f"LoadModule {needed}_module /usr/lib/apache2/modules/mod_{needed}.so\n")
    return "".join(mods) + f"""
ServerRoot {layout.APACHE_DIR}
PidFile {d}/httpd.pid
ErrorLog {d}/logs/error.log
DefaultRuntimeDir {d}
Mutex file:{d}
User www-data
Group www-data
ServerName localhost
TypesConfig /etc/mime.types
Include {layout.APACHE_DIR}/mods-enabled/*.conf
<Directory />
    Options FollowSymLinks
    AllowOverride None
    Require all denied
</Directory>
LogFormat "%h %l %u %t \\"%r\\" %>s %O \\"%{{Referer}}i\\" \\"%{{User-Agent}}i\\"" combined
{rendered}"""


def nginx_conf(d: str, docroot: str, sock: str) -> str:
    temps = " ".join(f"{k}_temp_path {d}/n{k};" for k in
                     ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    return f"""daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/logs/nginx-error.log;
events {{ worker_connections 64; }}
http {{
    include /etc/nginx/mime.types;
    access_log {d}/logs/nginx-access.log combined;
    sendfile on;
    {temps}
    server {{
        listen 127.0.0.1:{NGINX_PORT};
        server_name {HOST};
        root {docroot};
        location ~ \\.php$ {{
            try_files $uri =404;
            include /etc/nginx/fastcgi_params;
            fastcgi_param SCRIPT_FILENAME $document_root$fastcgi_script_name;
            fastcgi_pass unix:{sock};
        }}
    }}
}}
"""


def fpm_conf(d: str, sock: str) -> str:
    return (f"[global]\npid = {d}/fpm.pid\nerror_log = {d}/logs/fpm.log\ndaemonize = no\n"
            f"[trace]\nuser = nobody\ngroup = nogroup\nlisten = {sock}\n"
            f"listen.owner = www-data\nlisten.mode = 0600\npm = static\npm.max_children = 2\n")


def get(port: int, path: str) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/" + path, headers={"Host": HOST})
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()


@contextlib.contextmanager
def started(argv: list[str], port: int | None) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while port is not None:
            with contextlib.suppress(OSError):
                get(port, "")
                break
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit(f"{argv[0]} did not start")
            time.sleep(0.1)
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(10)


def traced(pid: int, port: int, path: str, out: str) -> tuple[int, dict[str, int]]:
    """One request to `path` while strace follows `pid`: (status, calls by name)."""
    get(port, path)                                      # warm-up
    tracer = subprocess.Popen(["strace", "-f", "-p", str(pid), "-o", out],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    status = get(port, path)
    time.sleep(0.3)
    tracer.terminate()
    tracer.wait(10)
    calls: collections.Counter[str] = collections.Counter()
    with open(out, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            m = _CALL.match(line)
            if m and "resumed>" not in line:
                calls[m.group(1)] += 1
    return status, dict(calls)


def summary(calls: dict[str, int]) -> str:
    main = {k: v for k, v in calls.items() if k not in ("epoll_wait", "futex",
                                                         "restart_syscall")}
    listed = ", ".join(f"{n} {k}" for k, n in sorted(main.items(), key=lambda kv: -kv[1]))
    return (f"{sum(main.values())} calls ({listed}); futex {calls.get('futex', 0)}, "
            f"epoll_wait {calls.get('epoll_wait', 0)}")


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    for tool in ("strace", "nginx", "apache2", layout.FPM_BINARY):
        if shutil.which(tool) is None:
            ap.error(f"{tool} is missing (scripts/bench_vs_nginx.py installs nginx)")
    results: dict[str, dict[str, object]] = {}
    with tempfile.TemporaryDirectory(prefix="phphost-trace-") as d:
        os.chmod(d, 0o711)                          # noqa: S103 www-data walks to the docroot
        home, sock = f"{d}/home", f"{d}/fpm.sock"
        docroot = f"{home}/htdocs"
        os.makedirs(docroot)
        os.makedirs(f"{d}/logs")
        for path, content in ((f"{docroot}/hello.php", '<?php echo "hello\\n";\n'),
                              (f"{docroot}/static.html", "x" * 2048)):
            with open(path, "w", encoding="utf-8") as fh:
                fh.write(content)
        for path, mode in ((home, 0o755), (docroot, 0o755), (f"{docroot}/hello.php", 0o644),
                           (f"{docroot}/static.html", 0o644)):
            os.chmod(path, mode)                    # a throw-away public docroot
        confs = {"fpm.conf": fpm_conf(d, sock), "apache.conf": apache_conf(d, home, sock),
                 "nginx.conf": nginx_conf(d, docroot, sock)}
        for name, text in confs.items():
            with open(f"{d}/{name}", "w", encoding="utf-8") as fh:
                fh.write(text)
        with started([layout.FPM_BINARY, "--nodaemonize", "--fpm-config", f"{d}/fpm.conf"],
                     None):
            time.sleep(1)
            servers = (("apache", ["apache2", "-X", "-f", f"{d}/apache.conf"], APACHE_PORT),
                       ("nginx", ["nginx", "-c", f"{d}/nginx.conf"], NGINX_PORT))
            for server, cmd, port in servers:
                with started(cmd, port) as proc:
                    for page, path in PAGES.items():
                        status, calls = traced(proc.pid, port, path, f"{d}/trace.txt")
                        results[f"{server} {page}"] = {"status": status, "calls": calls}
    if args.json:
        print(json.dumps(results, indent=1))
    else:
        for key, r in results.items():
            print(f"{key:18s} {r['status']}  {summary(r['calls'])}")  # type: ignore[arg-type]
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
