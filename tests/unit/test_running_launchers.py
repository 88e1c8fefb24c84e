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


def _process(proc: Path, pid: int, exe: str, argv: list[str], children: tuple[int, ...] = ()
             ) -> None:
    d = proc / str(pid)
    (d / "task" / str(pid)).mkdir(parents=True)
    (d / "task" / str(pid) / "children").write_text(" ".join(map(str, children)) + " ")
    os.symlink(exe, d / "exe")
    (d / "cmdline").write_bytes(b"\0".join(a.encode() for a in argv) + b"\0")


@pytest.fixture
def proc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    conf = tmp_path / "supervisord.conf"
    conf.write_text("")
    monkeypatch.setattr(layout, "SUPERVISOR_MAIN_CONF", str(conf))
    monkeypatch.setattr(gather, "supervisord_pid", lambda: SUPERVISORD)
    root = tmp_path / "proc"
    _process(root, SUPERVISORD, "/usr/bin/python3",
             ["/usr/bin/python3", "/usr/bin/supervisord"], (201, 202, 203, 204, 205, 299))
    _process(root, 201, layout.LAUNCHER, [layout.LAUNCHER, "--pool", "blog", "--pid-ns"])
    # apply rebuilt the binary since this launcher started
    _process(root, 202, layout.LAUNCHER + " (deleted)", [layout.LAUNCHER, "--pool", "wiki"])
    # supervisord's other programs: migrate's FPM masters, the exporter
    _process(root, 203, "/usr/sbin/php-fpm8.2", ["php-fpm: master process", "--pool", "x"])
    _process(root, 204, "/usr/bin/python3.11", ["python3", "-m", "phphost.cli.main"])
    # the launcher binary, but not as a pool's program
    _process(root, 205, layout.LAUNCHER, [layout.LAUNCHER, "--help"])
    # 299: gone (exited, or a zombie whose exe cannot be read): nothing under /proc
    return root


def test_each_launcher_child_of_supervisord_is_its_pool_running(proc: Path) -> None:
    programs, up = gather.running_launchers(str(proc))
    assert up
    assert programs == {
        layout.program_name("blog"): ProgramStatus(layout.program_name("blog"), "RUNNING", 201),
        layout.program_name("wiki"): ProgramStatus(layout.program_name("wiki"), "RUNNING", 202),
    }


def test_a_launcher_that_is_not_supervisords_child_does_not_count(proc: Path) -> None:
    """A process the plan finds elsewhere (a tenant cannot make one supervisord's
    child, nor run it as root): only supervisord's children are read."""
    _process(proc, 300, layout.LAUNCHER, [layout.LAUNCHER, "--pool", "shop"])
    programs, _ = gather.running_launchers(str(proc))
    assert layout.program_name("shop") not in programs


def test_supervisord_not_answering_means_nothing_runs(proc: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    def refused() -> int:
        raise ConnectionRefusedError("refused")
    monkeypatch.setattr(gather, "supervisord_pid", refused)
    assert gather.running_launchers(str(proc)) == ({}, False)


def test_a_wrong_answer_falls_back_to_the_listing(proc: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    def wrong() -> int:
        raise xmlrpc.client.Fault(1, "UNKNOWN_METHOD")
    listed = {"phphost-blog": ProgramStatus("phphost-blog", "RUNNING", 7),
              "phphost-shop": ProgramStatus("phphost-shop", "FATAL", None)}
    monkeypatch.setattr(gather, "supervisord_pid", wrong)
    monkeypatch.setattr(gather, "read_programs", lambda: (listed, True))
    assert gather.running_launchers(str(proc)) == ({"phphost-blog": listed["phphost-blog"]},
                                                   True)


def test_no_supervisord_config_means_not_running(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(layout, "SUPERVISOR_MAIN_CONF", str(tmp_path / "absent.conf"))
    assert gather.running_launchers(str(tmp_path)) == ({}, False)
