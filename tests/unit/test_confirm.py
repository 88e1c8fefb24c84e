"""cli/confirm.py: apply's scan of the jails it built runs in a forked child, which
writes the cache only once apply has told it what the store's garbage collection
removed, and nothing when apply failed."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Collection
from pathlib import Path

import pytest

from phphost.cli import confirm
from phphost.facts import jailcache
from phphost.plan import actions as A
from phphost.spec.model import Model

Settle = Callable[[], Collection[str] | None]


@pytest.fixture()
def said(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """What the child's scan was told (written by the child: a file, not memory)."""
    out = tmp_path / "said.json"

    def scan(model: Model, only: Collection[str] | None = None,
             settle: Settle | None = None) -> dict[str, object]:
        gone = settle() if settle is not None else []
        out.write_text(json.dumps({"pid": os.getpid(), "pools": sorted(only or ()),
                                   "gone": None if gone is None else list(gone)}))
        return {}

    monkeypatch.setattr(confirm, "gather_jails", scan)
    monkeypatch.setattr(jailcache, "RACY_NS", 0)
    monkeypatch.setattr(confirm, "RACY_NS", 0)
    return out


def plan(*pools: str) -> A.Plan:
    return A.Plan(tuple(A.BuildJail("new", pool=p) for p in pools))


MODEL = Model(source="t.toml", tenants=(), pools=())


def test_the_child_scans_and_hears_what_the_gc_removed(said: Path) -> None:
    job = confirm.JailConfirm(MODEL, plan("a", "b"))
    job.built()
    assert job.pid is not None and job.pid != os.getpid()
    job.collected(["obj1", "obj2"])
    job.finish()
    got = json.loads(said.read_text())
    assert got == {"pid": got["pid"], "pools": ["a", "b"], "gone": ["obj1", "obj2"]}
    assert got["pid"] != os.getpid()


def test_a_failed_apply_gets_no_record(said: Path) -> None:
    job = confirm.JailConfirm(MODEL, plan("a"))
    job.built()
    job.cancel()
    assert not said.exists() or json.loads(said.read_text())["gone"] is None


def test_without_a_fork_the_scan_runs_at_the_end(said: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    def fork() -> int:
        raise OSError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(os, "fork", fork)
    job = confirm.JailConfirm(MODEL, plan("a"))
    job.built()                         # no child, and no error for the apply
    assert job.pid is None and not said.exists()
    job.finish()
    assert json.loads(said.read_text())["pid"] == os.getpid()


def test_no_builds_no_scan(said: Path) -> None:
    job = confirm.JailConfirm(MODEL, A.Plan(()))
    job.built()
    job.finish()
    assert job.pid is None and not said.exists()
