"""Root never follows a tenant's path (issue 11).

1. verify's root family is blocked on the demo, and BREACHED when phphost's
   descriptor-based file operations are swapped for the path-following ones it
   used to have (the weakened host: same host, weakened root code).
2. A scripted attack: as the tenant and as the pool, a symlink (or a hard link, a
   FIFO) at every kind of path phphost manages; then plan, apply, a rollback and
   destroy --purge run, and no sensitive file outside the tenant trees changed owner,
   mode, ACL or content, and each refusal names the path."""

from __future__ import annotations

import grp
import json
import os
import pwd
import shutil
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from phphost import layout, safefs
from phphost.facts import hostview
from phphost.host import jailbuild as jail_build
from phphost.jail.manifest import Entry, Manifest
from phphost.spec.model import Model
from phphost.verify.attacks_root import fingerprint
from phphost.verify.catalog import select
from phphost.verify.result import Verdict
from phphost.verify.runner import run_attacks
from tests.integration import hostkit
from tests.integration.conftest import DEMO
from tests.integration.hostkit import get, phphost
from tests.integration.test_verify import verify

SENSITIVE = ["/etc/shadow", "/etc/passwd", "/etc/group", "/etc/sudoers", "/etc/ssl/private",
             "/etc/apache2/apache2.conf", "/root"]


def _fingerprint(path: str) -> str:
    return fingerprint(path, list_dirs=False)


@pytest.fixture()
def sentinel() -> Iterator[Path]:
    """A root-only file and dir outside every tenant tree."""
    d = Path("/root/phphost-sentinel")
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(mode=0o700)
    (d / "secret").write_text("root only\n")
    os.chmod(d / "secret", 0o600)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def fingerprints(sentinel: Path, demo: Model, exclude: str = "") -> dict[str, str]:
    paths = [*SENSITIVE, str(sentinel), str(sentinel / "secret")]
    # every other tenant's home and docroots count as "outside" for the attacker
    paths += [t.home for t in demo.tenants if t.name != exclude]
    return {p: _fingerprint(p) for p in paths}


def docroot(demo: Model, site: str) -> str:
    found = next(s for s in demo.sites if s.name == site)
    assert found.docroot is not None
    return found.docroot


def as_user(user: str, *argv: str, check: bool = True) -> None:
    """Run argv as user with its primary group and no other."""
    gid = pwd.getpwnam(user).pw_gid
    subprocess.run(list(argv), check=check, user=user, group=gid, extra_groups=[],
                   capture_output=True, timeout=30)


# --- 1. verify's root family ---------------------------------------------------------

def test_root_family_blocked_on_demo(demo: Model) -> None:
    status, data = verify("root.*")
    assert status == 0, data["summary"]
    assert {c["verdict"] for c in data["cells"]} <= {"blocked", "n/a"}
    assert any(c["verdict"] == "blocked" for c in data["cells"] if c["attack"] == "root.pool-links")


def _naive_dir_state(path: str) -> safefs.DirState:
    st = os.stat(path)
    return safefs.DirState(st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode))


def _naive_owner_mode(path: str, uid: int, gid: int, mode: int) -> None:
    os.chown(path, uid, gid)
    os.chmod(path, mode)


def _naive_tree(path: str) -> Iterator[tuple[str, int]]:
    for dirpath, dirnames, filenames in os.walk(path, followlinks=True):
        for name in [".", *dirnames, *filenames]:
            full = os.path.join(dirpath, name)
            fd = os.open(full, os.O_RDONLY | os.O_NONBLOCK)
            try:
                yield os.path.relpath(full, path), fd
            finally:
                os.close(fd)


def _naive_below(path: str, rel: str) -> int | None:
    return os.open(os.path.join(path, rel), os.O_RDONLY | os.O_NONBLOCK)


def _naive_read_file(path: str, limit: int = 1 << 20, root_only: bool = False) -> bytes:
    return Path(path).read_bytes()[:limit]


def _naive_remove_tree(path: str) -> None:
    """`rm -rf path/*; rm -rf path`: empties whatever path points at, then removes path
    (a verify run's own probe dirs go too, so the jails stay as built)."""
    for name in os.listdir(path):
        full = os.path.join(path, name)
        if os.path.isdir(full) and not os.path.islink(full):
            shutil.rmtree(full)
        else:
            os.unlink(full)
    if os.path.islink(path):
        os.unlink(path)
    else:
        os.rmdir(path)


def _naive_materialise(dirs: jail_build.DirFds, entry: Entry, manifest: Manifest,
                       store: object, action: str) -> None:
    """A jail build that makes entries by path (follows a link the pool planted)."""
    path = dirs.root.rstrip("/") + entry.path
    uid, gid = manifest.owner_ids(entry.owner)
    if entry.kind == "dir":
        os.makedirs(path, exist_ok=True)
        os.chown(path, uid, gid)
        os.chmod(path, entry.mode)
    else:
        Path(path).write_bytes(entry.content or b"")


ROOT_STEPS = ("plan reads the swapped dir", "apply fixes a writable dir that is a link",
              "apply grants the docroot ACL recursively", "rollback of a journal naming the links",
              "the TLS check reads a key that is a link",
              "a jail rebuild over links the pool planted in its jail dir",
              "destroy --purge of a home that is a link")


def test_root_family_breached_with_path_following_code(demo: Model,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """The same attacks against root code that follows paths (as phphost did before
    safefs): every cell with links must be BREACHED, and each step on its own."""
    monkeypatch.setattr(safefs, "dir_state", _naive_dir_state)
    monkeypatch.setattr(safefs, "set_owner_mode", _naive_owner_mode)
    monkeypatch.setattr(safefs, "walk_tree", _naive_tree)
    monkeypatch.setattr(safefs, "open_below", _naive_below)
    monkeypatch.setattr(safefs, "read_file", _naive_read_file)
    monkeypatch.setattr(safefs, "remove_tree", _naive_remove_tree)
    monkeypatch.setattr(jail_build, "_materialise", _naive_materialise)
    report, problems = run_attacks(demo, select(["root.*"]))
    assert not problems
    verdicts = {(c.attack, c.attacker): c.verdict for c in report.cells}
    assert verdicts[("root.tenant-links", "site:blog")] == Verdict.BREACHED
    assert verdicts[("root.pool-links", "pool:files")] == Verdict.BREACHED
    cell = next(c for c in report.cells if c.attacker == "site:blog")
    assert "root changed" in cell.evidence
    for step in ROOT_STEPS:
        assert f"{step}: " in cell.evidence, (step, cell.evidence)


def test_program_closure_breached_with_a_trusting_hostview(
        demo: Model, monkeypatch: pytest.MonkeyPatch) -> None:
    """root.program-closure against a host view that trusts every file (as closures
    did before issue 11: #! and ldd read from whatever the spec named)."""
    monkeypatch.setattr(hostview.RealHostView, "untrusted", lambda self, path: None)
    monkeypatch.setattr(hostview, "_file_problem", lambda path, st: None)
    report, problems = run_attacks(demo, select(["root.program-closure"]))
    assert not problems
    cells = [c for c in report.cells if c.verdict is not Verdict.NA]
    assert cells and all(c.verdict == Verdict.BREACHED for c in cells), cells
    blog = next(c for c in cells if c.attacker == "site:blog")
    assert "copying the root-only" in blog.evidence and "#!" in blog.evidence, blog.evidence
    assert "ELF the tenant wrote" in blog.evidence, blog.evidence


# --- 2. the scripted attack on the live paths -----------------------------------------

def _refused(proc: subprocess.CompletedProcess[str], path: str) -> None:
    out = proc.stdout + proc.stderr
    assert proc.returncode == 4, out
    assert path in out and "Traceback" not in out, out


def _swap(user: str, path: Path, target: str) -> Path:
    """As `user`: move the real dir aside and put a symlink in its place."""
    aside = path.with_name(path.name + ".real")
    as_user(user, "mv", "--", str(path), str(aside))
    as_user(user, "ln", "-s", "--", target, str(path))
    return aside


def _unswap(path: Path, aside: Path) -> None:
    path.unlink()
    aside.rename(path)


def test_swapped_managed_dirs_are_refused(demo: Model, sentinel: Path) -> None:
    """Docroot, intermediate docroot dir and writable dir, each swapped by the tenant
    for a symlink to a root-only dir (or to another tenant's docroot): plan and apply
    refuse with the path named, nothing outside the tenant changes, Apache does not
    serve through the link."""
    ncs = demo.tenant("ncs")
    cases = [
        ("blog", Path(docroot(demo, "blog")), str(sentinel)),
        ("blog", Path(docroot(demo, "blog")), docroot(demo, "files")),
        ("ncs", Path(ncs.home) / "data", str(sentinel)),
        ("ncs", Path(ncs.home) / "htdocs", str(sentinel)),
    ]
    before = fingerprints(sentinel, demo, exclude="")
    for user, path, target in cases:
        aside = _swap(user, path, target)
        try:
            _refused(phphost("plan", str(DEMO), check=False), str(path))
            _refused(phphost("apply", str(DEMO), check=False), str(path))
        finally:
            _unswap(path, aside)
        assert fingerprints(sentinel, demo) == before, (user, path, target)
    after = phphost("plan", "--json", str(DEMO), check=False)
    assert after.returncode == 0, after.stdout[:3000]


def test_pool_planted_links_fifo_and_grant(demo: Model, sentinel: Path) -> None:
    """blog's pool plants a symlink, a FIFO and (where the kernel lets it) a hard link
    in its writable dir inside the docroot; the docroot's ACL grant is then redone by
    apply: it skips them, finishes, and touches nothing outside."""
    uploads = Path(docroot(demo, "blog")) / "uploads"
    pool = demo.pool("blog").user
    planted = [uploads / "evil-link", uploads / "evil-fifo", uploads / "evil-hard"]
    as_user(pool, "ln", "-s", "--", str(sentinel / "secret"), str(planted[0]))
    as_user(pool, "mkfifo", "--", str(planted[1]))
    as_user(pool, "ln", "--", "/etc/passwd", str(planted[2]), check=False)
    top = docroot(demo, "blog")
    before = fingerprints(sentinel, demo)
    try:
        subprocess.run(["setfacl", "-x", f"user:{layout.WEB_USER}", top], check=True)
        proc = phphost("apply", str(DEMO), timeout=120, check=False)
        assert proc.returncode in (0, 4), proc.stdout + proc.stderr
        assert fingerprints(sentinel, demo) == before
    finally:
        for p in planted:
            p.unlink(missing_ok=True)
    phphost("apply", str(DEMO))
    assert get("blog.demo.test", "/")[0] == 200


def test_root_made_hard_link_to_foreign_file_is_refused(demo: Model, sentinel: Path) -> None:
    """A hard link to a root-only file in the docroot (what protected_hardlinks=0
    would let a tenant make): the recursive grant refuses it and rolls back."""
    top = Path(docroot(demo, "blog"))
    link = top / "shadow-copy"
    os.link(sentinel / "secret", link)
    before = fingerprints(sentinel, demo)
    try:
        subprocess.run(["setfacl", "-x", f"user:{layout.WEB_USER}", str(top)], check=True)
        proc = phphost("apply", str(DEMO), check=False)
        out = proc.stdout + proc.stderr
        assert proc.returncode == 4 and str(link) in out and "hard link" in out, out
        assert fingerprints(sentinel, demo) == before
    finally:
        link.unlink()
    phphost("apply", str(DEMO))


def test_rollback_through_swapped_dir_touches_nothing(demo: Model, sentinel: Path) -> None:
    """A killed apply's journal names ncs's data dir; ncs swaps it for a symlink to a
    root-only dir before the next apply rolls the journal back."""
    data = Path(demo.tenant("ncs").home) / "data"
    journal = Path(layout.JOURNAL_DIR)
    journal.mkdir(parents=True, exist_ok=True)
    (journal / "files").mkdir(exist_ok=True)
    entries = [{"k": "dirmode", "path": str(data), "uid": 0, "gid": 0, "mode": 0o4777},
               {"k": "dir", "path": str(data / "made")},
               {"k": "acl", "path": str(data), "items": [["secret", None, None]]}]
    (journal / "entries.jsonl").write_text("".join(json.dumps(e) + "\n" for e in entries))
    before = fingerprints(sentinel, demo)
    aside = _swap("ncs", data, str(sentinel))
    try:
        proc = phphost("apply", str(DEMO), check=False)
        assert "Traceback" not in proc.stdout + proc.stderr
        assert fingerprints(sentinel, demo) == before
        assert not journal.exists() or not (journal / "entries.jsonl").exists()
    finally:
        _unswap(data, aside)
    phphost("apply", str(DEMO))


SMALL = """
[tenants.symx]
home = "/srv/phphost-test/symx"

[pools.symx]
tenant = "symx"
pm = "static"
max_children = 1
writable = ["data"]

[sites.symx]
server_name = "symx.demo.test"
tenant = "symx"
docroot = "htdocs"
pool = "symx"
"""


def test_purge_does_not_follow_links(demo: Model, sentinel: Path, spec_dir: Path) -> None:
    spec = hostkit.write_spec(spec_dir, "symx.toml", SMALL)
    try:
        phphost("apply", spec)
        home = Path("/srv/phphost-test/symx")
        as_user("symx", "ln", "-s", "--", str(sentinel), str(home / "htdocs" / "to-root"))
        as_user("php-symx", "ln", "-s", "--", str(sentinel / "secret"),
                str(home / "data" / "to-secret"))
        accounts = ("/etc/passwd", "/etc/shadow", "/etc/group")   # destroy removes users
        before = {p: f for p, f in fingerprints(sentinel, demo).items() if p not in accounts}
        phphost("destroy", "--purge", spec)
        assert not home.exists()
        after = {p: f for p, f in fingerprints(sentinel, demo).items() if p not in accounts}
        assert after == before
    finally:
        phphost("apply", str(DEMO))


# --- 3. every path kind, planted by the tenant and by the pool --------------------------

SYMJ_HOME = "/srv/phphost-test/symj"
SYMJ = f"""
[tenants.symj]
home = "{SYMJ_HOME}"

[pools.symj]
tenant = "symj"
pm = "static"
max_children = 1
writable = ["htdocs/uploads"]
jail = {{ features = ["sessions"], programs = [
    {{ path = "{SYMJ_HOME}/bin/tool", interpreter = "/bin/sh" }}] }}

[sites.symj]
server_name = "symj.demo.test"
tenant = "symj"
docroot = "htdocs"
pool = "symj"
"""
# the same site with its TLS files kept where the tenant (cert) and the pool (key) write
SYMJ_TLS = SYMJ + f"""
[sites.symj.tls]
cert = "{SYMJ_HOME}/cert.pem"
key = "{SYMJ_HOME}/htdocs/uploads/key.pem"
"""


def _tree_fingerprint(top: str) -> str:
    """One hash over owner, mode, xattr values and content of everything below top
    (never following a symlink)."""
    import hashlib
    h = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames.sort()
        for name in sorted([".", *dirnames, *filenames]):
            path = os.path.normpath(os.path.join(dirpath, name))
            h.update(f"{path} {fingerprint(path, list_dirs=False)}\n".encode())
    return h.hexdigest()


def outside(sentinel: Path, demo: Model) -> dict[str, str]:
    """Sensitive files (owner, mode, ACL values, content) and every other tenant's
    home, recursively."""
    out = {p: _fingerprint(p) for p in [*SENSITIVE, "/etc/ssl/certs", str(sentinel),
                                        str(sentinel / "secret"), str(sentinel / "dir"),
                                        str(sentinel / "dir" / "inside")]}
    out.update({f"tree:{t.home}": _tree_fingerprint(t.home) for t in demo.tenants})
    return out


@pytest.fixture()
def symj(demo: Model, sentinel: Path, spec_dir: Path) -> Iterator[str]:
    (sentinel / "dir").mkdir(mode=0o700)
    (sentinel / "dir" / "inside").write_text("root only\n")
    subprocess.run(["setfacl", "-m", "u:nobody:r--", str(sentinel / "secret")], check=True)
    home = Path(SYMJ_HOME)
    (home / "bin").mkdir(parents=True, exist_ok=True)
    (home / "bin" / "tool").write_text("echo tool\n")
    spec = hostkit.write_spec(spec_dir, "symj.toml", SYMJ)
    phphost("apply", spec, timeout=300)
    for p in (home / "bin", home / "bin" / "tool"):
        os.chown(p, pwd.getpwnam("symj").pw_uid, grp.getgrnam("symj").gr_gid)
    yield spec
    phphost("destroy", "--purge", spec, check=False, timeout=300)
    shutil.rmtree(SYMJ_HOME, ignore_errors=True)
    # symj.toml alone is the whole host to phphost (its apply stopped the demo's pools and
    # destroy removed what they share): the demo host comes back for the tests after this
    phphost("apply", str(DEMO), timeout=300)


def _pool_user() -> str:
    return "php-symj"


def _all_refuse(spec: str, path: str) -> None:
    """plan, apply and destroy --purge each stop before any change, naming path."""
    for args in (("plan", spec), ("apply", spec), ("destroy", "--purge", spec)):
        proc = phphost(*args, check=False, timeout=300)
        out = proc.stdout + proc.stderr
        assert proc.returncode == 4, (args, out)
        assert path in out and "nothing was changed" in out and "Traceback" not in out, (args,
                                                                                          out)
    assert os.path.lexists(path) and os.path.lexists(SYMJ_HOME)            # purge refused
    pwd.getpwnam("symj")                                                    # users kept


@pytest.mark.parametrize("kind", ["home", "docroot", "writable"])
def test_swapped_managed_path_refused_everywhere(demo: Model, sentinel: Path, symj: str,
                                                 kind: str) -> None:
    """A managed dir swapped for a symlink to a root-only dir: plan, apply and
    destroy --purge refuse naming it, nothing outside changes. The tenant swaps what
    it can (docroot, writable dir: it owns their parents); its home's parent is
    root's, so the home is swapped by root (what a careless admin or a restore would
    leave); the pool can swap none of them (checked)."""
    path = {"home": Path(SYMJ_HOME), "docroot": Path(SYMJ_HOME) / "htdocs",
            "writable": Path(SYMJ_HOME) / "htdocs" / "uploads"}[kind]
    as_user(_pool_user(), "mv", "--", str(path), str(path) + ".real", check=False)
    assert path.is_dir() and not path.is_symlink(), "the pool could move a managed dir"
    before = outside(sentinel, demo)
    aside = Path(str(path) + ".real")
    if kind == "home":
        path.rename(aside)
        path.symlink_to(sentinel / "dir")
    else:
        _swap("symj", path, str(sentinel / "dir"))
    try:
        _all_refuse(symj, str(path))
    finally:
        _unswap(path, aside)
    assert outside(sentinel, demo) == before
    assert phphost("plan", symj, check=False).returncode == 0


@pytest.mark.parametrize("who", ["tenant", "pool"])
def test_tls_file_kept_by_tenant_or_pool_refused(demo: Model, sentinel: Path, symj: str,
                                                 spec_dir: Path, who: str) -> None:
    """TLS files in the tenant's reach: the cert in the home (linked by the tenant),
    the key in the pool's writable dir (linked by the pool) to a root-only file.
    plan and apply refuse naming it before anything changes."""
    cert, key = Path(SYMJ_HOME) / "cert.pem", Path(SYMJ_HOME) / "htdocs" / "uploads" / "key.pem"
    if who == "tenant":
        as_user("symj", "ln", "-s", "--", str(sentinel / "secret"), str(cert))
        as_user("symj", "touch", "--", str(key))
        named = cert
    else:
        as_user("symj", "touch", "--", str(cert))
        as_user(_pool_user(), "ln", "-s", "--", str(sentinel / "secret"), str(key))
        named = key
    spec = hostkit.write_spec(spec_dir, "symj-tls.toml", SYMJ_TLS)
    before = outside(sentinel, demo)
    try:
        for args in (("plan", spec), ("apply", spec)):
            proc = phphost(*args, check=False)
            out = proc.stdout + proc.stderr
            assert proc.returncode == 4 and str(named) in out and "TLS" in out, (args, out)
            assert "Traceback" not in out
    finally:
        cert.unlink(missing_ok=True)
        key.unlink(missing_ok=True)
    assert outside(sentinel, demo) == before
    assert phphost("plan", symj, check=False).returncode == 0


def test_links_where_root_does_not_follow(demo: Model, sentinel: Path, symj: str) -> None:
    """Links in places root walks but never follows: the jail program file (the
    tenant's, never read: its interpreter is declared), a link the pool plants in
    its writable dir inside the docroot (the ACL grant is redone) and in its session
    dir inside the jail (the jail is rebuilt). apply succeeds; nothing outside changes."""
    tool = Path(SYMJ_HOME) / "bin" / "tool"
    uploads = Path(SYMJ_HOME) / "htdocs" / "uploads"
    jail = Path("/var/lib/phphost/jails/symj")
    sessions = jail / "var/lib/php/sessions"
    assert sessions.is_dir()
    tool_aside = _swap("symj", tool, "/etc/shadow")
    planted = [uploads / "evil-link", sessions / "evil-link"]
    as_user(_pool_user(), "ln", "-s", "--", str(sentinel / "dir"), str(planted[0]))
    # the pool reaches its session dir only from inside its chroot (/var/lib/phphost is
    # root 0700 on the host): plant there what its PHP would, owned by the pool user
    os.symlink(sentinel / "dir", planted[1])
    pool = pwd.getpwnam(_pool_user())
    os.lchown(planted[1], pool.pw_uid, pool.pw_gid)
    before = outside(sentinel, demo)
    try:
        subprocess.run(["setfacl", "-x", f"user:{layout.WEB_USER}", str(uploads.parent)],
                       check=True)
        (jail / "etc" / "nsswitch.conf").unlink()          # the jail differs: rebuilt
        proc = phphost("apply", symj, check=False, timeout=300)
        out = proc.stdout + proc.stderr
        assert proc.returncode == 0, out
        assert "jail" in out and (jail / "etc" / "nsswitch.conf").is_file(), out
        with safefs.opened_dir(str(uploads.parent)) as fd:
            assert f"user:{layout.WEB_USER}:r-x" in safefs.named_entries(fd)
        assert outside(sentinel, demo) == before
        assert all(p.is_symlink() for p in planted)     # walked, not followed nor removed
    finally:
        for p in planted:
            p.unlink(missing_ok=True)
        _unswap(tool, tool_aside)


def test_rollback_after_a_swap_mid_apply(demo: Model, sentinel: Path, symj: str,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """apply fixes the writable dir's mode (journaled), then the tenant swaps that dir
    for a link to a root-only dir and the next step fails (injected): the rollback
    restores nothing through the link; nothing outside changes; the error is clear."""
    from phphost.cli.main import _plan
    from phphost.errors import PhphostError
    from phphost.host import apply as apply_mod
    from phphost.host import identities
    from phphost.spec.loader import load_spec

    uploads = Path(SYMJ_HOME) / "htdocs" / "uploads"
    os.chmod(uploads, 0o700)
    subprocess.run(["setfacl", "-x", f"user:{layout.WEB_USER}", str(uploads.parent)], check=True)
    plan = _plan(load_spec(symj))
    assert any(getattr(a, "path", "") == str(uploads) for a in plan.changes)
    swapped: list[Path] = []

    def swap_then_fail(*_a: object, **_k: object) -> None:
        swapped.append(_swap("symj", uploads, str(sentinel / "dir")))
        raise RuntimeError("injected failure")

    monkeypatch.setattr(identities, "set_acl", swap_then_fail)
    before = outside(sentinel, demo)
    try:
        with pytest.raises(PhphostError) as err:
            apply_mod.execute(plan, lambda _i, _n, _w: None)
        assert "injected failure" in str(err.value)
        assert outside(sentinel, demo) == before
        assert not Path(layout.JOURNAL_DIR, "entries.jsonl").exists()
    finally:
        if swapped:
            _unswap(uploads, swapped[0])
    monkeypatch.undo()
    phphost("apply", symj, timeout=300)
    assert stat.S_IMODE(uploads.stat().st_mode) == 0o2770
