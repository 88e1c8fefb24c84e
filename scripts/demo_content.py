"""Put sample content into the demo's docroots, owned by each site's tenant, the
way a tenant would upload it. Existing files are left alone.

usage: demo_content.py SPEC CONTENT_DIR
"""

from __future__ import annotations

import grp
import os
import pwd
import sys

from phphost.spec.loader import load_spec
from phphost.spec.model import Model, Site

PHP_INDEX = """<?php
$u = posix_getpwuid(posix_geteuid());
header('Content-Type: text/plain');
echo "site=%(site)s user=" . $u['name'] . " path=%(path)s\\n";
"""


def makedirs(path: str, uid: int, gid: int) -> None:
    if os.path.isdir(path):
        return
    makedirs(os.path.dirname(path), uid, gid)
    os.mkdir(path, 0o750)
    os.chown(path, uid, gid)


def put(path: str, content: str, uid: int, gid: int) -> None:
    makedirs(os.path.dirname(path), uid, gid)
    if os.path.exists(path):
        return
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
    with os.fdopen(fd, "w") as fh:
        fh.write(content)
    os.chown(path, uid, gid)


def fill_site(model: Model, site: Site, extra: str) -> None:
    if site.tenant is None or site.docroot is None:
        return
    tenant = model.tenant(site.tenant)
    uid, gid = pwd.getpwnam(tenant.user).pw_uid, grp.getgrnam(tenant.group).gr_gid
    root = site.docroot
    put(f"{root}/hello.txt", f"static hello from {site.name}\n", uid, gid)
    put(f"{root}/index.html", f"<h1>{site.server_name}</h1>\n", uid, gid)
    if site.php:
        put(f"{root}/index.php", PHP_INDEX % {"site": site.name, "path": "/"}, uid, gid)
        for route in site.routes:
            put(f"{root}{route.path}index.php",
                PHP_INDEX % {"site": site.name, "path": route.path}, uid, gid)
    else:
        put(f"{root}/secret.php", "<?php echo 'SOURCE-LEAK-CANARY'; ?>\n", uid, gid)
    src = os.path.join(extra, site.name)
    if os.path.isdir(src):
        for name in sorted(os.listdir(src)):
            with open(os.path.join(src, name)) as fh:
                put(f"{root}/{name}", fh.read(), uid, gid)


def main(argv: list[str]) -> int:
    model = load_spec(argv[1])
    for site in model.sites:
        fill_site(model, site, argv[2] if len(argv) > 2 else "")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
