"""cli/confirm.py: apply's scan of the jails it built runs in a forked child, which
writes the cache only once apply has told it what the store's garbage collection
removed, and nothing when apply failed. The fork tests run in a fresh interpreter:
JailConfirm forks only from a single-threaded process, and pytest's may hold threads
other tests left."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Collection
from pathlib import Path

import pytest

from phphost.cli import confirm
from phphost.facts import jailcache
from phphost.plan import actions as A
from phphost.spec.model import Model

Settle = Callable[[], Collection[jailcache.Gone] | None]

SCENARIO = textwrap.dedent("""
    import json, os, sys
    from phphost.cli import confirm
    from phphost.plan import actions as A
    from phphost.spec.model import Model

    out, how = sys.argv[1], sys.argv[2]

    def scan(model, only=None, settle=None):
        gone = settle() if settle is not None else []
        with open(out, "w") as fh:
            json.dump({"pid": os.getpid(), "pools": sorted(only or ()),
                       "gone": None if gone is None else [list(g) for g in gone]}, fh)
        return {}

    confirm.gather_jails = scan
    confirm.RACY_NS = 0
    plan = A.Plan(tuple(A.BuildJail("new", pool=p) for p in ("a", "b")))
    job = confirm.JailConfirm(Model(source="t.toml", tenants=(), pools=()), plan)
    job.built()
    print(json.dumps({"me": os.getpid(), "child": job.pid}))
    if how == "finish":
        job.collected([(1, 2, "obj1"), (1, 3, "obj2")])
        job.finish()
    else:
        job.cancel()
""")


def scenario(tmp_path: Path, how: str) -> tuple[dict[str, int], Path]:
    out = tmp_path / "said.json"
    proc = subprocess.run([sys.executable, "-c", SCENARIO, str(out), how], check=True,
                          capture_output=True, text=True, timeout=60)
    ids: dict[str, int] = json.loads(proc.stdout)
    return ids, out


def test_the_child_scans_and_hears_what_the_gc_removed(tmp_path: Path) -> None:
    ids, out = scenario(tmp_path, "finish")
    assert ids["child"] not in (None, ids["me"])
    got = json.loads(out.read_text())
    assert got == {"pid": ids["child"], "pools": ["a", "b"],
                   "gone": [[1, 2, "obj1"], [1, 3, "obj2"]]}


def test_a_failed_apply_gets_no_record(tmp_path: Path) -> None:
    ids, out = scenario(tmp_path, "cancel")
    assert ids["child"] not in (None, ids["me"])
    assert not out.exists() or json.loads(out.read_text())["gone"] is None


@pytest.fixture()
def said(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """What the in-process scan was told."""
    out = tmp_path / "said.json"

    def scan(model: Model, only: Collection[str] | None = None,
             settle: Settle | None = None) -> dict[str, object]:
        gone = settle() if settle is not None else []
        out.write_text(json.dumps({"pid": os.getpid(), "pools": sorted(only or ()),
                                   "gone": None if gone is None else list(gone)}))
        return {}

    monkeypatch.setattr(confirm, "gather_jails", scan)
    return out


def plan(*pools: str) -> A.Plan:
    return A.Plan(tuple(A.BuildJail("new", pool=p) for p in pools))


MODEL = Model(source="t.toml", tenants=(), pools=())


def test_without_a_fork_the_scan_runs_at_the_end(said: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    def fork() -> int:
        raise OSError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(os, "fork", fork)
    job = confirm.JailConfirm(MODEL, plan("a"))
    job.built()                         # no child, and no error for the apply
    assert job.pid is None and not said.exists()
    job.collected([(1, 2, "obj1")])
    job.finish()
    got = json.loads(said.read_text())
    assert got["pid"] == os.getpid() and got["gone"] == [[1, 2, "obj1"]]


def test_no_builds_no_scan(said: Path) -> None:
    job = confirm.JailConfirm(MODEL, A.Plan(()))
    job.built()
    job.finish()
    assert job.pid is None and not said.exists()
