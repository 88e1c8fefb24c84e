#!/usr/bin/env python3
"""How long visitors of a mod_php Apache are refused while `phphost migrate` switches
it to the event MPM (stage 4: apache2 stopped and started) and back (4 -> 3).

    flock /run/lock/phphost-integration.lock \\
        .venv/bin/python scripts/bench_migrate_stage4.py [--sites 20] [--rounds 3]

A scratch ServerRoot under /srv: prefork and mod_php (from the .deb scripts/setup-demo
downloads, extracted, never installed) enabled by Debian links, N vhosts with an
index.php and a static file, on a free loopback port. `phphost import`, `phphost
migrate` 0 -> 3, then ROUNDS times 3 -> 4 -> 3 while a client asks, back to back, for
a static file and a PHP page of one vhost and records every request that fails
(refused, reset, 5xx). Per switch: migrate's wall time, the failed requests and the
longest stretch without an answer. At the end `--to 0`, the scratch apache2 stopped
by its pid and the directory removed, also on errors. The web user's FPM runs under
the host's supervisord meanwhile: hold the integration lock."""

from __future__ import annotations

import argparse
import contextlib
import glob
import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from phphost.importer.source import apache_env

PHPHOST = str(Path(sys.executable).parent / "phphost")
APACHE = "/usr/sbin/apache2"
MODULES = "/usr/lib/apache2/modules"
DEB = "/var/cache/phphost/debs/libapache2-mod-php8.2_*.deb"
COPIED = ("mpm_prefork.load", "mpm_prefork.conf", "mpm_event.load", "mpm_event.conf",
          "actions.load", "actions.conf", "proxy.load", "proxy_fcgi.load")
ENABLED = ("mpm_prefork.load", "mpm_prefork.conf", "php8.2.load", "php8.2.conf")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def build(base: Path, sites: int, port: int) -> Path:
    root = base / "apache"
    ext = base / "pkg"
    subprocess.run(["dpkg-deb", "-x", sorted(glob.glob(DEB))[-1], str(ext)], check=True)
    for sub in ("mods-available", "mods-enabled", "conf-enabled", "sites"):
        (root / sub).mkdir(parents=True)
    for name in COPIED:
        shutil.copy(f"/etc/apache2/mods-available/{name}", root / "mods-available")
    load = (ext / "etc/apache2/mods-available/php8.2.load").read_text()
    (root / "mods-available/php8.2.load").write_text(
        load.replace(f"{MODULES}/libphp8.2.so", f"{ext}{MODULES}/libphp8.2.so"))
    shutil.copy(ext / "etc/apache2/mods-available/php8.2.conf", root / "mods-available")
    for name in ENABLED:
        (root / "mods-enabled" / name).symlink_to(f"../mods-available/{name}")
    (root / "envvars").write_text("export PHP_INI_SCAN_DIR=/etc/php/8.2/fpm/conf.d\n")
    mods = "\n".join(f"LoadModule {m}_module {MODULES}/mod_{m}.so"
                     for m in ("authz_core", "dir", "mime", "alias"))
    (base / "logs").mkdir()
    (root / "apache2.conf").write_text(f"""ServerRoot "{root}"
{mods}
IncludeOptional mods-enabled/*.load
IncludeOptional mods-enabled/*.conf
PidFile {base}/apache2.pid
ErrorLog {base}/logs/error.log
DefaultRuntimeDir {base}
Mutex file:{base} default
Listen 127.0.0.1:{port}
ServerName localhost
User www-data
Group www-data
TypesConfig /etc/mime.types
DirectoryIndex index.php index.html
<Directory />
    AllowOverride None
    Require all denied
</Directory>
<Directory {base}/>
    Require all granted
</Directory>
IncludeOptional conf-enabled/*.conf
IncludeOptional sites/*.conf
""")
    for i in range(sites):
        docroot = base / f"site{i}" / "htdocs"
        docroot.mkdir(parents=True)
        (docroot / "index.php").write_text(f"<?php echo 'site {i} ', 6 * 7;\n")
        (docroot / "s.txt").write_text(f"static {i}\n")
        (root / "sites" / f"{i:04d}.conf").write_text(
            f"<VirtualHost 127.0.0.1:{port}>\n    ServerName site{i}.test\n"
            f"    DocumentRoot {docroot}\n</VirtualHost>\n")
    subprocess.run(["chmod", "-R", "a+rX", str(base)], check=True)
    return root


class Client(threading.Thread):
    """GET / and /s.txt of site0.test back to back; (time, ok) of each request."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.seen: list[tuple[float, bool]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        paths = ("/", "/s.txt")
        n = 0
        while not self.stop.is_set():
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
            try:
                conn.request("GET", paths[n % 2], headers={"Host": "site0.test"})
                ok = conn.getresponse().status < 500
            except (OSError, http.client.HTTPException):
                ok = False
            finally:
                conn.close()
            self.seen.append((time.monotonic(), ok))
            n += 1
            if not ok:
                time.sleep(0.002)


def outage(seen: list[tuple[float, bool]], start: float, end: float) -> tuple[int, int, float]:
    """(requests, failed, longest stretch in s from a failure to the next success)."""
    window = [(t, ok) for t, ok in seen if start <= t <= end]
    longest, since = 0.0, None
    for t, ok in window:
        if not ok and since is None:
            since = t
        elif ok and since is not None:
            longest, since = max(longest, t - since), None
    if since is not None:
        longest = max(longest, window[-1][0] - since)
    return len(window), sum(1 for _, ok in window if not ok), longest


def migrate(args: list[str]) -> float:
    began = time.monotonic()
    proc = subprocess.run([PHPHOST, "migrate", *args], capture_output=True, text=True,
                          timeout=600)
    if proc.returncode != 0:
        raise SystemExit(f"phphost migrate {' '.join(args)}: exit {proc.returncode}\n"
                         f"{proc.stdout}{proc.stderr}")
    return time.monotonic() - began


@dataclass
class Scratch:
    """A scratch mod_php host: its directory, ServerRoot, port, migrate's common
    arguments (spec, --apache-root, --urls) and the stage it stands at."""

    base: Path
    root: Path
    port: int
    common: list[str]
    at: int = 0


@contextlib.contextmanager
def scratch_host(prefix: str, sites: int) -> Iterator[Scratch]:
    """A mod_php Apache of `sites` vhosts under /srv, started and read by `phphost
    import`; at the end migrated back to 0, stopped by its pid and removed."""
    base = Path(tempfile.mkdtemp(prefix=prefix, dir="/srv"))
    os.chmod(base, 0o755)  # noqa: S103 - the web user walks to the docroots
    port = free_port()
    root = build(base, sites, port)
    spec, urls = base / "spec.toml", base / "urls.txt"
    urls.write_text("".join(f"http://site{i}.test:{port}{p}\n"
                            for i in range(sites) for p in ("/", "/s.txt")))
    host = Scratch(base, root, port, [str(spec), "--apache-root", str(root), "--urls", str(urls)])
    try:
        subprocess.run([APACHE, "-d", str(root), "-f", str(root / "apache2.conf"), "-k", "start"],
                       check=True, env=apache_env(str(root)))
        time.sleep(1)
        subprocess.run([PHPHOST, "import", "--apache-root", str(root), "--out", str(spec)],
                       check=True, capture_output=True)
        yield host
    finally:
        try:
            if host.at:
                migrate([*host.common, "--to", "0"])
        finally:
            stop_apache(base)
            shutil.rmtree(base)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sites", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    opts = parser.parse_args()
    if os.geteuid() != 0 or not glob.glob(DEB):
        print("needs root and the .deb scripts/setup-demo downloads", file=sys.stderr)
        return 2
    with scratch_host("phphost-bench-stage4-", opts.sites) as host:
        migrate([*host.common, "--to", "3"])
        host.at = 3
        client = Client(host.port)
        client.start()
        print(f"{opts.sites} vhosts, mod_php on prefork; a client asking back to back")
        print("switch  migrate  requests  failed  longest stretch without an answer")
        for _ in range(opts.rounds):
            for target in (4, 3):
                start = time.monotonic()
                took = migrate([*host.common, "--to", str(target)])
                host.at = target
                time.sleep(0.3)
                total, failed, longest = outage(client.seen, start, time.monotonic())
                print(f"{'3 -> 4' if target == 4 else '4 -> 3'}  {took:6.2f} s  {total:8d}  "
                      f"{failed:6d}  {longest * 1000:8.0f} ms")
        client.stop.set()
        client.join()
    return 0


def stop_apache(base: Path) -> None:
    """The scratch apache2 (started by this script, restarted by migrate), by its pid."""
    path = base / "apache2.pid"
    pid = path.read_text().strip() if path.exists() else ""
    if pid:
        os.kill(int(pid), signal.SIGTERM)
        deadline = time.monotonic() + 15
        while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
            time.sleep(0.1)


if __name__ == "__main__":
    sys.exit(main())
