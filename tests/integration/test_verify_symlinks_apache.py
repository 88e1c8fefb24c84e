"""Apache cannot be walked out of a site's tree, and .htaccess cannot read across
tenants, on the real Apache: apache.docroot-symlink, apache.htaccess-read and
apache.htaccess-oracle are blocked on the demo host and BREACHED on a host weakened
for each (an attack that cannot fail proves nothing); the tenant home swapped for a
symlink (a root-only change that verify does not make) is refused too. Every test
restores the demo host (test_verify_weakened.weakened: undo, apply, plan is clean)."""

from __future__ import annotations

import grp
import json
import os
import re
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from phphost import layout
from phphost.render.apache import NO_SYMLINKS
from phphost.spec.model import Model
from phphost.verify import catalog
from phphost.verify.attacks_htaccess import read_dir_stem, read_probes
from phphost.verify.fixtures import code_dir
from phphost.verify.result import Report, Verdict
from phphost.verify.runner import run_attacks
from phphost.verify.scratch import Scratch
from phphost.verify.web import build_request, exchange
from tests.integration import hostkit
from tests.integration.test_verify import DEMO, breached, verdicts, verify
from tests.integration.test_verify_weakened import BREACHED, graceful, run, weakened

SITES = Path(layout.APACHE_DIR) / "sites-available"
ATTACKS = ("apache.docroot-symlink", "apache.htaccess-*")
# what a site's walk looks like without phphost's sections above the docroot
NO_SYMLINK_SECTION = re.compile(
    r'    <Directory "[^"]*">\n        ' + re.escape(NO_SYMLINKS) + r"\n(        .*\n)*?"
    r"    </Directory>\n")


def strip_no_symlink_sections(site: str) -> None:
    """The weakening: the site's vhost without the <Directory> sections above its
    docroot, so Debian's <Directory /> FollowSymLinks decides again."""
    path = SITES / f"phphost-{site}.conf"
    text, count = NO_SYMLINK_SECTION.subn("", path.read_text())
    assert count >= 2, f"no sections above the docroot in {path}"
    path.write_text(text)


def others(model: Model, tenant: str) -> set[str]:
    return {f"tenant:{t.name}" for t in model.tenants if t.name != tenant}


# --- the intact demo host -----------------------------------------------------------------


def test_walk_and_htaccess_attacks_are_blocked_on_the_demo_host(demo: Model) -> None:
    status, data = verify(*ATTACKS)
    assert status == 0, [c for c in data["cells"] if c["verdict"] not in ("blocked", "n/a")]
    for attack in ("apache.docroot-symlink", "apache.htaccess-read", "apache.htaccess-oracle"):
        assert verdicts(data, attack) == {"blocked"}
    # the swaps really happened (docroot and the dir above it) and were refused
    cell = next(c for c in data["cells"] if c["attack"] == "apache.docroot-symlink"
                and c["attacker"] == "site:files" and c["target"] == "tenant:blog")
    assert "/srv/phphost-demo/ncs/htdocs/files ->" in cell["evidence"]
    assert "/srv/phphost-demo/ncs/htdocs ->" in cell["evidence"]
    assert "HTTP 403" in cell["evidence"]
    # file() is refused in .htaccess here ("restricted context": HTTP 500) ...
    read = next(c for c in data["cells"] if c["attack"] == "apache.htaccess-read"
                and c["attacker"] == "site:blog")
    assert "if-file 500" in read["evidence"] and "errordocument 500" in read["evidence"]
    # ... but file tests are not: the oracle works on the site's own files and on what
    # www-data can stat (the documented residual), never on the private files
    oracle = next(c for c in data["cells"] if c["attack"] == "apache.htaccess-oracle"
                  and c["attacker"] == "site:blog" and c["target"] == "tenant:ncs")
    assert "control: the oracle works" in oracle["evidence"]
    assert "not told" in oracle["evidence"]
    assert_demo_unchanged(demo)


def assert_demo_unchanged(demo: Model) -> None:
    for site in demo.sites:
        if site.docroot is not None:
            assert os.path.isdir(site.docroot) and not os.path.islink(site.docroot)
    assert hostkit.phphost("plan", str(DEMO), check=False).returncode == 0


# --- docroot and the dirs above it --------------------------------------------------------


def test_docroot_symlink_breached_when_the_parents_follow_symlinks(demo: Model) -> None:
    with weakened(demo):
        strip_no_symlink_sections("blog")
        strip_no_symlink_sections("files")
        graceful()
        status, data = verify("apache.docroot-symlink")
    assert status == BREACHED
    # not blog -> wiki: wiki's docroot has an .htaccess (DirectoryIndex) that blog's
    # overrides do not allow, so Apache answers 500 through the swapped docroot
    assert breached(data, "apache.docroot-symlink") == (
        {("site:blog", t) for t in others(demo, "blog") - {"tenant:wiki"}}
        | {("site:files", t) for t in others(demo, "ncs")})
    assert verdicts(data, "apache.docroot-symlink", "site:docs") == {"blocked"}
    files = next(c for c in data["cells"] if c["attack"] == "apache.docroot-symlink"
                 and c["attacker"] == "site:files" and c["target"] == "tenant:blog")
    # both the docroot and the intermediate htdocs walked out of the tree
    assert files["evidence"].count("(the target's file") == 2
    assert_demo_unchanged(demo)


@contextmanager
def home_swapped(tenant_home: str, other_home: str) -> Iterator[None]:
    """The tenant home (root's to move: its parent is root's) replaced by a symlink to
    another tenant's home, then put back."""
    saved = tenant_home + ".verify-saved"
    os.rename(tenant_home, saved)
    try:
        os.symlink(other_home, tenant_home)
        yield
    finally:
        if os.path.islink(tenant_home):
            os.unlink(tenant_home)
        os.rename(saved, tenant_home)


def _fetch_through_swapped_home(demo: Model, marker: str) -> tuple[int, str]:
    blog, ncs = demo.tenant("blog"), demo.tenant("ncs")
    name = "verify-home-swap.txt"
    canary = os.path.join(code_dir(demo, ncs), name)
    Path(canary).write_text(marker)
    os.chown(canary, hostkit.uid(ncs.user), grp.getgrnam(ncs.group).gr_gid)
    try:
        with home_swapped(blog.home, ncs.home):
            # blog's docroot <home>/htdocs is now ncs's htdocs; /files/ is ncs's docroot
            rel = os.path.relpath(canary, os.path.join(ncs.home, "htdocs"))
            resp = exchange(build_request("GET", f"/{rel}", "blog.demo.test"), 80)
            audit = hostkit.phphost("audit", str(DEMO), "--json", "--rule", "PHA024",
                                    check=False)
    finally:
        os.unlink(canary)
    findings = json.loads(audit.stdout)["findings"]
    assert [(f["severity"], f["where"]) for f in findings] == [("high", blog.home)]
    return resp.status, resp.text


def test_home_swapped_for_a_symlink_is_refused(demo: Model) -> None:
    marker = "VERIFY-HOME-SWAP-intact"
    status, body = _fetch_through_swapped_home(demo, marker)
    assert status in (403, 404) and marker not in body
    assert_demo_unchanged(demo)
    with weakened(demo):
        strip_no_symlink_sections("blog")
        graceful()
        status, body = _fetch_through_swapped_home(demo, "VERIFY-HOME-SWAP-weakened")
    assert status == 200 and "VERIFY-HOME-SWAP-weakened" in body


# --- .htaccess ----------------------------------------------------------------------------

RUN_ID = "5afe0001"
# probes whose directives are valid in the main config on this host (no mod_rewrite,
# no mod_ssl there)
MOVED = ("if-file", "if-file-wrong", "require-expr", "require-expr-wrong", "errordocument")


def _main_config_copies(demo: Model) -> str:
    """blog's read probes aimed at ncs, as <Directory> sections of blog's vhost for the
    directories verify will place them in (AllowOverride(List) None: the .htaccess there is
    not read; the same text is evaluated by Apache unrestricted)."""
    scratch = Scratch(RUN_ID)
    ncs = demo.tenant("ncs")
    canary = os.path.join(code_dir(demo, ncs), scratch.name("code.php"))
    token = f"VERIFY-CANARY-{RUN_ID}-code-ncs"          # fixtures.Fixtures.token
    docroot = next(s.docroot for s in demo.sites if s.name == "blog") or ""
    out = []
    for probe in read_probes(canary, token, 0):
        if probe.name not in MOVED:
            continue
        directory = os.path.join(docroot, scratch.name(f"blog-{read_dir_stem(probe.name, 'ncs')}"))
        body = "".join(f"        {line}\n" for line in probe.htaccess.splitlines())
        out.append(f'    <Directory "{directory}">\n        AllowOverride None\n'
                   f'        AllowOverrideList None\n{body}'
                   "    </Directory>\n")
    return "".join(out)


def _breached(report: Report, attack: str) -> set[tuple[str, str | None]]:
    return {(c.attacker, c.target) for c in report.cells
            if c.attack == attack and c.verdict is Verdict.BREACHED}


def test_htaccess_read_breached_when_the_expression_runs_unrestricted(demo: Model) -> None:
    conf = SITES / "phphost-blog.conf"
    with weakened(demo):
        text = conf.read_text()
        anchor = "    DirectoryIndex index.php"
        assert anchor in text
        conf.write_text(text.replace(anchor, _main_config_copies(demo) + anchor, 1))
        graceful()
        report, problems = run_attacks(demo, catalog.select(["apache.htaccess-read"]), RUN_ID)
    assert not problems
    assert _breached(report, "apache.htaccess-read") == {("site:blog", "tenant:ncs")}
    cell = next(c for c in report.cells if c.attacker == "site:blog" and c.target == "tenant:ncs")
    assert "errordocument: the canary's text came back" in cell.evidence
    assert "if-file: the right guess got 403, a wrong one 200" in cell.evidence
    assert {c.verdict for c in report.cells if c.target != "tenant:ncs"
            or c.attacker != "site:blog"} == {Verdict.BLOCKED}


def test_htaccess_oracle_breached_when_www_data_may_enter_new_dirs(demo: Model) -> None:
    """A default ACL on ncs's home lets www-data into the private dir ncs makes there:
    the file tests of another tenant's .htaccess then see its private files."""
    home = demo.tenant("ncs").home
    before = subprocess.run(["getfacl", "-d", "-c", "-p", home], capture_output=True,
                            text=True, check=True).stdout
    assert not before.strip(), f"{home} already has a default ACL: {before}"
    with weakened(demo, undo=(lambda: run("setfacl", "-k", home),)):
        run("setfacl", "-d", "-m", "u:www-data:r-x", home)
        status, data = verify("apache.htaccess-oracle")
    assert status == BREACHED
    assert breached(data, "apache.htaccess-oracle") == {("site:blog", "tenant:ncs"),
                                                       ("site:wiki", "tenant:ncs")}
    assert verdicts(data, "apache.htaccess-oracle", "site:blog", "tenant:docs") == {"blocked"}
    assert verdicts(data, "apache.htaccess-oracle", "site:files") == {"blocked"}
