"""A throwaway chrooted php-fpm8.2 master started through the jail launcher, with PHP
run over FastCGI inside the jail. Root only; the master is stopped by its pid."""

from __future__ import annotations

import grp
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from phphost import layout
from phphost.facts.hostview import RealHostView
from phphost.facts.jailscan import gather_facts
from phphost.fastcgi.status import run_php
from phphost.host.jailbuild import build_jail, remove_jail
from phphost.jail.features import build_manifest
from phphost.jail.invariants import Neighbours, check_invariants
from phphost.jail.manifest import Manifest
from phphost.jail.mounts import render_mounts_json
from phphost.launcher import mailer
from phphost.launcher.program import launcher_argv
from phphost.spec.model import JailSpec, Mount, Pool, PoolSettings, Tenant
from tests.jail.helpers import Account, mountinfo, process, wait_for
from tests.unit.test_jail_sendmail import Sink

pytestmark = pytest.mark.skipif(
    not os.path.exists(layout.FPM_BINARY) or shutil.which("gcc") is None,
    reason=f"needs {layout.FPM_BINARY} and gcc")

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HOST = RealHostView()

PROBE = r"""<?php
date_default_timezone_set('Europe/Paris');
$out = [
  'tz' => date('T e', 0),
  'localhost' => gethostbyname('localhost'),
  'user' => posix_getpwuid(posix_getuid())['name'] ?? null,
  'iconv' => iconv('UTF-8', 'ISO-8859-1', "caf\u{e9}") === "caf\xe9",
  'ca' => is_readable('/etc/ssl/certs/ca-certificates.crt'),
  'shell' => shell_exec('echo shell-ok 2>&1'),
  'write_code' => @file_put_contents(__FILE__ . '.x', 'x') !== false,
  'write_data' => @file_put_contents(__DIR__ . '/data/x', 'x') !== false,
  'write_etc' => @file_put_contents('/etc/x', 'x') !== false,
  'write_tz' => @file_put_contents('/usr/share/zoneinfo/x', 'x') !== false
      || @touch('/usr/share/zoneinfo/UTC'),
  'session' => session_start() && is_file(session_save_path() . '/sess_' . session_id()),
  'mail' => mail('alice@example.org', 'hi', "body\n", 'From: Real Name <wiki@example.org>'),
  'sock' => ($c = @stream_socket_client('unix:///run/probe/probe.sock'))
      ? stream_get_contents($c) : null,
];
echo json_encode($out);
"""


@dataclass
class Master:
    proc: subprocess.Popen[bytes]
    socket: str
    home: str
    sink: Sink
    server: SocketServer

    def php(self, script: str = "probe.php") -> dict[str, object]:
        resp = run_php(self.socket, f"{self.home}/{script}", timeout=30)
        status, _headers, body = resp.http()
        assert status == 200, (status, body, resp.stderr)
        data = json.loads(body)
        assert isinstance(data, dict)
        return data


class SocketServer:
    """A unix socket in a directory bound into the jail read-only (as /run/mysqld)."""

    def __init__(self, directory: str) -> None:
        self.path = f"{directory}/probe.sock"
        self.generation = 0
        self.sock: socket.socket | None = None
        self.restart()

    def restart(self) -> None:
        if self.sock is not None:
            self.sock.close()
            os.unlink(self.path)
        self.generation += 1
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.bind(self.path)
        os.chmod(self.path, 0o666)  # noqa: S103 - any pool may connect, as to mysqld
        self.sock.listen(4)
        threading.Thread(target=self._serve, args=(self.sock, self.generation),
                         daemon=True).start()

    @staticmethod
    def _serve(sock: socket.socket, generation: int) -> None:
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            with conn:
                conn.sendall(f"hello {generation}".encode())


def write(path: str, text: str, mode: int = 0o640) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.chmod(path, mode)


def fpm_conf(scratch: str, account: Account, jail: str, name: str,
             pm: tuple[str, ...] = ("pm = static", "pm.max_children = 1")) -> str:
    conf = f"{scratch}/{name}.conf"
    write(conf, "\n".join([
        "[global]", f"pid = {scratch}/{name}.pid", f"error_log = {scratch}/{name}.log",
        "daemonize = no", "process_control_timeout = 5s", "",
        f"[{name}]", f"user = {account.user}", f"group = {account.group}",
        f"listen = {scratch}/{name}.sock", "listen.mode = 0600",
        *pm, "pm.status_path = /phphost-fpm-status", "ping.path = /phphost-fpm-ping",
        f"chroot = {jail}", "chdir = /", "catch_workers_output = yes", "clear_env = yes",
        f"php_admin_value[sendmail_path] = {mailer.SENDMAIL_PATH}",
        "php_admin_value[session.save_path] = /var/lib/php/sessions",
        "php_admin_flag[display_errors] = off", "php_admin_flag[log_errors] = on",
    ]) + "\n", 0o600)
    return conf


@pytest.fixture(scope="module")
def sendmail_binary() -> Iterator[str]:
    """The mailer compiled into a scratch dir (the real one lives in /usr/local/lib).
    Below /root, not /tmp: closures take programs only from dirs only root can write."""
    d = tempfile.mkdtemp(prefix="phphost-sendmail-", dir="/root")
    os.chmod(d, 0o755)  # noqa: S103 - a program the jail's pool user runs
    path = f"{d}/phphost-sendmail"
    subprocess.run(mailer.build_argv(path), check=True)
    yield path
    shutil.rmtree(d)


def prepare(scratch: str, account: Account, features: tuple[str, ...], smtp: str,
            binary: str) -> tuple[Manifest, str, str, SocketServer]:
    home = f"{scratch}/srv/t"
    os.makedirs(f"{home}/data")
    os.chmod(f"{scratch}/srv", 0o755)  # noqa: S103 - a plain directory
    for path, mode in ((home, 0o750), (f"{home}/data", 0o770)):
        os.chown(path, 0, account.gid)
        os.chmod(path, mode)
    write(f"{home}/probe.php", PROBE)
    os.chown(f"{home}/probe.php", 0, account.gid)
    sockdir = f"{scratch}/sockdir"
    os.makedirs(sockdir)
    server = SocketServer(sockdir)
    tenant = Tenant("t", "root", account.group, home)
    pool = Pool("pjt", "t", account.user, f"{scratch}/pjt.sock", PoolSettings(),
                writable=(f"{home}/data",),
                jail=JailSpec(True, features, (), (Mount(sockdir, "/run/probe"),), smtp))
    manifest = build_manifest(pool, tenant, HOST, sendmail=binary)
    jail = f"{scratch}/jails/pjt"
    build_jail(manifest, jail, f"{scratch}/store")
    check_invariants(manifest, gather_facts(jail), Neighbours())
    mounts = f"{scratch}/pjt.mounts.json"
    write(mounts, render_mounts_json(manifest), 0o600)
    return manifest, jail, mounts, server


@pytest.fixture
def master(request: pytest.FixtureRequest, scratch: str, account: Account,
           sendmail_binary: str, launcher_binary: str) -> Iterator[Master]:
    features: tuple[str, ...] = request.param
    sink = Sink()
    threading.Thread(target=sink.serve_forever, args=(0.05,), daemon=True).start()
    smtp = f"127.0.0.1:{sink.server_address[1]}"
    _, jail, mounts, server = prepare(scratch, account, features, smtp, sendmail_binary)
    fpm = [layout.FPM_BINARY, "--nodaemonize", "--fpm-config",
           fpm_conf(scratch, account, jail, "pjt"), "-d", "opcache.enable=0"]
    argv = launcher_argv(launcher_binary, "pjt", jail, mounts, fpm)
    sock = f"{scratch}/pjt.sock"
    try:
        with process(argv, cwd=REPO, stderr=subprocess.PIPE) as proc:
            wait_for(lambda: os.path.exists(sock) or proc.poll() is not None, 20, "FPM socket")
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else b""
            yield Master(proc, sock, f"{scratch}/srv/t", sink, server)
            os.kill(proc.pid, signal.SIGQUIT)
            proc.wait(timeout=20)
        remove_jail(jail)
    finally:
        sink.shutdown()
        sink.server_close()
        if server.sock is not None:
            server.sock.close()


FULL = ("base", "dns", "tls", "iconv", "shell", "sessions", "mail")


@pytest.mark.parametrize("master", [FULL], indirect=True)
def test_php_in_the_jail(master: Master, account: Account) -> None:
    got = master.php()
    assert got["tz"] == "CET Europe/Paris"                  # zoneinfo read after chroot
    assert got["localhost"] == "127.0.0.1"                  # nsswitch + hosts + libnss
    assert got["user"] == account.user                      # the jail's own passwd
    assert got["iconv"] is True and got["ca"] is True
    assert got["shell"] == "shell-ok\n"
    assert got["write_data"] is True
    assert got["write_code"] is False and got["write_etc"] is False
    assert got["write_tz"] is False             # the host's tzdata, bound read-only
    assert got["session"] is True
    assert got["mail"] is True
    s = master.sink.sessions[-1]
    assert s.rcpt == ["<alice@example.org>"]
    assert b"From: Real Name <wiki@example.org>\r\n" in s.data
    assert got["sock"] == "hello 1"


@pytest.mark.parametrize("master", [FULL], indirect=True)
def test_master_pid_namespace_and_socket_dir(master: Master, scratch: str) -> None:
    pid = master.proc.pid
    assert os.readlink(f"/proc/{pid}/exe") == layout.FPM_BINARY   # the supervised pid
    theirs, ours = mountinfo(pid), mountinfo()
    jail = f"{scratch}/jails/pjt"
    for target in (f"{jail}{scratch}/srv/t", f"{jail}{scratch}/srv/t/data",
                   f"{jail}/run/probe"):
        assert f" {target} " in theirs and target not in ours
    # the socket's directory is bound, not the socket: a restarted server is reached
    master.server.restart()
    assert master.php()["sock"] == "hello 2"


@pytest.mark.parametrize("master", [("base", "mail")], indirect=True)
def test_mail_without_shell(master: Master) -> None:
    got = master.php()
    assert got["mail"] is True                              # via the mail-only /bin/sh
    assert master.sink.sessions[-1].rcpt == ["<alice@example.org>"]
    assert got["shell"] is None                             # exec refused by the mail-only sh
    assert got["session"] is False                          # no sessions feature
    assert got["localhost"] == "localhost"                  # no dns feature: unresolved
    assert got["iconv"] is False                            # no gconv modules in this jail


def _children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children", encoding="utf-8") as fh:
        return [int(x) for x in fh.read().split()]


@pytest.mark.parametrize("features", [("base",)])
def test_pid_ns_mode_killed_master_takes_its_workers(
        scratch: str, account: Account, sendmail_binary: str, launcher_binary: str,
        features: tuple[str, ...]) -> None:
    """--pid-ns: the master is PID 1 of its own PID namespace, so SIGKILL to it ends
    every worker; the launcher exits with the master's status."""
    _, jail, mounts, server = prepare(scratch, account, features, "127.0.0.1:25",
                                      sendmail_binary)
    conf = fpm_conf(scratch, account, jail, "pjt")
    fpm = [layout.FPM_BINARY, "--nodaemonize", "--fpm-config", conf]
    argv = [launcher_binary, "--pool", "pjt", "--jail", jail, "--pid-ns",
            "--mounts", mounts, "--", *fpm]
    try:
        with process(argv, stderr=subprocess.PIPE) as proc:
            wait_for(lambda: os.path.exists(f"{scratch}/pjt.sock") or proc.poll() is not None,
                     20, "FPM socket")
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else b""
            (master,) = _children(proc.pid)
            with open(f"/proc/{master}/status", encoding="utf-8") as fh:
                nspid = next(x for x in fh if x.startswith("NSpid:")).split()
            assert nspid[-1] == "1"                         # init of its PID namespace
            # FPM binds the socket before it forks its workers (CI saw none at once)
            wait_for(lambda: bool(_children(master)), 10, "FPM's workers")
            workers = _children(master)
            os.kill(master, signal.SIGKILL)
            assert proc.wait(timeout=20) == 128 + signal.SIGKILL
            wait_for(lambda: not any(os.path.exists(f"/proc/{w}") for w in workers), 10,
                     "workers to go")
        remove_jail(jail)
    finally:
        if server.sock is not None:
            server.sock.close()


def _launcher_rss_pss(pid: int) -> tuple[int, int]:
    text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    values = {line.split(":")[0]: int(line.split()[1]) for line in text.splitlines()[1:]}
    return values["Rss"], values["Pss"]


@pytest.mark.parametrize("features", [("base",)])
def test_socket_activation_sleeps_wakes_and_loses_nothing(
        scratch: str, account: Account, sendmail_binary: str, launcher_binary: str,
        features: tuple[str, ...]) -> None:
    """--socket: the launcher binds the socket root:GROUP 0660 and starts no master; the
    first request starts one (PID 1 of its namespace, in the jail) and is answered; an
    idle master is stopped and the socket stays, requests sent while it stops and
    while it sleeps are all answered; USR2 asleep is harmless; QUIT ends the launcher
    and removes the socket."""
    _, jail, mounts, server = prepare(scratch, account, features, "127.0.0.1:25",
                                      sendmail_binary)
    conf = fpm_conf(scratch, account, jail, "pjt",
                    ("pm = ondemand", "pm.max_children = 2", "pm.process_idle_timeout = 1s"))
    sock = f"{scratch}/pjt.sock"
    argv = [launcher_binary, "--pool", "pjt", "--jail", jail, "--pid-ns", "--mounts", mounts,
            "--socket", sock, "--socket-group", account.group, "--socket-mode", "0660",
            "--backlog", "16", "--idle-timeout", "1", "--",
            layout.FPM_BINARY, "--nodaemonize", "--fpm-config", conf, "-d", "opcache.enable=0"]
    home = f"{scratch}/srv/t"
    write(f"{home}/pid.php", "<?php echo getmypid();", 0o644)
    try:
        with process(argv, stderr=subprocess.PIPE) as proc:
            wait_for(lambda: os.path.exists(sock) or proc.poll() is not None, 20, "the socket")
            st = os.stat(sock)
            assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o660
            assert (st.st_uid, st.st_gid) == (0, grp.getgrnam(account.group).gr_gid)
            assert _children(proc.pid) == []                       # asleep: no master
            assert _launcher_rss_pss(proc.pid)[1] < 1024            # kB
            os.kill(proc.pid, signal.SIGUSR2)                        # nothing to reload
            first = run_php(sock, f"{home}/pid.php", timeout=30)
            assert first.http()[0] == 200
            (master,) = _children(proc.pid)
            assert os.readlink(f"/proc/{master}/exe") == layout.FPM_BINARY
            # idle: workers go after 1 s, the master 1 s later; the socket stays
            wait_for(lambda: _children(proc.pid) == [], 20, "the master to sleep")
            assert os.path.exists(sock) and proc.poll() is None
            # a burst straight into the sleeping socket: every request answered
            results: list[int] = []

            def one() -> None:
                results.append(run_php(sock, f"{home}/pid.php", timeout=30).http()[0])

            threads = [threading.Thread(target=one) for _ in range(8)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert results == [200] * 8
            assert len(_children(proc.pid)) == 1
            # requests spaced across the sleep (worker gone after 1 s, master after about
            # 2-3 s): one lands while the master stops; each is answered
            for pause in (1.8, 2.1, 2.4, 2.7, 3.0, 3.3):
                time.sleep(pause)
                assert run_php(sock, f"{home}/pid.php", timeout=30).http()[0] == 200, pause
            os.kill(proc.pid, signal.SIGQUIT)
            assert proc.wait(timeout=20) == 0
            assert not os.path.exists(sock)
        remove_jail(jail)
    finally:
        if server.sock is not None:
            server.sock.close()
