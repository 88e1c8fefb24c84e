"""Host wipe: take everything phphost ever put on this host away, then build the demo
from nothing again, the way scripts/setup-demo does after its package and venv steps.

`phphost destroy --purge` stops the masters and removes what it knows; then every path
phphost writes is removed outright (src/phphost/layout.py, plan/destroy.py: /etc/phphost,
/var/lib/phphost with the jails and the store, /var/log/phphost, /run/phphost,
/usr/local/lib/phphost with the launcher and the jails' sendmail, supervisor programs,
Apache sites and conf, the logrotate file, the nftables table, the Apache modules apply
enabled beyond Debian's defaults), with
every user and group phphost's state said it created, and the demo wiki's database. The
tenant homes go with --purge; the demo's content (scripts/demo_content.py) and wiki
(scripts/demo_mediawiki.py) are provisioned again, so the demo host is left applied,
filled and working. Holds the host lock (conftest.py) like every integration test."""

from __future__ import annotations

import glob
import grp
import importlib.util
import json
import os
import pwd
import shutil
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

from phphost import layout
from phphost.facts.gather import apache_running, read_programs
from phphost.facts.nftables import live as nft_live
from phphost.layout import JAILS_DIR
from phphost.render.apache import required_modules
from phphost.spec.model import Model
from tests.integration.hostkit import PYTHON, ROOT, get, phphost

DEMO = str(ROOT / "examples" / "demo.toml")
SCRIPTS = ROOT / "scripts"

TREES = (layout.ETC, layout.STATE_DIR, layout.LOG_DIR, layout.RUN_DIR, "/usr/local/lib/phphost")
GLOBS = (f"{layout.SUPERVISOR_CONF_DIR}/phphost-*", f"{layout.APACHE_DIR}/sites-*/phphost-*",
         f"{layout.APACHE_DIR}/conf-*/phphost.conf", f"{layout.APACHE_LOG_DIR}/phphost-*",
         layout.LOGROTATE_CONF)
# What Debian's apache2 enables on a fresh install (apache2.postinst), which a wipe keeps.
DEBIAN_MODULES = frozenset({
    "access_compat", "alias", "auth_basic", "authn_core", "authn_file", "authz_core",
    "authz_host", "authz_user", "autoindex", "deflate", "dir", "env", "filter", "mime",
    "mpm_event", "negotiation", "reqtimeout", "setenvif", "status"})
CLEAN_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}


def sh(argv: list[str], check: bool = True, timeout: float = 600) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False,
                          stdin=subprocess.DEVNULL)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} -> {proc.returncode}\n{proc.stdout}\n"
                             f"{proc.stderr}")
    return proc.stdout


def demo_mediawiki() -> ModuleType:
    spec = importlib.util.spec_from_file_location("demo_mediawiki", SCRIPTS / "demo_mediawiki.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("demo_mediawiki", module)   # its dataclass looks itself up there
    spec.loader.exec_module(module)
    return module


def exists(getter: object, name: str) -> bool:
    try:
        getter(name)  # type: ignore[operator]
    except KeyError:
        return False
    return True


def mounts_under(paths: tuple[str, ...]) -> list[str]:
    """Mount points at or below any of paths, in this (the host's) mount namespace."""
    with open("/proc/self/mountinfo", encoding="utf-8") as fh:
        points = [line.split()[4] for line in fh]
    return [p for p in points if any(p == t or p.startswith(t + "/") for t in paths)]


def processes_in_jails() -> list[int]:
    """Processes whose root is a jail: a master that outlived destroy."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                root = os.readlink(f"/proc/{entry}/root")
            except OSError:
                continue
            if root.startswith(JAILS_DIR):
                pids.append(int(entry))
    return pids


def drop_wiki_database(model: Model) -> None:
    """The demo wiki's database and user, when its LocalSettings.php (in the wiki tenant's
    home, with the database password) is gone: demo_mediawiki.py then installs afresh."""
    wiki = demo_mediawiki()
    site = next(s for s in model.sites if s.name == wiki.SITE)
    home = model.tenant(site.tenant).home if site.tenant else None
    if home is None or os.path.exists(f"{home}/LocalSettings.php") or not wiki.mariadb_alive():
        return
    proc = subprocess.run(
        ["mariadb", "--batch"], text=True, capture_output=True, env=CLEAN_ENV, check=False,
        input=f"DROP DATABASE IF EXISTS `{wiki.DB_NAME}`;\n"
              f"DROP USER IF EXISTS '{wiki.DB_USER}'@'localhost';\n")
    assert proc.returncode == 0, proc.stderr


def disable_modules(modules: list[str]) -> None:
    """a2dismod each, dependents before what they depend on (a2dismod refuses otherwise)."""
    pending = list(modules)
    while pending:
        failed = [m for m in pending
                  if subprocess.run(["a2dismod", "-q", m], capture_output=True,
                                    check=False).returncode != 0]
        assert len(failed) < len(pending), f"a2dismod refused {failed}"
        pending = failed


def wipe(model: Model) -> dict[str, list[str]]:
    """Everything phphost made, gone. Returns what the state said phphost created."""
    state = json.loads(Path(layout.STATE_FILE).read_text()) \
        if os.path.exists(layout.STATE_FILE) else {}
    phphost("destroy", "--purge", DEMO)
    drop_wiki_database(model)                # it went with the wiki's home
    # programs of pools outside the demo spec (an earlier test's leftovers) too
    leftovers = [name for name in read_programs()[0] if name.startswith("phphost-")]
    for name in leftovers:
        sh(["supervisorctl", "-c", layout.SUPERVISOR_MAIN_CONF, "stop", name], check=False)
    assert not processes_in_jails(), "a master outlived destroy"
    mounted = mounts_under((*TREES, *(t.home for t in model.tenants)))
    assert not mounted, f"mounts under phphost's paths on the host: {mounted}"

    for pattern in GLOBS:
        for path in glob.glob(pattern):
            os.unlink(path)
    for tree in TREES:
        if os.path.lexists(tree):
            shutil.rmtree(tree)
    if leftovers:
        sh(["supervisorctl", "-c", layout.SUPERVISOR_MAIN_CONF, "update"], check=False)
    sh([layout.NFT_BINARY, "delete", "table", *layout.NFT_TABLE], check=False)
    extra = sorted(set(required_modules(model)) - DEBIAN_MODULES)
    on = [m for m in extra if os.path.lexists(f"{layout.APACHE_DIR}/mods-enabled/{m}.load")]
    disable_modules(on)
    if apache_running():
        sh(["apache2ctl", "configtest"])
        sh(["apache2ctl", "graceful"])

    for user in state.get("users", []):
        if exists(pwd.getpwnam, user):
            sh(["userdel", user])
    for group in state.get("groups", []):
        if exists(grp.getgrnam, group):
            sh(["groupdel", group])
    for home in state.get("homes", []):
        parent = os.path.dirname(home)
        if os.path.isdir(parent) and not os.listdir(parent):
            os.rmdir(parent)                 # /srv/phphost-demo: apply made it
    return state


def assert_wiped(model: Model, state: dict[str, list[str]]) -> None:
    left = [t for t in TREES if os.path.lexists(t)]
    left += [p for pattern in GLOBS for p in glob.glob(pattern)]
    left += [f"user {u}" for u in state.get("users", []) if exists(pwd.getpwnam, u)]
    left += [f"group {g}" for g in state.get("groups", []) if exists(grp.getgrnam, g)]
    left += [t.home for t in model.tenants if os.path.lexists(t.home)]
    left += [f"user {p.user}" for p in model.pools if exists(pwd.getpwnam, p.user)]
    left += [f"program {n}" for n in read_programs()[0] if n.startswith("phphost-")]
    left += ["nftables table"] if nft_live() is not None else []
    assert not left, f"the wipe left: {left}"
    # the demo names now fall through to Debian's default site: no phphost vhost answers
    assert "site=" not in get(model.sites[0].server_name)[2]


def from_nothing(wiped: bool = True) -> str:
    """setup-demo's steps after `apt-get install` and the venv, in its order."""
    out = sh([PYTHON, "-m", "phphost.host.sendmail", "build"])
    out += sh([PYTHON, str(SCRIPTS / "demo_mediawiki.py"), "--prepare"])
    plan = phphost("plan", DEMO, check=False)
    if wiped:
        assert plan.returncode == 10, f"plan on a wiped host -> {plan.returncode}\n{plan.stdout}"
    out += phphost("apply", DEMO).stdout
    out += sh([PYTHON, str(SCRIPTS / "demo_content.py"), DEMO,
               str(ROOT / "examples" / "demo-content")])
    out += sh([PYTHON, str(SCRIPTS / "demo_mediawiki.py"), DEMO])
    return out + sh([PYTHON, str(SCRIPTS / "demo_check.py"), DEMO])


def test_wipe_then_apply_from_nothing(demo: Model) -> None:
    start = time.monotonic()
    restored = False
    try:
        state = wipe(demo)
        wiped = time.monotonic()
        assert_wiped(demo, state)
        out = from_nothing()
        restored = True
        built = time.monotonic()
        assert "All demo sites answer." in out, out
        again = json.loads(phphost("apply", "--json", DEMO).stdout)
        assert again["changed"] == [] and not again.get("recovered"), again
        plan = phphost("plan", DEMO, check=False)
        assert plan.returncode == 0, f"plan after the second apply -> {plan.returncode}\n" \
            f"{plan.stdout}"
        for site in demo.sites:
            status = get(site.server_name)[0]
            assert status == (301 if site.redirect or site.tls else 200), (site.name, status)
        assert all(st.state == "RUNNING" for name, st in read_programs()[0].items()
                   if name.startswith("phphost-"))
        print(f"host wipe: wipe {wiped - start:.1f}s, from nothing {built - wiped:.1f}s, "
              f"total {time.monotonic() - start:.1f}s")
    finally:
        if not restored:                     # leave the demo host working, whatever failed
            drop_wiki_database(demo)
            from_nothing(wiped=False)
