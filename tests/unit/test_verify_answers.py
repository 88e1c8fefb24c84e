"""Probe answers as hostile input (verify.answers) and the no-follow scratch cleanup."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from phphost import safefs
from phphost.verify.answers import (
    MAX_ANSWER_BYTES,
    HostileAnswer,
    fs_results,
    parse_answer,
    session_dir,
    session_file,
)
from phphost.verify.scratch import Scratch, remove


def test_parse_answer_accepts_a_flat_object() -> None:
    assert parse_answer(b'{"ok": true, "results": [{"a": 1}]}', "p", "x") == {
        "ok": True, "results": [{"a": 1}]}


@pytest.mark.parametrize(("body", "problem"), [
    (b"x" * (MAX_ANSWER_BYTES + 1), "bytes"),
    (b"[1, 2]", "not an object"),
    (b'{"a": ', "not JSON"),
    (b"[" * 100_000 + b"]" * 100_000, "not JSON"),          # RecursionError
    (b'{"a":' * 20 + b"1" + b"}" * 20, "nested deeper"),
    (b"\xff\xfe", "not JSON"),
])
def test_parse_answer_rejects(body: bytes, problem: str) -> None:
    with pytest.raises(HostileAnswer, match=problem):
        parse_answer(body, "fs.php", "blog")


OPS = [{"op": "read", "path": "/srv/a"}, {"op": "list", "path": "/srv"}]


def _result(sent: dict[str, str], **over: Any) -> dict[str, Any]:
    return {**sent, "ok": True, "error": "", "content": "x", **over}


def test_fs_results_echo_what_was_sent() -> None:
    got = fs_results({"results": [_result(o) for o in OPS]}, OPS, "blog")
    assert [r["path"] for r in got] == ["/srv/a", "/srv"]


@pytest.mark.parametrize("results", [
    None,
    [_result(OPS[0])],
    [_result(OPS[0], path="/etc/shadow"), _result(OPS[1])],
    [_result(OPS[0], op="delete"), _result(OPS[1])],
    [_result(OPS[0], ok="yes"), _result(OPS[1])],
    [_result(OPS[0], content=["x"]), _result(OPS[1])],
    ["x", _result(OPS[1])],
])
def test_fs_results_reject_answers_that_do_not_match(results: object) -> None:
    with pytest.raises(HostileAnswer):
        fs_results({"results": results}, OPS, "blog")


SID = "verify-ab12-sess-blog"


def _session(**over: str) -> dict[str, str]:
    d = "/var/lib/php/sessions"
    return {"handler": "files", "id": SID, "dir": d, "file": f"{d}/sess_{SID}", **over}


def test_session_file_is_the_hosts_own_computation() -> None:
    got = session_file(_session(dir="/var/lib/php/sessions/"), "blog", SID,
                       "/var/lib/php/sessions")
    assert got == ("/var/lib/php/sessions", f"/var/lib/php/sessions/sess_{SID}")
    assert session_file({"handler": "redis"}, "blog", SID, "/x") is None
    assert session_file({"handler": "files", "id": ""}, "blog", SID, "/x") is None


@pytest.mark.parametrize("over", [
    {"file": "/tmp/verify-ab12-link/secret"},
    {"file": "/etc/shadow"},
    {"dir": "/tmp"},
    {"id": "other"},
    {"file": "/var/lib/php/sessions/verify-ab12-x/../../../../etc/shadow"},
])
def test_session_file_rejects_anything_else(over: dict[str, str]) -> None:
    with pytest.raises(HostileAnswer, match=r"session\.php in pool blog"):
        session_file(_session(**over), "blog", SID, "/var/lib/php/sessions")


def test_session_dir() -> None:
    assert session_dir({}) == "/var/lib/php/sessions"
    assert session_dir({"session.save_path": "2;/srv/s"}) == "/srv/s"
    assert session_dir({"session.save_path": "2;0600;/srv/s/"}) == "/srv/s"
    assert session_dir({"session.save_path": ""}) == "/tmp"


def test_ours_needs_a_normalised_absolute_path() -> None:
    s = Scratch("ab12")
    assert s.ours("/srv/x/verify-ab12-a.txt")
    assert not s.ours("/srv/x/verify-ab12-a/../../etc/shadow")
    assert not s.ours("srv/verify-ab12-a")
    assert s.ours("verify-ab12-x.php") and not s.ours("x.php")
    assert not s.ours("/srv/x/other")


# -- the no-follow removal (real files; root for chown) -------------------------

@pytest.fixture
def base() -> Iterator[Path]:
    top = Path(tempfile.mkdtemp(prefix="phphost-scratch-", dir="/run"))
    try:
        yield top
    finally:
        shutil.rmtree(top)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to chown")
def test_remove_never_follows_a_planted_symlink(base: Path) -> None:
    victim = base / "victim"
    victim.mkdir()
    (victim / "secret").write_text("keep")
    pooldir = base / "pooltmp"
    pooldir.mkdir(mode=0o700)
    os.chown(pooldir, 64123, 64123)
    link = pooldir / "verify-ab12-link"
    os.symlink(victim, link)
    with pytest.raises(safefs.UnsafePath, match="symlink in a directory another user can"):
        remove(str(link / "secret"))
    s = Scratch("ab12")
    s.track(str(link / "secret"))
    assert s.cleanup()[0].endswith("another user can write")
    s.track(str(link))
    assert s.cleanup() == []
    assert not os.path.lexists(link)
    assert (victim / "secret").read_text() == "keep"


def test_remove_takes_trees_files_and_missing_paths(base: Path) -> None:
    tree = base / "verify-ab12-dir"
    (tree / "sub").mkdir(parents=True)
    (tree / "sub" / "f").write_text("x")
    os.symlink("/etc", tree / "sub" / "etc")
    remove(str(tree))
    assert not tree.exists() and os.path.exists("/etc/passwd")
    remove(str(base / "missing"))
    (base / "f").write_text("x")
    remove(str(base / "f"))
    assert not (base / "f").exists()
    assert json.dumps(sorted(os.listdir(base))) == "[]"
