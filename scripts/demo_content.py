"""Put sample content into the demo's docroots, owned by each site's tenant, the
way a tenant would upload it: written by a child running as the tenant, so root
never acts through a path in a tenant's home. Existing files are left alone.

usage: demo_content.py SPEC CONTENT_DIR
"""

from __future__ import annotations

import grp
import os
import pwd
import sys

from phphost.host.asuser import call_as
from phphost.spec.loader import load_spec
from phphost.spec.model import Model, Site

PHP_INDEX = """<?php
$u = posix_getpwuid(posix_geteuid());
header('Content-Type: text/plain');
echo "site=%(site)s user=" . $u['name'] . " path=%(path)s\\n";
"""


def put(path: str, content: str) -> None:
    """As the tenant (the caller dropped to its uid and gid): a new file, never an old
    one; a symlink in the way is the tenant's own business and reaches only what the
    tenant may write."""
    os.makedirs(os.path.dirname(path), 0o750, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o640)
    except FileExistsError:
        return
    with os.fdopen(fd, "w") as fh:
        fh.write(content)


def site_files(site: Site, extra: str) -> dict[str, str]:
    """Path -> content of the sample files for one site (read by root from the repo)."""
    root = site.docroot
    files = {f"{root}/hello.txt": f"static hello from {site.name}\n",
             f"{root}/index.html": f"<h1>{site.server_name}</h1>\n"}
    if site.php:
        files[f"{root}/index.php"] = PHP_INDEX % {"site": site.name, "path": "/"}
        for route in site.routes:
            files[f"{root}{route.path}index.php"] = PHP_INDEX % {"site": site.name,
                                                                "path": route.path}
    else:
        files[f"{root}/secret.php"] = "<?php echo 'SOURCE-LEAK-CANARY'; ?>\n"
    src = os.path.join(extra, site.name)
    if extra and os.path.isdir(src):
        for name in sorted(os.listdir(src)):
            with open(os.path.join(src, name)) as fh:
                files[f"{root}/{name}"] = fh.read()
    return files


def fill_site(model: Model, site: Site, extra: str) -> None:
    if site.tenant is None or site.docroot is None:
        return
    tenant = model.tenant(site.tenant)
    uid, gid = pwd.getpwnam(tenant.user).pw_uid, grp.getgrnam(tenant.group).gr_gid
    files = site_files(site, extra)

    def work() -> None:
        for path, content in files.items():
            put(path, content)

    call_as(uid, gid, work)


def main(argv: list[str]) -> int:
    model = load_spec(argv[1])
    for site in model.sites:
        fill_site(model, site, argv[2] if len(argv) > 2 else "")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
