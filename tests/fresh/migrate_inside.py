"""Inside a brand-new Debian 12 root (scripts/fresh-root --migrate, never on a shared
host): a mod_php server built in the root's own /etc/apache2 with the content of
tests/importer/modphp_host.py (vhosts without PHP, php_value in a vhost, .htaccess
values, DokuWiki in a sub-directory, Adminer, TLS), then `phphost import` and
`phphost migrate` through every stage, 1 to 7 and back to 0, the URL comparison
passing at each step. Prints `fresh-migrate: ...` lines that tests/fresh/
test_fresh_migrate.py asserts on; exits non-zero at the first failure.

Run as `.venv/bin/python -m tests.fresh.migrate_inside` from the clone, as root, only
inside the fresh root: it reconfigures /etc/apache2, users and supervisord."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import sys
import time
import tomllib
from pathlib import Path

from tests.importer.modphp_host import ModPhpHost
from tests.importer.test_migrate_modphp import IGNORE, PATHS

BASE = Path("/srv/old")
APACHE = Path("/etc/apache2")
PHPHOST = str(Path(sys.executable).parent / "phphost")
SPEC = Path("/root/imported.toml")
URLS = Path("/root/urls.txt")
STATE = Path("/var/lib/phphost/migrate.json")
WIKI_PAGE = "====== Written before stage 1 ======\nkept through the migration\n"
EXTRA = [("apps.test", "/wiki/doku.php?id=migrated")]


def say(text: str) -> None:
    print(f"fresh-migrate: {text}", flush=True)


def fail(text: str) -> None:
    say(f"FAIL: {text}")
    sys.exit(1)


def sh(*argv: str, ok: tuple[int, ...] = (0,)) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=900)
    if proc.returncode not in ok:
        fail(f"{' '.join(argv)} exited {proc.returncode}:\n{proc.stdout}{proc.stderr}")
    return proc


class RootModPhp(ModPhpHost):
    """modphp_host's content, served by the root's own Apache (the one phphost renders
    into): its vhost files generated beside the content, then put where Debian has them
    (sites-available/, enabled by a2ensite links)."""

    @property
    def apache_root(self) -> Path:
        return self.base / "generated"


def build() -> RootModPhp:
    host = RootModPhp(BASE, http=80, https=443)
    for cmd in (["a2dismod", "-q", "-f", "mpm_event"],
                ["a2enmod", "-q", "mpm_prefork", "php8.2", "ssl", "rewrite"],
                ["a2dissite", "-q", "000-default"]):
        sh(*cmd)
    (host.apache_root / "sites").mkdir(parents=True)
    host._tls()
    host._content(Path("/"))        # the installed packages: /usr/share/dokuwiki, ...
    host._sites()
    for conf in sorted((host.apache_root / "sites").iterdir()):
        shutil.copy(conf, APACHE / "sites-available" / conf.name)
        sh("a2ensite", "-q", conf.name)
    (APACHE / "conf-available" / "old-sites.conf").write_text(
        f"<Directory {BASE}/>\n    AllowOverride All\n    Require all granted\n</Directory>\n")
    sh("a2enconf", "-q", "old-sites")
    page = host.docroot("apps") / "wiki" / "data" / "pages" / "migrated.txt"
    page.write_text(WIKI_PAGE)
    web = pwd.getpwnam("www-data")
    os.chown(page, web.pw_uid, web.pw_gid)
    sh("apache2ctl", "configtest")
    sh("apache2ctl", "start")
    wait(lambda: host.get("static.test", "/")[0] == 200, "the mod_php apache2 answers")
    return host


def wait(check: object, what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():  # type: ignore[operator]
                return
        except OSError:
            pass
        time.sleep(0.3)
    fail(f"timed out waiting until {what}")


def migrate(to: str, ok: tuple[int, ...] = (0,)) -> str:
    args = [PHPHOST, "migrate", str(SPEC), "--to", to, "--urls", str(URLS),
            *(a for rx in IGNORE for a in ("--ignore", rx))]
    began = time.monotonic()
    proc = sh(*args, ok=ok)
    took = time.monotonic() - began
    for line in (proc.stderr + proc.stdout).splitlines():
        print(f"    {line}")
    say(f"--to {to}: exit {proc.returncode} [{took:.1f} s]")
    return proc.stderr + proc.stdout


def stage() -> int:
    return int(json.loads(STATE.read_text())["stage"])


def snapshot(host: RootModPhp) -> dict[tuple[str, str], tuple[int, str]]:
    return {(n, p): host.get(n, p) for n, p in [*PATHS, *EXTRA]}


def owners_of(top: Path) -> dict[str, tuple[int, int, int]]:
    out = {}
    for path in [top, *top.rglob("*")]:
        st = os.lstat(path)
        out[str(path)] = (st.st_uid, st.st_gid, st.st_mode)
    return out


def edit(saved: dict[Path, str | None], path: Path, old: str | None, new: str) -> None:
    saved.setdefault(path, path.read_text() if path.exists() else None)
    path.write_text(new if old is None else path.read_text().replace(old, new))


def restore(saved: dict[Path, str | None]) -> None:
    for path, text in saved.items():
        if text is None:
            path.unlink(missing_ok=True)
        else:
            path.write_text(text)
    saved.clear()


def admin_edits(host: RootModPhp, saved: dict[Path, str | None]) -> None:
    """What stage 4 has the admin do once stage 3 moved the sites (the pools hold the
    values): mod_php's lines out of the vhosts and .htaccess files (docs/migrate.md)."""
    sites = APACHE / "sites-available"
    edit(saved, sites / "40-values.conf", "    php_value memory_limit 99M\n"
         "    php_admin_flag display_errors on\n", "")
    edit(saved, sites / "90-engine.conf", "    php_admin_flag engine off\n", "")
    hta = host.docroot("hta")
    edit(saved, hta / ".htaccess", "php_value upload_max_filesize 7M\nphp_flag short_open_tag on\n",
         "")
    edit(saved, hta / "sub" / ".htaccess", "php_value max_execution_time 17\n", "")
    edit(saved, hta / "sub" / ".user.ini", None, "max_execution_time = 17\n")
    edit(saved, hta / ".htaccess", "AddHandler application/x-httpd-php .html\n",
         "RewriteRule ^page\\.html$ page.php [L]\n")
    edit(saved, hta / "page.php", None, (hta / "page.html").read_text())
    sh("apache2ctl", "graceful")
    time.sleep(2)


def hta_edits(host: RootModPhp, saved: dict[Path, str | None]) -> None:
    """What import listed as lost and stage 6 refuses: phphost allows no Rewrite* in an
    .htaccess (a 500). The admin takes them out (page.html, reached through such a
    rewrite since stage 4, goes: page.php is its URL now)."""
    hta = host.docroot("hta")
    edit(saved, hta / ".htaccess", "RewriteEngine On\nRewriteRule ^old$ index.php [L]\n", "")
    edit(saved, hta / ".htaccess", "RewriteRule ^page\\.html$ page.php [L]\n", "")
    sh("apache2ctl", "graceful")
    time.sleep(2)


def wiki_features() -> None:
    """What phphost's dokuwiki recipe gives its pool (docs/recipes.md): Debian's PHP
    libraries, sessions and mail inside the jail. The admin adds them to the spec (the
    features matter only once the pool is jailed)."""
    text = SPEC.read_text()
    head = text.index("[pools.apps-test-wiki]")
    line = text.index("jail = { enabled = false }", head)
    SPEC.write_text(text[:line] + 'jail = { enabled = false, features = ["phplibs", '
                    '"sessions", "mail"] }' + text[line + len("jail = { enabled = false }"):])


def fpm_workers() -> dict[str, tuple[str, str]]:
    """pool -> (user, root directory) of one worker ('php-fpm: pool NAME')."""
    out: dict[str, tuple[str, str]] = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            if not cmd.startswith("php-fpm: pool "):
                continue
            uid = os.stat(f"/proc/{pid}").st_uid
            out[cmd.split()[2]] = (pwd.getpwuid(uid).pw_name, os.readlink(f"/proc/{pid}/root"))
        except (OSError, KeyError, IndexError):
            continue
    return out


def check_own_users(host: RootModPhp, spec: dict[str, object], jailed: bool) -> None:
    pools: dict[str, dict[str, object]] = spec["pools"]  # type: ignore[assignment]
    for n, p in [("apps.test", "/wiki/doku.php?id=migrated"), ("values.test", "/"),
                 ("adminer.test", "/"), ("apps.test", "/")]:
        host.get(n, p)          # an ondemand pool has workers once it served
    workers = fpm_workers()
    for name in pools:
        user, root = workers.get(name, ("", ""))
        if user in ("", "www-data", "root"):
            fail(f"pool {name}: no worker as its own user ({workers})")
        if (root != "/") != jailed:
            fail(f"pool {name}: worker root {root!r}, expected {'a jail' if jailed else '/'}")
    say(f"own users, {'jailed' if jailed else 'unjailed'}: " + ", ".join(
        f"{p}={u}@{r}" for p, (u, r) in sorted(workers.items()) if p in pools))
    status, body = host.get("apps.test", "/wiki/doku.php?id=migrated")
    if status != 200 or "kept through the migration" not in body:
        fail(f"the wiki page written before stage 1: {status}")
    page = host.docroot("apps") / "wiki" / "data" / "pages" / "migrated.txt"
    if page.read_text() != WIKI_PAGE:
        fail("the wiki page's file changed")
    # a page DokuWiki has not rendered yet: its cache and metadata are written now, by
    # the wiki's pool, in the data dir the spec names writable
    name = "jailed" if jailed else "unjailed"
    (host.docroot("apps") / "wiki" / "data" / "pages" / f"{name}.txt").write_text(
        f"====== {name} ======\nrendered by the pool\n")
    status, body = host.get("apps.test", f"/wiki/doku.php?id={name}")
    if status != 200 or "rendered by the pool" not in body:
        fail(f"the wiki page {name}: {status}")
    meta = host.docroot("apps") / "wiki" / "data" / "meta" / f"{name}.meta"
    writer = pwd.getpwuid(os.lstat(meta).st_uid).pw_name if meta.exists() else "nobody"
    if writer != "php-apps-test-wiki":
        fail(f"{meta}: written by {writer}, not the wiki's pool")
    say(f"the wiki page written before stage 1 reads back; a new page's metadata written by "
        f"{writer} in the writable data dir")


def main() -> None:
    t = time.monotonic()
    host = build()
    say(f"mod_php server built in {APACHE} ({time.monotonic() - t:.1f} s): "
        + sh("apache2ctl", "-M").stdout.count("php_module") * "php_module loaded")
    URLS.write_text("".join(f"http://{n}{p}\n" for n, p in [*PATHS, *EXTRA]
                            if p != "/page.html")    # stage 4's rewrite, gone at 6
                    + "https://secure.test/\n")
    before_all = snapshot(host)
    homes_before = owners_of(BASE)
    out = sh(PHPHOST, "import", "--out", str(SPEC), ok=(0,))
    spec = tomllib.loads(SPEC.read_text())
    pools = spec["pools"]
    say(f"import: {len(spec['sites'])} sites, {len(pools)} pools "
        f"({', '.join(sorted(pools))}), writable: "
        + ", ".join(w for p in pools.values() for w in p.get("writable", [])))
    del out
    saved: dict[Path, str | None] = {}
    for to in ("1", "2", "3"):
        migrate(to)
    admin_edits(host, saved)
    migrate("4")
    migrate("5")
    refused = migrate("6", ok=(4,))      # hta's .htaccess: Rewrite* is a 500 under phphost
    if "hta/htdocs/.htaccess:2: rewriteengine On" not in refused or stage() != 5:
        fail("stage 6 did not refuse the .htaccess lines phphost would answer 500 for")
    say("stage 6 refused up front (exit 4): the .htaccess lines phphost refuses, named")
    hta_edits(host, saved)
    refused = migrate("6", ok=(12,))     # the vhost's ErrorDocument: another 404 body
    if "http://values.test:80/nothing.php" not in refused:
        fail("stage 6's comparison did not name values.test/nothing.php")
    if stage() != 5 or set(fpm_workers().values()) - {("www-data", "/")}:
        fail(f"not back at stage 5 with the web user's masters: {stage()}, {fpm_workers()}")
    say("stage 6 taken back by itself (exit 12): stage 5's masters serve as www-data again")
    edit(saved, APACHE / "sites-available" / "40-values.conf",
         "    ErrorDocument 404 /missing.html\n", "")
    sh("apache2ctl", "graceful")
    time.sleep(2)
    dry = sh(PHPHOST, "migrate", str(SPEC), "--to", "6", "--dry-run").stdout
    for words in ("stage 6 (identities) would:", "take out the link /etc/apache2/sites-enabled/"
                  "60-apps.conf -> ../sites-available/60-apps.conf", "path(s) in the tenant "
                  "homes", "/srv/old/apps/htdocs/wiki/data/pages/migrated.txt: www-data:www-data "
                  "0644 -> apps:apps 0664", "create user php-apps-test-wiki"):
        if words not in dry:
            fail(f"stage 6's --dry-run lacks {words!r}:\n{dry}")
    if stage() != 5 or not (APACHE / "sites-enabled" / "60-apps.conf").is_symlink():
        fail("stage 6's --dry-run changed the host")
    say("stage 6 --dry-run: the links, phphost's plan and every owner change listed, "
        "nothing changed")
    out6 = migrate("6")
    if "change owner, group or mode" not in out6 or "take" not in out6.lower():
        fail("stage 6 did not show the ownership changes first")
    check_own_users(host, spec, jailed=False)
    record = json.loads(STATE.read_text())
    say(f"stage 6 record: {len(record['sites_off'])} vhost links out, "
        f"{len(record['owners'])} paths changed")
    refused = migrate("7", ok=(12,))      # DokuWiki needs more than the base jail
    if "http://apps.test:80/wiki/doku.php" not in refused or stage() != 6:
        fail("stage 7 did not take itself back for the wiki")
    for log in sorted(Path("/var/log/phphost").glob("apps-test-wiki*.log")):
        print(f"    {log}: {log.read_text()[-1500:]}")
    say("stage 7 taken back by itself (exit 12): the wiki's pool needs jail features")
    wiki_features()
    migrate("7")
    check_own_users(host, spec, jailed=True)
    for to in ("6", "5", "4", "3"):
        migrate(to)
    restore(saved)
    sh("apache2ctl", "graceful")
    time.sleep(2)
    for to in ("2", "1", "0"):
        migrate(to)
    if stage() != 0:
        fail(f"the record says stage {stage()}")
    after_all = snapshot(host)
    differ = [k for k in before_all if before_all[k][0] != after_all[k][0]]
    if differ:
        fail(f"back at 0, these answer otherwise: {differ}")
    for page, words in (("migrated", "kept through the migration"),
                        ("jailed", "rendered by the pool")):
        status, body = host.get("apps.test", f"/wiki/doku.php?id={page}")
        if status != 200 or words not in body:
            fail(f"the wiki page {page} is gone at stage 0")
    meta = host.docroot("apps") / "wiki" / "data" / "meta" / "jailed.meta"
    if os.lstat(meta).st_uid != pwd.getpwnam("www-data").pw_uid:
        fail(f"{meta}: the pool's file was not given back to www-data")
    now = owners_of(BASE)
    moved = [p for p, (u, g, _m) in homes_before.items()
             if p in now and (now[p][0], now[p][1]) != (u, g)]
    if moved:
        fail(f"owners not put back: {moved[:10]}")
    say(f"back at stage 0: every URL answers as before, the owners of {len(homes_before)} "
        "paths as before, the wiki pages still there (the pool's files now www-data's)")
    say("PASS")


if __name__ == "__main__":
    main()
