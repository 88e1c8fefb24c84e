"""A host is many spec files (docs/spec.md): the demo split into a directory is the
same host; --tenant changes one tenant and leaves every other exactly as it is; a
destroy keeps what other pools still use (the launcher, the nftables table)."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
from pathlib import Path

import pytest

from phphost import layout
from phphost.spec.model import Model
from tests.integration.conftest import DEMO
from tests.integration.hostkit import get, master_pids, phphost, program, set_pool_key, wait_for
from tests.specdir import split_spec

NEW = """
[tenants.newt]
home = "/srv/phphost-test/newt"

[pools.newt]
tenant = "newt"
pm = "ondemand"
max_children = 2

[sites.newt]
server_name = "newt.demo.test"
tenant = "newt"
docroot = "htdocs"
pool = "newt"
"""


@pytest.fixture
def demo_dir(demo: Model, spec_dir: Path) -> Path:
    d = spec_dir / "demo.d"
    split_spec(DEMO.read_text(), d)
    return d


def pids(*pools: str) -> dict[str, int | None]:
    now = master_pids()
    return {p: now.get(program(p)) for p in pools}


def running_pids(*pools: str) -> dict[str, int | None]:
    """pids() once every pool's program is RUNNING: a pool the last apply (re)started
    is STARTING for supervisord's startsecs (no pid yet), and would show a pid later."""
    wait_for(lambda: all(pids(*pools).values()), timeout=15, interval=0.1)
    return pids(*pools)


def answering(model: Model, *skip: str) -> dict[str, int]:
    return {s.name: get(s.server_name, "/")[0] for s in model.sites if s.tenant not in skip}


def edit(path: Path, section: str, key: str, value: str) -> None:
    path.write_text(set_pool_key(path.read_text(), section, key, value))


def test_split_demo_plans_no_change(demo_dir: Path) -> None:
    phphost("apply", str(DEMO))
    proc = phphost("plan", str(demo_dir), check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "No changes" in proc.stdout
    applied = phphost("apply", str(demo_dir))
    assert "No changes" in applied.stdout, applied.stdout
    assert phphost("plan", str(DEMO), check=False).returncode == 0
    recorded = json.loads(Path(layout.APPLIED_FILE).read_text())
    assert sorted(p["name"] for p in recorded["pools"]) == ["blog", "chords", "files", "search",
                                                             "wiki"]


def test_tenant_limited_apply_leaves_the_others(demo: Model, demo_dir: Path) -> None:
    phphost("apply", str(DEMO))
    edit(demo_dir / "docs.toml", "pools.search", "max_children", "3")
    edit(demo_dir / "ncs.toml", "pools.chords", "max_children", "3")   # pending, not applied
    others = ("files", "chords", "blog", "wiki")
    before = running_pids(*others)
    try:
        plan = phphost("plan", str(demo_dir), "--tenant", "docs", check=False)
        assert plan.returncode == 10, plan.stdout + plan.stderr
        assert "search.conf" in plan.stdout and "chords.conf" not in plan.stdout
        assert "fcgi://chords/" not in plan.stdout       # chords' Apache bound stays as is
        assert "stop FPM master" not in plan.stdout
        phphost("apply", str(demo_dir), "--tenant", "docs")
        assert "pm.max_children = 3" in Path(layout.fpm_conf("search")).read_text()
        assert "pm.max_children = 2" in Path(layout.fpm_conf("chords")).read_text()
        assert pids(*others) == before
        assert set(answering(demo).values()) == {200}
        again = phphost("plan", str(demo_dir), "--tenant", "docs", check=False)
        assert again.returncode == 0, again.stdout
        full = phphost("plan", str(demo_dir), check=False)       # ncs' change still pending
        assert full.returncode == 10 and "chords.conf" in full.stdout
        assert "search.conf" not in full.stdout
    finally:
        phphost("apply", str(DEMO))


def test_tenant_limited_destroy_leaves_the_others(demo: Model, demo_dir: Path) -> None:
    phphost("apply", str(DEMO))
    others = ("files", "chords", "blog", "wiki")
    before = running_pids(*others)
    try:
        phphost("destroy", str(demo_dir), "--tenant", "docs")
        assert pids(*others) == before
        assert pids("search") == {"search": None}
        assert not Path(layout.fpm_conf("search")).exists()
        assert not Path(layout.site_link("docs")).exists()
        assert set(answering(demo, "docs").values()) == {200}
        assert get("search.demo.test", "/index.php")[0] == 404   # Debian's default vhost
        assert Path(layout.LAUNCHER).exists()
        assert pwd.getpwnam("docs")                      # tenant user and data stay
        assert (Path(demo.tenant("docs").home) / "htdocs").is_dir()
        plan = phphost("plan", str(demo_dir), "--tenant", "ncs", check=False)
        assert plan.returncode == 0, plan.stdout        # destroy is not drift for others
    finally:
        phphost("apply", str(DEMO))
    assert set(answering(demo).values()) == {200}


def test_new_tenant_spec_and_destroy_keep_the_shared_launcher(demo: Model,
                                                              spec_dir: Path) -> None:
    phphost("apply", str(DEMO))
    spec = spec_dir / "new.toml"
    spec.write_text(NEW)
    everyone = tuple(p.name for p in demo.pools)
    before = running_pids(*everyone)
    try:
        plan = phphost("plan", str(spec), "--tenant", "newt", check=False)
        assert "no longer in the spec" not in plan.stdout, plan.stdout
        phphost("apply", str(spec), "--tenant", "newt")
        docroot = Path("/srv/phphost-test/newt/htdocs")
        (docroot / "index.php").write_text("<?php echo 'newt ok';\n")
        shutil.chown(docroot / "index.php", "newt", "newt")
        assert get("newt.demo.test", "/index.php")[2] == "newt ok"
        assert pids(*everyone) == before
        # without --tenant the spec is the whole host: the plan would stop the demo
        full = phphost("plan", str(spec), check=False)
        assert "stop FPM master of pool files" in full.stdout
        assert "tenant(s) blog, docs, ncs, wiki are on this host but not in" in full.stderr
        phphost("destroy", str(spec))
        assert pids("newt") == {"newt": None}
        assert Path(layout.LAUNCHER).exists(), "destroy removed the launcher other masters use"
        assert pids(*everyone) == before
        assert set(answering(demo).values()) == {200}
        table = subprocess.run([layout.NFT_BINARY, "list", "table", *layout.NFT_TABLE],
                               capture_output=True, text=True, check=True).stdout
        assert "pool-files" in table and "pool-newt" not in table
        with pytest.raises(KeyError):
            pwd.getpwnam("php-newt")
        # the demo masters still restart from the launcher
        subprocess.run(["supervisorctl", "restart", program("search")], check=True,
                       capture_output=True)
        wait_for(lambda: get("search.demo.test", "/")[0] == 200, timeout=15)
        phphost("destroy", "--purge", str(spec), "--tenant", "newt")
        assert not Path("/srv/phphost-test/newt").exists()
        with pytest.raises(KeyError):
            pwd.getpwnam("newt")
        assert {p: v for p, v in pids(*everyone).items() if p != "search"} == \
            {p: v for p, v in before.items() if p != "search"}
        assert Path(layout.LAUNCHER).exists() and set(answering(demo).values()) == {200}
    finally:
        phphost("destroy", "--purge", str(spec), check=False)
        phphost("apply", str(DEMO))
        shutil.rmtree("/srv/phphost-test", ignore_errors=True)


def test_tenant_errors_change_nothing(demo: Model, demo_dir: Path) -> None:
    phphost("apply", str(DEMO))
    bad = phphost("apply", str(demo_dir), "--tenant", "nobody", check=False)
    assert bad.returncode == 2 and "nobody" in bad.stderr
    record = Path(layout.APPLIED_FILE)
    saved = record.read_text()
    os.rename(record, f"{record}.away")
    try:
        old = phphost("apply", str(demo_dir), "--tenant", "docs", check=False)
        assert old.returncode == 4 and "phphost apply SPEC" in old.stderr, old.stderr
    finally:
        os.rename(f"{record}.away", record)
    assert record.read_text() == saved
    clash = NEW.replace("newt.demo.test", "files.demo.test")
    (demo_dir / "newt.toml").write_text(clash)
    dup = phphost("plan", str(demo_dir), check=False)
    assert dup.returncode == 2 and "newt.toml" in dup.stderr, dup.stderr
