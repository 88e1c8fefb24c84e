"""Root never follows a tenant's path (issue 11).

1. verify's root family is blocked on the demo, and BREACHED when phphost's
   descriptor-based file operations are swapped for the path-following ones it
   used to have (the weakened host: same host, weakened root code).
2. A scripted attack: as the tenant and as the pool, a symlink (or a hard link, a
   FIFO) at every kind of path phphost manages; then plan, apply, a rollback and
   destroy --purge run, and no sensitive file outside the tenant trees changed owner,
   mode, ACL or content, and each refusal names the path."""

from __future__ import annotations

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
from phphost.jail import build as jail_build
from phphost.jail import hostview
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
    """`rm -rf path/*`: empties whatever path points at."""
    for name in os.listdir(path):
        full = os.path.join(path, name)
        if os.path.isdir(full) and not os.path.islink(full):
            shutil.rmtree(full)
        else:
            os.unlink(full)


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
    assert phphost("plan", str(DEMO), check=False).returncode == 0


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
