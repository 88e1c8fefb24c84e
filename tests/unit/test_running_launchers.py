"""running_launchers(): which pools' programs run, read from /proc below supervisord's
pid instead of supervisord's listing of every program (facts/gather.py). A fake /proc
in a temporary directory; supervisord is asked only for its pid (monkeypatched)."""

from __future__ import annotations

import os
import xmlrpc.client
from pathlib import Path

import pytest

from phphost import layout
from phphost.facts import gather
from phphost.facts.parse import ProgramStatus

SUPERVISORD = 100


def _process(proc: Path, pid: int, exe: str, argv: list[str], children: tuple[int, ...] = (),
             ppid: int = SUPERVISORD) -> None:
    d = proc / str(pid)
    (d / "task" / str(pid)).mkdir(parents=True)
    (d / "task" / str(pid) / "children").write_text(" ".join(map(str, children)) + " ")
    os.symlink(exe, d / "exe")
    (d / "cmdline").write_bytes(b"\0".join(a.encode() for a in argv) + b"\0")
    # the comm may hold spaces and parentheses: the fields after the last ")" count
    (d / "stat").write_text(f"{pid} (a) b (c)) S {ppid} {pid} {pid} 0 -1 4194560 0\n")


@pytest.fixture
def proc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    conf = tmp_path / "supervisord.conf"
    conf.write_text("")
    monkeypatch.setattr(layout, "SUPERVISOR_MAIN_CONF", str(conf))
    monkeypatch.setattr(gather, "supervisord_pid", lambda: SUPERVISORD)
    root = tmp_path / "proc"
    _process(root, SUPERVISORD, "/usr/bin/python3",
             ["/usr/bin/python3", "/usr/bin/supervisord"], (201, 202, 203, 204, 205, 206, 299),
             ppid=1)
    _process(root, 201, layout.LAUNCHER, [layout.LAUNCHER, "--pool", "blog", "--pid-ns"])
    # apply rebuilt the binary since this launcher started
    _process(root, 202, layout.LAUNCHER + " (deleted)", [layout.LAUNCHER, "--pool", "wiki"])
    # supervisord's other programs: migrate's FPM masters, the exporter
    _process(root, 203, "/usr/sbin/php-fpm8.2", ["php-fpm: master process", "--pool", "x"])
    _process(root, 204, "/usr/bin/python3.11", ["python3", "-m", "phphost.cli.main"])
    # the launcher binary, but not as a pool's program
    _process(root, 205, layout.LAUNCHER, [layout.LAUNCHER, "--help"])
    # listed as supervisord's child, but its pid now belongs to another process
    _process(root, 206, layout.LAUNCHER, [layout.LAUNCHER, "--pool", "shop"], ppid=1)
    # 299: gone (exited, or a zombie whose exe cannot be read): nothing under /proc
    return root


def test_each_launcher_child_of_supervisord_is_its_pool_running(proc: Path) -> None:
    programs, up = gather.running_launchers(proc=str(proc))
    assert up
    assert programs == {
        layout.program_name("blog"): ProgramStatus(layout.program_name("blog"), "RUNNING", 201),
        layout.program_name("wiki"): ProgramStatus(layout.program_name("wiki"), "RUNNING", 202),
    }


def test_a_launcher_that_is_not_supervisords_child_does_not_count(proc: Path) -> None:
    """A process the plan finds elsewhere (a tenant cannot make one supervisord's
    child, nor run it as root): only supervisord's children are read."""
    _process(proc, 300, layout.LAUNCHER, [layout.LAUNCHER, "--pool", "shop"], ppid=1)
    programs, _ = gather.running_launchers(proc=str(proc))
    assert layout.program_name("shop") not in programs


def test_supervisord_not_answering_means_nothing_runs(proc: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    def refused() -> int:
        raise ConnectionRefusedError("refused")
    monkeypatch.setattr(gather, "supervisord_pid", refused)
    assert gather.running_launchers(proc=str(proc)) == ({}, False)


def test_a_wrong_answer_falls_back_to_the_listing(proc: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    def wrong() -> int:
        raise xmlrpc.client.Fault(1, "UNKNOWN_METHOD")
    listed = {"phphost-blog": ProgramStatus("phphost-blog", "RUNNING", 7),
              "phphost-wiki": ProgramStatus("phphost-wiki", "STARTING", None),
              "phphost-shop": ProgramStatus("phphost-shop", "FATAL", None)}
    monkeypatch.setattr(gather, "supervisord_pid", wrong)
    monkeypatch.setattr(gather, "read_programs", lambda: (listed, True))
    assert gather.running_launchers(proc=str(proc)) == (
        {"phphost-blog": listed["phphost-blog"], "phphost-wiki": listed["phphost-wiki"]}, True)


def test_no_supervisord_config_means_not_running(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(layout, "SUPERVISOR_MAIN_CONF", str(tmp_path / "absent.conf"))
    assert gather.running_launchers(proc=str(tmp_path)) == ({}, False)


def test_a_pool_not_seen_is_asked_for_by_name(proc: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """/proc can miss a child (a sibling exiting while `children` is read): each
    expected program not seen is asked of supervisord, so a running pool is never
    taken for a stopped one (it would get a start, not the reload it needs)."""
    asked: list[str] = []
    states = {"phphost-shop": "RUNNING", "phphost-docs": "STARTING", "phphost-old": "STOPPED"}

    def one(name: str) -> ProgramStatus | None:
        asked.append(name)
        return ProgramStatus(name, states[name], None) if name in states else None
    monkeypatch.setattr(gather, "read_program", one)
    expect = [layout.program_name(p) for p in ("blog", "wiki", "shop", "docs", "old", "new")]
    programs, _ = gather.running_launchers(expect, proc=str(proc))
    assert asked == ["phphost-shop", "phphost-docs", "phphost-old", "phphost-new"]
    assert set(programs) == {"phphost-blog", "phphost-wiki", "phphost-shop", "phphost-docs"}


def test_many_pools_not_seen_are_read_from_one_listing(proc: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    names = [f"phphost-p{i}" for i in range(gather.CONFIRM_LIMIT + 1)]
    listed = {n: ProgramStatus(n, "RUNNING" if i % 2 else "FATAL", i + 1000)
              for i, n in enumerate(names)}
    monkeypatch.setattr(gather, "read_programs", lambda: (listed, True))
    monkeypatch.setattr(gather, "read_program", lambda name: pytest.fail("asked one by one"))
    programs, _ = gather.running_launchers(names, proc=str(proc))
    assert {n for n in programs if n.startswith("phphost-p")} == \
        {n for i, n in enumerate(names) if i % 2}
