"""Provision the demo wiki: MediaWiki from Debian's `mediawiki` package on MariaDB
(`mariadb-server`), served by the jailed pool of the spec's site `wiki`.

Run as root after `phphost apply SPEC` (the tenant and pool users must exist), and
with --prepare before it (steps 1 and 2 only: the pool's jail binds /run/mysqld, so
MariaDB must have started before its FPM master does). Idempotent: a re-run with
nothing to do takes well under a second. It

1. disables Debian's global `Alias /mediawiki` (conf `mediawiki`; it would serve
   /var/lib/mediawiki on every vhost) and reloads apache2 if that changed anything;
2. starts MariaDB (`/etc/init.d/mariadb start`) unless it answers;
3. deploys the code as the tenant: /usr/share/mediawiki, symlinks dereferenced, into
   DOCROOT/w (again only when the package version changed);
4. creates the database and its user (random password, generated once and kept by
   root in /var/lib/phphost-demo, 0600: root never reads a secret back from a file the
   tenant can write), runs maintenance/install.php as the tenant (update.php after a
   package upgrade), and keeps LocalSettings.php outside the docroot, mode 0640;

Everything in the tenant's home is read and written as the tenant (a forked child
with its uid and gid), never by root through a path the tenant could swap for a
symlink.
5. builds the localisation cache and writes DOCROOT/.htaccess so that "/" shows the
   main page.

Layout and reasons: docs/mediawiki.md.

usage: demo_mediawiki.py --prepare | SPEC
"""

from __future__ import annotations

import grp
import os
import pwd
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from phphost.errors import HostError, PhphostError
from phphost.host.asuser import call_as
from phphost.host.services import apache_configtest, apache_reload
from phphost.spec.loader import load_spec
from phphost.spec.model import Model

SITE = "wiki"
SITENAME = "phphost Demo Wiki"
ADMIN = "WikiAdmin"
DB_NAME = "wiki"
DB_USER = "wiki"

SOURCE = "/usr/share/mediawiki"      # Debian's mediawiki (+ mediawiki-classes) package
CODE = "w"                           # the code's directory in the docroot: /w/index.php
# Not copied: Debian's links to its own writable state in /var/lib/mediawiki and
# /etc/mediawiki (LocalSettings.php, images, config) and the web installer (mw-config:
# install.php runs from the command line). `extensions` is copied through Debian's
# links into extensions-core, which is therefore not copied a second time.
SKIP = frozenset({"LocalSettings.php", "images", "config", "mw-config", "extensions-core",
                  "cache"})
APACHE_CONF = "mediawiki"            # /etc/apache2/conf-available/mediawiki.conf
MARIADB_INIT = "/etc/init.d/mariadb"
CLEAN_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}

SECRETS_DIR = "/var/lib/phphost-demo"          # root's, 0700
DB_PASSWORD_FILE = f"{SECRETS_DIR}/wiki-db-password"
PASSWORD_RE = re.compile(r"[A-Za-z0-9_-]{32}")  # what secrets.token_urlsafe(24) makes

SETTINGS_MARK = "# --- phphost demo (scripts/demo_mediawiki.py) ---"
SETTINGS_END = "# --- end of phphost demo ---"


@dataclass(frozen=True)
class Wiki:
    """Where everything goes, from the spec's site `wiki`."""

    user: str
    group: str
    uid: int
    gid: int
    pool: str
    server: str
    home: str
    docroot: str

    @property
    def code(self) -> str:
        return f"{self.docroot}/{CODE}"

    @property
    def script_path(self) -> str:
        return "/" + os.path.relpath(self.code, self.docroot)

    @property
    def settings(self) -> str:        # the real one, with the secrets: outside the docroot
        return f"{self.home}/LocalSettings.php"

    @property
    def images(self) -> str:
        return f"{self.home}/images"

    @property
    def cache(self) -> str:
        return f"{self.home}/cache"

    @property
    def stamp(self) -> str:           # which package version DOCROOT/w holds
        return f"{self.home}/.mediawiki-deployed"

    @property
    def installing(self) -> str:      # present while install.php runs
        return f"{self.home}/.mediawiki-installing"

    @property
    def admin_password(self) -> str:
        return f"{self.home}/admin-password.txt"


def say(text: str) -> None:
    print(f"  wiki: {text}", flush=True)


def fail(text: str) -> SystemExit:
    return SystemExit(f"demo_mediawiki: {text}")


def run(argv: Sequence[str], *, input_text: str | None = None, cwd: str | None = None,
        check: bool = True, timeout: float = 600,
        umask: int = 0o027) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(list(argv), input=input_text, capture_output=True, text=True,
                          cwd=cwd, timeout=timeout, check=False, env=CLEAN_ENV, umask=umask)
    if check and proc.returncode != 0:
        out = (proc.stdout + proc.stderr).strip()[-3000:]
        raise fail(f"{' '.join(argv)} exited {proc.returncode}:\n{out}")
    return proc


def wiki_of(model: Model) -> Wiki:
    site = next((s for s in model.sites if s.name == SITE), None)
    if site is None or site.tenant is None or site.docroot is None or site.pool is None:
        raise fail(f"the spec has no PHP site {SITE!r} with a tenant and docroot")
    tenant, pool = model.tenant(site.tenant), model.pool(site.pool)
    try:
        uid, gid = pwd.getpwnam(tenant.user).pw_uid, grp.getgrnam(tenant.group).gr_gid
    except KeyError as err:
        raise fail(f"{err}: run `phphost apply {model.source}` first") from None
    wiki = Wiki(tenant.user, tenant.group, uid, gid, pool.name, f"http://{site.server_name}",
                tenant.home, site.docroot)
    missing = {wiki.images, wiki.cache} - set(pool.writable)
    if missing:
        raise fail(f"pool {pool.name!r} must list {sorted(missing)} in `writable`")
    return wiki


# ---------------------------------------------------------------- host services


def require_packages() -> None:
    needed = {f"{SOURCE}/index.php": "mediawiki", "/usr/sbin/mariadbd": "mariadb-server",
              "/usr/bin/php": "php-cli", MARIADB_INIT: "mariadb-server"}
    missing = sorted({pkg for path, pkg in needed.items() if not os.path.exists(path)})
    if missing:
        raise fail(f"install {' '.join(missing)} first (scripts/setup-demo does)")


def disable_packaged_alias() -> None:
    """Debian's mediawiki.conf maps /mediawiki to /var/lib/mediawiki in *every* vhost
    (AllowOverride All, outside any tenant's jail and identity)."""
    if not os.path.lexists(f"/etc/apache2/conf-enabled/{APACHE_CONF}.conf"):
        return
    run(["a2disconf", "-q", APACHE_CONF])
    try:
        apache_configtest()
        if _apache_running():
            apache_reload(restart=False)
    except PhphostError as err:
        raise fail(str(err)) from None
    say(f"disabled Debian's global Alias /mediawiki (a2disconf {APACHE_CONF})")


def _apache_running() -> bool:
    try:
        with open("/run/apache2/apache2.pid") as fh:
            os.kill(int(fh.read().strip()), 0)
    except (OSError, ValueError):
        return False
    return True


def mariadb_alive() -> bool:
    return run(["mariadb-admin", "--silent", "ping"], check=False, timeout=15).returncode == 0


def ensure_mariadb() -> None:
    if mariadb_alive():
        return
    # Its own session, no inherited descriptors (a caller's lock file or pipe would
    # otherwise stay open as long as mysqld_safe and its logger live).
    subprocess.run([MARIADB_INIT, "start"], stdin=subprocess.DEVNULL,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=CLEAN_ENV,
                   start_new_session=True, close_fds=True, check=False, timeout=120)
    deadline = time.monotonic() + 30
    while not mariadb_alive():
        if time.monotonic() > deadline:
            raise fail(f"MariaDB did not start ({MARIADB_INIT} start); "
                       "see /var/log/mysql/error.log or `journalctl`")
        time.sleep(0.5)
    say("started MariaDB")


def sql(statements: str) -> str:
    """Run SQL as MariaDB's root (unix_socket auth); statements go through stdin so
    that passwords never appear in a process list. --sandbox: the client refuses
    `system`, `source` and the like, whatever the statements hold."""
    return run(["mariadb", "--sandbox", "--batch", "--skip-column-names"],
               input_text=statements).stdout


def db_password() -> str:
    """The wiki database user's password: root's own file, made once. Never read
    from LocalSettings.php, which the tenant (and its PHP) can rewrite."""
    os.makedirs(SECRETS_DIR, 0o700, exist_ok=True)
    dfd = os.open(SECRETS_DIR, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        st = os.fstat(dfd)
        if st.st_uid != 0 or st.st_mode & 0o077:
            raise fail(f"{SECRETS_DIR} must be root's and mode 0700")
        try:
            fd = os.open("wiki-db-password", os.O_RDONLY | os.O_NOFOLLOW, dir_fd=dfd)
        except FileNotFoundError:
            password = secrets.token_urlsafe(24)
            fd = os.open("wiki-db-password", os.O_WRONLY | os.O_CREAT | os.O_EXCL
                         | os.O_NOFOLLOW, 0o600, dir_fd=dfd)
            with os.fdopen(fd, "w") as fh:
                fh.write(password + "\n")
            return password
        with os.fdopen(fd) as fh:
            password = fh.read(100).strip()
    finally:
        os.close(dfd)
    if not PASSWORD_RE.fullmatch(password):
        raise fail(f"{DB_PASSWORD_FILE} does not hold a password of 32 [A-Za-z0-9_-]; "
                   "remove it and run again (a new one is made)")
    return password


# ---------------------------------------------------------------- code


def package_version() -> str:
    return run(["dpkg-query", "-W", "-f=${Version}", "mediawiki"]).stdout.strip()


def source_files(top: str) -> Iterator[tuple[str, str, bool]]:
    """(relative path, real source path, is_dir) of the package's tree, symlinks
    followed (Debian's extensions/ is a directory of links into extensions-core/)."""
    for name in sorted(os.listdir(top)):
        if name in SKIP:
            continue
        path = os.path.join(top, name)
        if not os.path.isdir(path):
            yield name, path, False
            continue
        yield name, path, True
        for dirpath, dirnames, filenames in os.walk(path, followlinks=True):
            dirnames.sort()
            rel = os.path.relpath(dirpath, top)
            for d in dirnames:
                yield os.path.join(rel, d), os.path.join(dirpath, d), True
            for f in sorted(filenames):
                yield os.path.join(rel, f), os.path.join(dirpath, f), False


def sync_tree(src: str, dest: str) -> tuple[int, int]:
    """Make dest a copy of src (run as the tenant: it owns what it deploys).
    Files already equal in size and mtime are kept. Returns (copied, removed)."""
    copied = removed = 0
    wanted = {"."}
    os.makedirs(dest, 0o750, exist_ok=True)
    for rel, path, is_dir in source_files(src):
        wanted.add(rel)
        target = os.path.join(dest, rel)
        if is_dir:
            if os.path.islink(target) or (os.path.lexists(target) and not os.path.isdir(target)):
                os.unlink(target)
            if not os.path.isdir(target):
                os.mkdir(target, 0o750)
            continue
        st = os.stat(path)
        try:
            have = os.lstat(target)
            if (os.path.isfile(target) and not os.path.islink(target)
                    and have.st_size == st.st_size and have.st_mtime_ns == st.st_mtime_ns):
                continue
        except FileNotFoundError:
            pass
        tmp = f"{target}.phphost-new"
        with open(path, "rb") as fin:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o640)
            with os.fdopen(fd, "wb") as fout:
                shutil.copyfileobj(fin, fout, 1 << 20)
        os.utime(tmp, ns=(st.st_atime_ns, st.st_mtime_ns))
        if os.path.isdir(target) and not os.path.islink(target):
            shutil.rmtree(target)
        os.replace(tmp, target)
        copied += 1
    for dirpath, dirnames, filenames in os.walk(dest, topdown=False):
        rel_dir = os.path.relpath(dirpath, dest)
        for name in filenames + dirnames:
            rel = os.path.normpath(os.path.join(rel_dir, name))
            if rel in wanted or (rel_dir == "." and name == "LocalSettings.php"):
                continue
            path = os.path.join(dirpath, name)
            if os.path.isdir(path) and not os.path.islink(path):
                os.rmdir(path)          # its content is gone already (bottom-up walk)
            else:
                os.unlink(path)
            removed += 1
    return copied, removed


def tenant(wiki: Wiki, what: Callable[[], str | None], umask: int = 0o027) -> str | None:
    """`what()` in a child with the tenant's uid/gid (no other groups); its result."""
    try:
        return call_as(wiki.uid, wiki.gid, what, umask)
    except HostError:
        raise fail(f"a step run as {wiki.user} failed (above)") from None


def tenant_read(wiki: Wiki, path: str) -> str | None:
    return tenant(wiki, lambda: read(path))


def tenant_write(wiki: Wiki, path: str, text: str, mode: int) -> None:
    def work() -> None:
        write(path, text, mode)
    tenant(wiki, work)


def deploy_code(wiki: Wiki, version: str) -> bool:
    """Copy the package's code into DOCROOT/w; True when something changed."""
    want = f"mediawiki {version}\n"

    def deployed() -> str:
        ok = read(wiki.stamp) == want and os.path.isfile(f"{wiki.code}/index.php")
        return "yes" if ok else "no"

    if tenant(wiki, deployed) == "yes":
        return False
    start = time.monotonic()

    def work() -> None:
        copied, removed = sync_tree(SOURCE, wiki.code)
        write(wiki.stamp, want, 0o640)
        say(f"deployed MediaWiki {version} to {wiki.code}: {copied} files copied, "
            f"{removed} removed, {time.monotonic() - start:.1f}s")

    tenant(wiki, work)
    return True


# ---------------------------------------------------------------- settings, database


def read(path: str) -> str | None:
    try:
        with open(path) as fh:
            return fh.read()
    except FileNotFoundError:
        return None


def write(path: str, text: str, mode: int) -> None:
    tmp = f"{path}.phphost-new"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, mode)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def ensure_database(password: str) -> None:
    if not PASSWORD_RE.fullmatch(password):
        raise fail("refusing a database password outside [A-Za-z0-9_-]{32}")
    sql(f"CREATE DATABASE IF NOT EXISTS `{DB_NAME}`;\n"
        f"CREATE USER IF NOT EXISTS '{DB_USER}'@'localhost' IDENTIFIED BY '{password}';\n"
        f"ALTER USER '{DB_USER}'@'localhost' IDENTIFIED BY '{password}';\n"
        f"GRANT ALL PRIVILEGES ON `{DB_NAME}`.* TO '{DB_USER}'@'localhost';\n")


def tables_exist() -> bool:
    out = sql("SELECT COUNT(*) FROM information_schema.tables "  # noqa: S608 (constants)
              f"WHERE table_schema = '{DB_NAME}' AND table_name = 'page';\n")
    return out.strip() == "1"


def php(wiki: Wiki, script: str, *args: str) -> str:
    """A maintenance script, run as the tenant (not jailed: it is the tenant's own
    deploy step, like running it over ssh). Umask 007 as the pool's master has, so
    that what it creates in the writable dirs stays writable for the pool."""
    argv = ["runuser", "-u", wiki.user, "--", "php", f"{wiki.code}/maintenance/{script}",
            *args]
    return run(argv, cwd=wiki.code, umask=0o007).stdout


def install(wiki: Wiki, db_password: str) -> None:
    if tables_exist():
        if tenant(wiki, lambda: "yes" if os.path.exists(wiki.installing) else "no") != "yes":
            raise fail(f"database {DB_NAME!r} holds a wiki but {wiki.settings} is missing; "
                       f"restore the file, or drop the database to reinstall: "
                       f"mariadb -e 'DROP DATABASE {DB_NAME}'")
        sql(f"DROP DATABASE `{DB_NAME}`;\n")        # left by an interrupted install
        ensure_database(db_password)
    admin_password = secrets.token_urlsafe(18)

    def begin() -> str:
        """As the tenant: the install marker, no stub beside the code (install.php
        refuses to run beside one), the two secrets in a private temporary dir."""
        write(wiki.installing, "", 0o600)
        stub = f"{wiki.code}/LocalSettings.php"
        if os.path.lexists(stub):
            os.unlink(stub)
        secrets_dir = tempfile.mkdtemp(prefix="phphost-wiki-")
        for name, value in (("db", db_password), ("admin", admin_password)):
            write(f"{secrets_dir}/{name}", value, 0o600)
        return secrets_dir

    secrets_dir = tenant(wiki, begin) or ""
    start = time.monotonic()
    try:
        php(wiki, "install.php", "--server", wiki.server, "--scriptpath", wiki.script_path,
            "--dbtype", "mysql", "--dbserver", "localhost", "--dbname", DB_NAME,
            "--dbuser", DB_USER, "--dbpassfile", f"{secrets_dir}/db",
            "--passfile", f"{secrets_dir}/admin", "--lang", "en",
            "--confpath", wiki.home, SITENAME, ADMIN)
    finally:
        tenant(wiki, lambda: shutil.rmtree(secrets_dir, ignore_errors=True))

    def finish() -> None:
        write(wiki.admin_password, f"{ADMIN} {admin_password}\n", 0o600)
        os.unlink(wiki.installing)

    tenant(wiki, finish)
    say(f"installed MediaWiki into database {DB_NAME!r} ({time.monotonic() - start:.1f}s); "
        f"admin login in {wiki.admin_password}")


def demo_settings(wiki: Wiki, db_password: str) -> str:
    return f"""{SETTINGS_MARK}
# The database password is root's (/var/lib/phphost-demo); this line wins over any above.
$wgDBpassword = "{db_password}";
# The pool runs chrooted with the jail features mysql, iconv, locale (docs/mediawiki.md).
# Uploads and caches live beside the docroot, in the pool's `writable` directories.
$wgUploadDirectory = "{wiki.images}";
$wgUploadPath = "$wgScriptPath/img_auth.php";   # Apache cannot read {wiki.images}
$wgCacheDirectory = "{wiki.cache}";
$wgEnableUploads = false;
# APCu (per pool here: each pool has its own FPM master) is lost on a pool reload;
# keep sessions in the database.
$wgSessionCacheType = CACHE_DB;
# Cache keys belong to this installation: after a reinstall into a database of the
# same name, the pool's APCu must not serve the old wiki's entries.
$wgCachePrefix = "{DB_NAME}-" . substr( hash( 'sha256', $wgSecretKey ), 0, 12 );
# "/" is the main page (DOCROOT/.htaccess: DirectoryIndex {wiki.script_path}/index.php)
$wgMainPageIsDomainRoot = true;
# No programs in the jail: never shell out (no /bin/sh, diff3, convert, firejail).
$wgShellRestrictionMethod = false;
$wgUseImageMagick = false;
$wgDiff3 = false;
$wgDiff = false;
$wgPhpCli = false;
# No mail in the jail ('mail' feature off).
$wgEnableEmail = false;
$wgEnableUserEmail = false;
$wgEnotifUserTalk = false;
$wgEnotifWatchlist = false;
{SETTINGS_END}"""


def finish_settings(wiki: Wiki, db_password: str) -> None:
    """Add the demo's block to LocalSettings.php, or bring it up to date in place;
    whatever the tenant added before or after it stays. As the tenant: it is the
    tenant's file."""
    block = demo_settings(wiki, db_password)

    def work() -> None:
        text = read(wiki.settings) or ""
        if SETTINGS_MARK in text and SETTINGS_END in text:
            head, rest = text.split(SETTINGS_MARK, 1)
            want = head + block + rest.split(SETTINGS_END, 1)[1]
        else:
            want = text.rstrip("\n") + "\n\n" + block + "\n"
        if text != want:
            write(wiki.settings, want, 0o640)
        os.chmod(wiki.settings, 0o640)      # the tenant and its pools (group), no one else

    tenant(wiki, work)


def entry_files(wiki: Wiki) -> None:
    """The docroot's small files, as the tenant writes them."""
    files = {
        f"{wiki.code}/LocalSettings.php":
            "<?php\n// phphost demo: the settings (with the database password) live "
            "outside the docroot\n"
            f"require_once '{wiki.settings}';\n",
        # "/" shows the wiki's main page; /index.php stays the demo's own page
        f"{wiki.docroot}/.htaccess": f"DirectoryIndex {wiki.script_path}/index.php\n",
    }

    def work() -> None:
        for path, text in files.items():
            if read(path) != text:
                write(path, text, 0o640)

    tenant(wiki, work)


def localisation_cache(wiki: Wiki, force: bool) -> None:
    if not force and os.path.exists(f"{wiki.cache}/l10n_cache-en.cdb"):
        return
    start = time.monotonic()
    php(wiki, "rebuildLocalisationCache.php", "--lang=en", "--force")
    say(f"built the localisation cache ({time.monotonic() - start:.1f}s)")


# ---------------------------------------------------------------- main


def provision(wiki: Wiki) -> None:
    prepare()
    version = package_version()
    upgraded = deploy_code(wiki, version)
    password = db_password()
    ensure_database(password)
    if tenant(wiki, lambda: "yes" if os.path.lexists(wiki.settings) else "no") != "yes":
        install(wiki, password)
        finish_settings(wiki, password)
    elif not tables_exist():
        raise fail(f"{wiki.settings} exists but database {DB_NAME!r} has no wiki; move the "
                   "file away to reinstall")
    else:
        finish_settings(wiki, password)     # before update.php: it needs the password
        if upgraded:
            php(wiki, "update.php", "--quick")
            say("ran maintenance/update.php")
    entry_files(wiki)
    localisation_cache(wiki, force=upgraded)
    say(f"{wiki.server}/ (pool {wiki.pool}, jailed)")


def prepare() -> None:
    """Before `phphost apply`: the wiki pool's jail binds /run/mysqld, which must exist
    when its master starts, and the packaged Alias should never be loaded."""
    require_packages()
    disable_packaged_alias()
    ensure_mariadb()


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    if os.geteuid() != 0:
        raise fail("run as root")
    if argv[1] == "--prepare":
        prepare()
    else:
        provision(wiki_of(load_spec(argv[1])))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
