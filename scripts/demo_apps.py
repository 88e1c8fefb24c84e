"""Deploy the applications of the spec's recipe sites (examples/apps.toml) from Debian's
packages, as a customer would: the code copied into the docroot with symlinks followed
(`cp -rL`, run as the tenant), then the bits of Debian's copy that point at /etc or
/var/lib replaced by the tenant's own config (docs/recipes.md, "Deploying an app").

Run as root after `phphost apply SPEC`, and with --prepare before it (MariaDB started,
since the jails bind /run/mysqld; Debian's global aliases of these packages disabled).
Idempotent: an app already deployed (its stamp file) is left alone.

Everything in the tenant's home is written as the tenant (`runuser`, or a forked child
with its uid and gid), never by root through a path the tenant could swap. Database
passwords are made once and kept by root in /var/lib/phphost-demo (0700).

usage: demo_apps.py --prepare | SPEC
"""

from __future__ import annotations

import os
import secrets
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import demo_mediawiki as dm

from phphost.errors import HostError
from phphost.host.asuser import call_as
from phphost.spec.loader import load_spec
from phphost.spec.model import Model, Site

# Debian's confs that would serve the packages' own copies on every vhost
PACKAGED_CONFS = ("dokuwiki", "adminer", "phpmyadmin", "javascript-common")
PACKAGES = {"wordpress": "/usr/share/wordpress/wp-content/themes/twentytwentythree/theme.json",
            "dokuwiki": "/usr/share/dokuwiki/doku.php",
            "adminer": "/usr/share/adminer/adminer.php",
            "phpmyadmin": "/usr/share/phpmyadmin/index.php"}
DB_USER = "appsdemo"                     # one MariaDB login for the demo apps
DB_NAME = "wordpress"
DEPLOY_VERSION = 3                       # a new one redeploys (the stamp file)
PASSWORD_FILE = "apps-db-password"  # noqa: S105 (a file name)


@dataclass(frozen=True)
class App:
    recipe: str
    site: Site
    user: str
    uid: int
    gid: int
    docroot: str

    @property
    def stamp(self) -> str:
        return f"{self.docroot}/.phphost-deployed"


def say(text: str) -> None:
    print(f"  apps: {text}", flush=True)


def apps_of(model: Model) -> list[App]:
    import grp
    import pwd
    out = []
    for site in model.sites:
        if site.recipe not in PACKAGES or site.tenant is None or site.docroot is None:
            continue
        tenant = model.tenant(site.tenant)
        try:
            uid, gid = pwd.getpwnam(tenant.user).pw_uid, grp.getgrnam(tenant.group).gr_gid
        except KeyError as err:
            raise SystemExit(f"demo_apps: {err}: run `phphost apply {model.source}` first"
                             ) from None
        out.append(App(site.recipe, site, tenant.user, uid, gid, site.docroot))
    return out


# ---------------------------------------------------------------- host side


def prepare() -> None:
    missing = sorted(pkg for pkg, path in PACKAGES.items() if not os.path.exists(path))
    if missing:
        raise SystemExit(f"demo_apps: install {' '.join(missing)} first (scripts/setup-demo)")
    for conf in PACKAGED_CONFS:
        if os.path.lexists(f"/etc/apache2/conf-enabled/{conf}.conf"):
            dm.run(["a2disconf", "-q", conf])
            say(f"disabled Debian's global conf {conf} (a2disconf)")
    dm.ensure_mariadb()


def password() -> str:
    """The demo apps' database password: root's own file, made once."""
    os.makedirs(dm.SECRETS_DIR, 0o700, exist_ok=True)
    path = os.path.join(dm.SECRETS_DIR, PASSWORD_FILE)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        value = secrets.token_urlsafe(24)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(value + "\n")
        return value
    with os.fdopen(fd) as fh:
        value = fh.read(100).strip()
    if not dm.PASSWORD_RE.fullmatch(value):
        raise SystemExit(f"demo_apps: {path} does not hold a password; remove it")
    return value


def ensure_database(pw: str) -> None:
    dm.sql(f"CREATE DATABASE IF NOT EXISTS `{DB_NAME}`;\n"
           f"CREATE USER IF NOT EXISTS '{DB_USER}'@'localhost' IDENTIFIED BY '{pw}';\n"
           f"ALTER USER '{DB_USER}'@'localhost' IDENTIFIED BY '{pw}';\n"
           f"GRANT ALL PRIVILEGES ON `{DB_NAME}`.* TO '{DB_USER}'@'localhost';\n")


# ---------------------------------------------------------------- as the tenant


def as_tenant(app: App, what: Callable[[], None], umask: int = 0o027) -> None:
    def work() -> str | None:
        what()
        return None
    dm.tenant(dm.Wiki(app.user, "", app.uid, app.gid, "", "", "", app.docroot), work, umask)


def copy_tree(app: App, source: str, dest: str, umask: int = 0o027,
              exclude: tuple[str, ...] = ()) -> None:
    """SOURCE's tree into DEST, symlinks followed, as the tenant: what an upload of
    the package's files is. New files and dirs inherit the docroot's default ACL
    (Apache reads them); in a writable dir (umask 007) the pool can write them."""
    def work() -> None:
        _copy(source, dest, exclude, writable=umask == 0o007)
    as_tenant(app, work, umask)


def _copy(source: str, dest: str, exclude: tuple[str, ...], writable: bool) -> None:
    dir_mode, file_mode = (0o2770, 0o660) if writable else (0o750, 0o640)
    os.makedirs(dest, dir_mode, exist_ok=True)
    for top, dirs, files in os.walk(source, followlinks=True):
        rel = os.path.relpath(top, source)
        dirs[:] = sorted(d for d in dirs if os.path.normpath(os.path.join(rel, d)) not in exclude)
        for name in dirs:
            target = os.path.join(dest, rel, name)
            if not os.path.isdir(target):
                os.mkdir(target, dir_mode)
        for name in sorted(files):
            if os.path.normpath(os.path.join(rel, name)) in exclude:
                continue
            target = os.path.join(dest, rel, name)
            with open(os.path.join(top, name), "rb") as fin:
                fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW,
                             file_mode)
                with os.fdopen(fd, "wb") as fout:
                    shutil.copyfileobj(fin, fout, 1 << 20)


def write_as(app: App, path: str, text: str, mode: int = 0o640) -> None:
    as_tenant(app, lambda: dm.write(path, text, mode))


def deployed(app: App) -> bool:
    def look() -> str:
        return dm.read(app.stamp) or ""
    try:
        return call_as(app.uid, app.gid, look) == stamp_text(app)
    except HostError:
        raise SystemExit(f"demo_apps: cannot look into {app.docroot} as {app.user}") from None


def stamp_text(app: App) -> str:
    return f"{app.recipe} {DEPLOY_VERSION}\n"


def deploy_wordpress(app: App, pw: str) -> None:
    d = app.docroot
    copy_tree(app, "/usr/share/wordpress", d)
    salts = "\n".join(f"define('{k}', '{secrets.token_hex(32)}');" for k in (
        "AUTH_KEY", "SECURE_AUTH_KEY", "LOGGED_IN_KEY", "NONCE_KEY", "AUTH_SALT",
        "SECURE_AUTH_SALT", "LOGGED_IN_SALT", "NONCE_SALT"))
    write_as(app, f"{d}/wp-config.php", f"""<?php
// the tenant's own config (Debian's reads /etc/wordpress, which the jail lacks)
define('DB_NAME', '{DB_NAME}');
define('DB_USER', '{DB_USER}');
define('DB_PASSWORD', '{pw}');
define('DB_HOST', 'localhost');
define('DB_CHARSET', 'utf8mb4');
define('DB_COLLATE', '');
{salts}
define('WP_CONTENT_DIR', __DIR__ . '/wp-content');
define('AUTOMATIC_UPDATER_DISABLED', true);
// plugins and themes are written by the pool itself, never over FTP: where the spec
// opts in (recipe_options = ["admin-installs"]); elsewhere installs fail plainly
define('FS_METHOD', 'direct');
// what the pool creates stays writable for the tenant's group: the tenant can manage
// it, and so can the pool's next user (a pool that left the spec and came back)
define('FS_CHMOD_DIR', 02770);
define('FS_CHMOD_FILE', 0660);
$table_prefix = 'wp_';
if (!defined('ABSPATH')) define('ABSPATH', __DIR__ . '/');
require_once ABSPATH . 'wp-settings.php';
""")
    os_mkdir_as(app, f"{d}/wp-content/mu-plugins")
    write_as(app, f"{d}/wp-content/mu-plugins/phphost-permalinks.php",
             "<?php\n// Apache sends every non-file URL to /index.php (front_controller)\n"
             "add_filter('got_url_rewrite', '__return_true');\n")


def os_mkdir_as(app: App, path: str) -> None:
    as_tenant(app, lambda: os.makedirs(path, 0o750, exist_ok=True))


def deploy_dokuwiki(app: App) -> None:
    d = app.docroot
    # lib/plugins/testing (the test suite's plugin) is root's 0700: not for the web
    copy_tree(app, "/usr/share/dokuwiki", d, exclude=("lib/plugins/testing",))
    # Debian's preload.php points DokuWiki at /etc/dokuwiki and /var/lib/dokuwiki
    write_as(app, f"{d}/inc/preload.php", "<?php\n")
    # conf/ and data/ are the pool's writable dirs (made by apply, 2770): what is
    # copied into them must stay writable for the pool (umask 007)
    copy_tree(app, "/etc/dokuwiki", f"{d}/conf", umask=0o007,
              exclude=("acl.auth.php", "users.auth.php"))   # links to www-data's 0700
    with tempfile.TemporaryDirectory(prefix="phphost-doku-") as tmp:
        # Debian's skeleton is www-data's 0700: hand the tenant its own copy (the
        # temporary dir is root's; the tenant may only pass through it)
        os.chmod(tmp, 0o711)  # noqa: S103 (traverse only, no listing)
        shutil.copytree("/var/lib/dokuwiki/data", f"{tmp}/data", symlinks=False)
        for root, dirs, files in os.walk(f"{tmp}/data"):
            for name in (*dirs, *files):
                os.chown(os.path.join(root, name), app.uid, app.gid, follow_symlinks=False)
        os.chown(f"{tmp}/data", app.uid, app.gid)
        copy_tree(app, f"{tmp}/data", f"{d}/data", umask=0o007)
    write_as(app, f"{d}/conf/local.php", f"""<?php
$conf['title'] = 'phphost demo DokuWiki';
$conf['savedir'] = '{d}/data';
$conf['useacl'] = 0;          // the demo lets anyone edit
$conf['userewrite'] = 0;
$conf['dmode'] = 02770;      // what the pool creates stays the tenant group's
$conf['fmode'] = 0660;
""", 0o660)
    for name in ("acl.auth.php", "users.auth.php"):
        write_as(app, f"{d}/conf/{name}", "# empty\n", 0o660)


def deploy_adminer(app: App) -> None:
    copy_tree(app, "/usr/share/adminer/designs/hever", app.docroot)
    dm.run(["runuser", "-u", app.user, "--", "cp", "/usr/share/adminer/adminer.php",
            f"{app.docroot}/index.php"], umask=0o027)


def deploy_phpmyadmin(app: App) -> None:
    d = app.docroot
    copy_tree(app, "/usr/share/phpmyadmin", d)
    with open("/usr/share/phpmyadmin/libraries/vendor_config.php") as fh:
        vendor = fh.read()
    vendor = vendor.replace("'/etc/phpmyadmin/config.inc.php'", "ROOT_PATH . 'config.inc.php'")
    vendor = vendor.replace("'/var/lib/phpmyadmin/tmp/'", "ROOT_PATH . 'tmp/'")
    write_as(app, f"{d}/libraries/vendor_config.php", vendor)
    write_as(app, f"{d}/config.inc.php", f"""<?php
$cfg['blowfish_secret'] = '{secrets.token_hex(16)}';
$i = 1;
$cfg['Servers'][$i]['auth_type'] = 'cookie';
$cfg['Servers'][$i]['host'] = 'localhost';
$cfg['Servers'][$i]['AllowNoPassword'] = false;
$cfg['TempDir'] = ROOT_PATH . 'tmp/';
$cfg['VersionCheck'] = false;
""")


def deploy(app: App, pw: str) -> None:
    if deployed(app):
        return
    if app.recipe == "wordpress":
        deploy_wordpress(app, pw)
    elif app.recipe == "dokuwiki":
        deploy_dokuwiki(app)
    elif app.recipe == "adminer":
        deploy_adminer(app)
    elif app.recipe == "phpmyadmin":
        deploy_phpmyadmin(app)
    write_as(app, app.stamp, stamp_text(app))
    say(f"deployed {app.recipe} into {app.docroot}")


def main(argv: list[str]) -> int:
    if os.geteuid() != 0:
        raise SystemExit("demo_apps: run as root")
    if argv == ["--prepare"]:
        prepare()
        return 0
    if len(argv) != 1 or argv[0].startswith("-"):
        raise SystemExit(__doc__.strip().splitlines()[-1] if __doc__ else "usage")
    model = load_spec(argv[0])
    apps = apps_of(model)
    if not apps:
        raise SystemExit(f"demo_apps: {argv[0]} has no site with a recipe of "
                         f"{', '.join(PACKAGES)}")
    prepare()
    pw = password()
    ensure_database(pw)
    for app in apps:
        deploy(app, pw)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
