#!/usr/bin/env python3
"""How stage 6's own work grows with the tenants (docs/migrate.md, stage 6): the
listing of every owner and mode change in the homes (a walk by descriptor), making
them, putting them back, and choosing the sites-enabled links to take out.

It builds N scratch homes under a private directory (nothing of the host's: no users,
no Apache, no lock needed), each like an imported mod_php site: a docroot of FILES
code files (root's) and a `data` dir of DATA files the web user wrote. Tenants are
"root" so no account is needed; the web user is www-data, as on Debian. phphost's own
apply (the other part of stage 6) is measured in docs/scale.md.

usage: sudo .venv/bin/python scripts/bench_migrate_stage6.py [N ...] [--files F] [--data D]
"""

from __future__ import annotations

import argparse
import os
import pwd
import shutil
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

from phphost.importer.migrate import owners, takeover
from phphost.spec.model import Tenant


def build(base: Path, n: int, files: int, data: int, web: tuple[int, int]) -> list[Tenant]:
    tenants = []
    for i in range(n):
        home = base / f"site{i:04d}"
        (home / "htdocs" / "data").mkdir(parents=True)
        for f in range(files):
            (home / "htdocs" / f"code{f}.php").write_text("<?php echo 1;\n")
        for f in range(data):
            path = home / "htdocs" / "data" / f"upload{f}.txt"
            path.write_text("x\n")
            os.chown(path, *web)
        os.chown(home / "htdocs" / "data", *web)
        tenants.append(Tenant(f"site{i:04d}", "root", "root", str(home)))
    return tenants


def run(n: int, files: int, data: int, web: tuple[int, int]) -> None:
    base = Path(tempfile.mkdtemp(prefix="phphost-bench-stage6-", dir="/var/tmp"))
    try:
        tenants = build(base, n, files, data, web)
        pools = [SimpleNamespace(tenant=t.name, writable=(f"{t.home}/htdocs/data",))
                 for t in tenants]
        model = SimpleNamespace(tenants=tenants, pools=pools)
        began = time.monotonic()
        changes = owners.plan(model, "www-data")  # type: ignore[arg-type]
        listed = time.monotonic() - began
        began = time.monotonic()
        skipped = owners.make(changes)
        made = time.monotonic() - began
        began = time.monotonic()
        left = owners.restore([c.record() for c in changes], {0})
        restored = time.monotonic() - began
        vhosts = [takeover.VhostFile(f"/etc/apache2/sites-enabled/{i:04d}.conf", 1,
                                     (f"site{i}.test",)) for i in range(n)]
        names = {f"site{i}.test" for i in range(n)}
        began = time.monotonic()
        links = takeover.links_to_disable(vhosts, names, "/etc/apache2/sites-enabled",
                                          lambda p: "../sites-available/" + p.rsplit("/", 1)[1])
        chose = time.monotonic() - began
        walked = n * (files + data + 3)
        print(f"{n:>5} tenants, {walked:>7} paths walked, {len(changes):>6} changed: "
              f"list {listed:6.2f} s, make {made:6.2f} s, put back {restored:6.2f} s, "
              f"links {chose * 1000:5.1f} ms ({len(links)}); "
              f"{(listed + made + restored) / n * 1000:.1f} ms a tenant"
              + (f"; skipped {len(skipped)}/{len(left)}" if skipped or left else ""))
    finally:
        shutil.rmtree(base)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("counts", nargs="*", type=int, default=[100, 1000])
    ap.add_argument("--files", type=int, default=20, help="code files a docroot (root's)")
    ap.add_argument("--data", type=int, default=10, help="files in data/ (the web user's)")
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root: it changes owners (of its own scratch files only)")
    pw = pwd.getpwnam("www-data")
    for n in args.counts:
        run(n, args.files, args.data, (pw.pw_uid, pw.pw_gid))


if __name__ == "__main__":
    main()
