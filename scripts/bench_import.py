#!/usr/bin/env python3
"""How long `phphost import` takes as the number of vhosts grows (target: 1,000):
reading the host (apache2 -t/-S/-M, the docroot walks), translating, and loading the
result with phphost's spec loader (reported apart: it is not import's code).

    sudo .venv/bin/python scripts/bench_import.py [--vhosts 100,1000,2000]

For each size, a scratch ServerRoot under /srv gets that many vhosts (each with a
docroot holding index.php, a data dir and an .htaccess with php_value, every fourth
one TLS, every tenth one without PHP files), mod_php loaded from the .deb that
scripts/setup-demo downloads (or no mod_php and no php_* lines if it is missing).
apache2 is only asked (-t, -S, -M), never started; nothing outside the scratch
directory is touched, and it is removed at the end, also on errors.
"""

from __future__ import annotations

import argparse
import glob
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from phphost.importer.run import gather, render
from phphost.importer.translate import translate
from phphost.spec.loader import parse_spec

DEB_GLOB = "/var/cache/phphost/debs/libapache2-mod-php8.2_*.deb"
MODULES = "/usr/lib/apache2/modules"


def build(base: Path, vhosts: int, modphp: Path | None) -> Path:
    root = base / "apache"
    (root / "sites").mkdir(parents=True)
    load = "\n".join(f"LoadModule {m}_module {MODULES}/mod_{m}.so" for m in
                     ("mpm_prefork", "authz_core", "dir", "mime", "ssl", "socache_shmcb"))
    php = f"LoadModule php_module {modphp}\n" if modphp else ""
    (root / "apache2.conf").write_text(
        f'ServerRoot "{root}"\n{load}\n{php}PidFile {base}/pid\nErrorLog {base}/error.log\n'
        f"Listen 127.0.0.1:8080\nListen 127.0.0.1:8443 https\nServerName localhost\n"
        'User www-data\nGroup www-data\n<FilesMatch ".+\\.php$">\n'
        "    SetHandler application/x-httpd-php\n</FilesMatch>\n"
        f"<Directory {base}/>\n    AllowOverride All\n    Require all granted\n</Directory>\n"
        "IncludeOptional sites/*.conf\n")
    for i in range(vhosts):
        docroot = base / f"t{i}" / "htdocs"
        (docroot / "data").mkdir(parents=True)
        (docroot / "index.html").write_text("x")
        if i % 10:
            (docroot / "index.php").write_text("<?php echo 1;")
        if modphp:
            (docroot / ".htaccess").write_text("php_value upload_max_filesize 8M\n")
        port, tls = (8443, "    SSLEngine on\n    SSLCertificateFile /etc/ssl/certs/"
                     "ssl-cert-snakeoil.pem\n    SSLCertificateKeyFile /etc/ssl/private/"
                     "ssl-cert-snakeoil.key\n") if i % 4 == 0 else (8080, "")
        value = "    php_admin_value memory_limit 96M\n" if modphp else ""
        (root / "sites" / f"{i:05d}.conf").write_text(
            f"<VirtualHost 127.0.0.1:{port}>\n    ServerName site{i}.bench.test\n"
            f"    ServerAlias www.site{i}.bench.test\n    DocumentRoot {docroot}\n"
            f"{tls}{value}</VirtualHost>\n")
    subprocess.run(["chmod", "-R", "a+rX", str(base)], check=True)
    return root


def measure(vhosts: int, modphp: Path | None) -> tuple[float, float, float, int, int]:
    base = Path(tempfile.mkdtemp(prefix="phphost-bench-import-", dir="/srv"))
    try:
        os.chmod(base, 0o755)  # noqa: S103 - the web user walks to the docroots
        root = build(base, vhosts, modphp)
        started = time.perf_counter()
        inputs = gather(str(root))
        read = time.perf_counter() - started
        started = time.perf_counter()
        t = translate(inputs)
        text = render(t, inputs)
        work = time.perf_counter() - started
        started = time.perf_counter()
        model = parse_spec(text, "bench.toml")      # phphost's own loader, as import runs it
        return read, work, time.perf_counter() - started, len(model.sites), len(t.problems)
    finally:
        shutil.rmtree(base)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--vhosts", default="100,1000,2000", help="comma-separated sizes")
    args = p.parse_args()
    if os.geteuid() != 0:
        print("bench_import: run as root (the docroots are walked as the web user sees them)",
              file=sys.stderr)
        return 2
    debs = sorted(glob.glob(DEB_GLOB))
    scratch = Path(tempfile.mkdtemp(prefix="phphost-bench-modphp-"))
    try:
        modphp = None
        if debs:
            subprocess.run(["dpkg-deb", "-x", debs[-1], str(scratch)], check=True)
            modphp = scratch / "usr/lib/apache2/modules/libphp8.2.so"
        print(f"mod_php: {'loaded from ' + debs[-1] if debs else 'not available'}")
        print(f"{'vhosts':>7} {'read s':>7} {'translate s':>12} {'ms/vhost':>9} "
              f"{'spec load s':>12} {'sites':>6} {'problems':>9}")
        for size in (int(x) for x in args.vhosts.split(",")):
            read, work, load, sites, problems = measure(size, modphp)
            per = (read + work) * 1000 / size
            print(f"{size:>7} {read:>7.2f} {work:>12.2f} {per:>9.2f} {load:>12.2f} {sites:>6} "
                  f"{problems:>9}")
    finally:
        shutil.rmtree(scratch)
    return 0


if __name__ == "__main__":
    sys.exit(main())
