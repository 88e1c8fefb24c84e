"""The C launcher (launcher/launch.c), built here with the sendmail's flags: its command
line, mount and limits files and network-policy check, run for real up to the point
where it would touch namespaces (or, as root, through a harmless /bin/true)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from phphost.launcher import program

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")
ROOT = os.geteuid() == 0


# a stand-in nft keeps its "ruleset" in a file, which the kernel's ruleset generation
# does not follow: the launcher asks it every time
STAND_IN = ("-DRULESET_GENERATION=0",)


def build(dest: str, *defines: str) -> str:
    argv = program.build_argv(dest)
    subprocess.run([argv[0], *defines, *argv[1:]], check=True)
    return dest


@pytest.fixture(scope="module")
def workdir() -> Iterator[str]:
    d = tempfile.mkdtemp(prefix="phphost-launch-")
    yield d
    shutil.rmtree(d)


@pytest.fixture(scope="module")
def launcher(workdir: str) -> str:
    return build(os.path.join(workdir, "launch"))


def run(binary: str, *args: str, files: dict[str, str] | None = None,
        where: str = "/tmp") -> subprocess.CompletedProcess[str]:
    for name, text in (files or {}).items():
        Path(where, name).write_text(text)
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=30,
                          check=False)


@pytest.mark.parametrize(("argv", "error"), [
    (["--pool", "p", "--jail", "/j"], "usage"),
    (["--pool", "p", "--", "/bin/true"], "--jail"),
    (["--pool", "p", "--jail", "j", "--", "/bin/true"], "absolute"),
    (["--pool", "p", "--jail", "/j", "--", "true"], "absolute"),
    (["--pool", "p", "--jail", "/j", "--bogus", "x", "--", "/bin/true"], "unknown option"),
    (["--pool", "p", "--jail", "/j", "--cgroup", "../../x", "--", "/x"], "phphost/POOL"),
    (["--pool", "p", "--jail", "/j", "--cgroup", "/sys/fs/cgroup", "--", "/x"], "phphost/POOL"),
    (["--pool", "p", "--jail", "/j", "--nproc", "0", "--", "/x"], "--nproc"),
    (["--pool", "p", "--jail", "/j", "--nproc", "x", "--", "/x"], "--nproc"),
    (["--pool", "p", "--jail", "/j", "--nproc", "1", "--nproc", "2", "--", "/x"], "at most once"),
    (["--pool", "p", "--jail", "/j", "--mount", "/a:/b", "--", "/x"], "SRC:DST:ro"),
    (["--pool", "p", "--jail", "/j", "--mount", "/a:/:ro", "--", "/x"], "jail root"),
    (["--pool", "p", "--jail", "/j", "--mount", "/a/../etc:/b:ro", "--", "/x"], "without '..'"),
    (["--pool", "p", "--jail", "/j", "--mount", "/a:/x:ro", "--mount", "/b:/x/:rw", "--", "/x"],
     "two mounts have the target /x"),
    (["--pool", "p", "--jail", "/j", "--socket", "/run/x.sock", "--", "/x"], "--pid-ns"),
])
def test_command_line_errors(launcher: str, argv: list[str], error: str) -> None:
    out = run(launcher, *argv)
    assert out.returncode == 1
    assert out.stderr.startswith("phphost-launch[p]: ") and error in out.stderr, out.stderr
    assert out.stderr.rstrip().endswith("the FPM master was not started")


@pytest.mark.parametrize(("text", "error"), [
    ("nope", "is not JSON"),
    ('{"pool": "q", "mounts": []}', "the mount file of pool 'q', not 'p'"),
    ('{"pool": "p"}', "mounts"),
    ('{"pool": "p", "mounts": [{"source": "x", "target": "/y"}]}', "must be absolute"),
    ('{"pool": "p", "mounts": [{"source": "/x", "target": "/y/../../etc"}]}', "without '..'"),
    ('{"pool": "p", "mounts": [{"source": "/x", "target": "/"}]}', "jail root"),
    ('{"pool": "p", "mounts": [{"source": "/x", "target": "/y", "writable": "yes"}]}',
     "writable true or false"),
    ('{"pool": "p", "mounts": [{"source": "/x", "target": "/y"}, '
     '{"source": "/z", "target": "/y/"}]}', "two mounts have the target /y"),
    ('{"pool": "p", "mounts": [{"type": "tmpfs", "source": "tmpfs", "target": "/tmp"}]}',
     "size"),
    ('{"pool": "p", "mounts": [{"type": "tmpfs", "source": "tmpfs", "target": "/tmp", '
     '"size": "1M"}]}', "size"),
    ('{"pool": "p", "mounts": [{"source": "/x\\u0000", "target": "/y"}]}', "NUL"),
    ('{"pool": "p", "mounts": [{"source": "/x", "target": "/y"}]} x', "trailing"),
])
def test_mount_file_errors(launcher: str, workdir: str, text: str, error: str) -> None:
    path = os.path.join(workdir, "m.json")
    Path(path).write_text(text)
    out = run(launcher, "--pool", "p", "--jail", "/j", "--mounts", path, "--", "/bin/true")
    assert out.returncode == 1 and error in out.stderr, out.stderr


@pytest.mark.parametrize("text", ['{"pool": "other", "nproc": 5}', '{"pool": "p", "nproc": true}',
                                  '{"pool": "p", "nproc": 0}', "x"])
def test_limits_file_errors(launcher: str, workdir: str, text: str) -> None:
    path = os.path.join(workdir, "l.json")
    Path(path).write_text(text)
    out = run(launcher, "--pool", "p", "--jail", "/j", "--limits", path, "--", "/bin/true")
    assert out.returncode == 1 and "l.json" in out.stderr, out.stderr


@pytest.mark.skipif(not ROOT, reason="namespaces need root")
def test_a_good_plan_runs_the_command(launcher: str, workdir: str) -> None:
    """Escaped and non-ASCII paths in the mount file, mounts in any order, limits file:
    the command runs (here: no jail, /proc of its own PID namespace)."""
    src = os.path.join(workdir, "dir é")
    os.makedirs(src, exist_ok=True)
    Path(workdir, "m.json").write_text(json.dumps({"pool": "p", "mounts": [
        {"type": "bind", "source": src, "target": src, "writable": False},
        {"type": "proc", "source": "proc", "target": "/proc", "writable": False}]}))
    Path(workdir, "l.json").write_text('{"pool": "p", "nproc": 4000}')
    out = run(launcher, "--pool", "p", "--jail", "/", "--pid-ns", "--mounts",
              os.path.join(workdir, "m.json"), "--limits", os.path.join(workdir, "l.json"),
              "--", "/bin/sh", "-c", "echo $$; grep 'Max processes' /proc/self/limits "
              "| tr -s ' ' | cut -d' ' -f3; set -- /proc/[0-9]*; echo $#")
    assert out.returncode == 0, out.stderr
    # PID 1, and sh alone in /proc (the shell expands the glob itself: `ls | grep -c`
    # counted 2 or 3 processes, depending on whether ls had exited when grep started)
    assert out.stdout.split() == ["1", "4000", "1"]


@pytest.mark.skipif(not ROOT, reason="namespaces need root")
def test_exit_status_of_the_master(launcher: str) -> None:
    out = run(launcher, "--pool", "p", "--jail", "/", "--pid-ns", "--", "/bin/sh", "-c",
              "exit 7")
    assert out.returncode == 7


@pytest.mark.skipif(not ROOT, reason="namespaces need root")
def test_inherited_descriptors_stay_out_of_the_master(launcher: str) -> None:
    """Attacker review: a descriptor the launcher inherits above stderr (run by hand, or
    by a tool that leaks one) must not reach the master and its workers."""
    r, w = os.pipe()
    try:
        out = subprocess.run([launcher, "--pool", "p", "--jail", "/", "--pid-ns", "--",
                              "/bin/ls", "/proc/self/fd"], capture_output=True, text=True,
                             timeout=30, check=False, pass_fds=(r, w))
    finally:
        os.close(r)
        os.close(w)
    assert out.returncode == 0, out.stderr
    fds = {int(x) for x in out.stdout.split()}
    assert r not in fds and w not in fds, fds


def _fake_nft(directory: str, loaded: str) -> str:
    """An nft that lists the table only once `-f` ran (marker file `loaded`)."""
    script = os.path.join(directory, "nft")
    Path(script).write_text(textwrap.dedent(f"""\
        #!/bin/sh
        if [ "$1" = "-f" ]; then cp "$2" {loaded}; exit 0; fi
        [ -f {loaded} ] || exit 1
        cat {loaded}
        """))
    os.chmod(script, 0o755)  # noqa: S103 - a test program
    return script


@pytest.mark.skipif(not ROOT, reason="namespaces need root")
def test_launcher_loads_a_missing_policy(workdir: str) -> None:
    loaded = os.path.join(workdir, "loaded")
    nft = _fake_nft(workdir, loaded)
    binary = build(os.path.join(workdir, "launch-nft"), f'-DNFT="{nft}"', *STAND_IN)
    conf = os.path.join(workdir, "nftables.conf")
    args = ["--jail", "/", "--network-policy", conf, "--network-user", "root", "--",
            "/bin/true"]
    out = run(binary, "--pool", "web", *args)     # no file: fails closed
    assert out.returncode == 1 and f"the network policy {conf} is missing" in out.stderr
    assert not os.path.exists(loaded)
    Path(conf).write_text("table inet phphost {\n  map pools {\n    type uid : verdict\n"
                          "    elements = { 1 : jump pool-web, 0 : jump pool-web2 }\n  }\n}\n")
    out = run(binary, "--pool", "web", *args)         # uid 0 goes to pool-web2: refused
    assert out.returncode == 1 and "does not send uid 0 to chain pool-web" in out.stderr
    Path(conf).write_text("table inet phphost {\n  map pools {\n    type uid : verdict\n"
                          "    elements = { 10 : jump pool-web, 0 : jump pool-web }\n  }\n}\n")
    assert run(binary, "--pool", "web", *args).returncode == 0
    assert Path(loaded).read_text() == Path(conf).read_text()
    out = run(binary, "--pool", "other", *args)
    assert out.returncode == 1 and "does not send uid 0 to chain pool-other" in out.stderr
    assert "run `phphost apply`" in out.stderr
    out = run(binary, "--pool", "web", "--jail", "/", "--network-policy", conf, "--",
              "/bin/true")
    assert out.returncode == 1 and "go together" in out.stderr
    out = run(binary, "--pool", "web", "--jail", "/", "--network-policy", conf,
              "--network-user", "phphost-no-such-user", "--", "/bin/true")
    assert out.returncode == 1 and "no such user" in out.stderr


def _wait_for(path: str, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 10
    while not os.path.exists(path):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.02)


def _wake(sock: str) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as c:
        c.connect(sock)      # waits in the launcher's backlog


@pytest.mark.skipif(not ROOT, reason="namespaces need root")
@pytest.mark.parametrize("reload_fails", [False, True])
def test_every_wake_checks_the_policy(tmp_path: Path, reload_fails: bool) -> None:
    """A socket-activated pool whose table was flushed while it slept: the wake loads
    the policy again before the master starts; when that fails (here: the file is gone)
    no master starts, the launcher exits 1 and removes its socket (supervisord retries)."""
    loaded = str(tmp_path / "loaded")
    binary = build(str(tmp_path / "launch-nft"), f'-DNFT="{_fake_nft(str(tmp_path), loaded)}"',
                   *STAND_IN)
    conf = tmp_path / "nftables.conf"
    conf.write_text("table inet phphost {\n  map pools {\n    type uid : verdict\n"
                    "    elements = { 0 : jump pool-web }\n  }\n}\n")
    sockdir = tempfile.mkdtemp(prefix="phphost-launch-", dir="/run")   # root's, 0700
    sock, ran = os.path.join(sockdir, "web.sock"), tmp_path / "ran"
    proc = subprocess.Popen(
        [binary, "--pool", "web", "--jail", "/", "--pid-ns", "--network-policy", str(conf),
         "--network-user", "root", "--socket", sock, "--socket-group", "root",
         "--socket-mode", "0660", "--backlog", "8",
         "--idle-timeout", "60", "--", "/bin/sh", "-c", f"cp {loaded} {ran}"],
        stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(sock, proc)
        assert Path(loaded).exists()              # checked (and loaded) at start
        os.unlink(loaded)                         # nft flush ruleset while asleep
        if reload_fails:
            conf.unlink()
        _wake(sock)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        shutil.rmtree(sockdir, ignore_errors=True)
    if reload_fails:
        assert proc.returncode == 1, err
        assert f"the network policy {conf} is missing" in err
        assert "the FPM master was not started" in err
        assert not ran.exists() and not os.path.exists(sock)
    else:
        assert proc.returncode == 0, err          # the master ran (and exited) ...
        assert ran.read_text() == conf.read_text()  # ... after the policy was loaded again
