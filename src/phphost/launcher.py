#!/usr/bin/python3
"""phphost's FPM master launcher. Standalone (stdlib only): phphost installs this
file as layout.LAUNCHER and supervisord runs it as

    launch [--mounts FILE] -- /usr/sbin/php-fpm8.2 --nodaemonize ...

It gives the master a private mount namespace (jail bind mounts live only there,
never on the host) and a private PID namespace in which the master is PID 1, so
that when the master dies, even by SIGKILL, the kernel ends every worker with it
and no orphan keeps the pool's socket. The launcher stays as the supervised
process: it forwards supervisord's signals (QUIT, TERM, USR2, ...) to the master
and exits with the master's status. If the launcher itself is killed, the master
gets SIGKILL (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import subprocess
import sys

CLONE_NEWNS = 0x00020000
CLONE_NEWPID = 0x20000000
PR_SET_PDEATHSIG = 1
FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2,
             signal.SIGHUP)

_libc = ctypes.CDLL(None, use_errno=True)


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def parse_args(argv: list[str]) -> tuple[str | None, list[str]]:
    """-> (mounts file or None, command). Pure."""
    if "--" not in argv:
        raise SystemExit("usage: launch [--mounts FILE] -- COMMAND ARGS...")
    split = argv.index("--")
    opts, command = argv[:split], argv[split + 1:]
    mounts = None
    if opts[:1] == ["--mounts"] and len(opts) == 2:
        mounts = opts[1]
    elif opts:
        raise SystemExit(f"launch: unknown options {opts}")
    if not command:
        raise SystemExit("launch: no command after --")
    return mounts, command


def load_mounts(path: str | None) -> list[dict[str, object]]:
    if path is None:
        return []
    with open(path, encoding="utf-8") as fh:
        data = json.load(fh)
    return list(data.get("mounts", []))


def bind_mounts(mounts: list[dict[str, object]]) -> None:
    """Bind each {source, target, writable} inside this (private) namespace."""
    for m in mounts:
        source, target = str(m["source"]), str(m["target"])
        if not os.path.isdir(source):
            raise SystemExit(f"launch: mount source {source} does not exist (target {target})")
        os.makedirs(target, exist_ok=True)
        subprocess.run(["mount", "--bind", source, target], check=True)
        opts = "remount,bind,nosuid,nodev" + ("" if m.get("writable") else ",ro")
        subprocess.run(["mount", "-o", opts, target], check=True)


def child(command: list[str], mounts: list[dict[str, object]]) -> None:
    """PID 1 of the new PID namespace: own mount namespace, mounts, exec FPM."""
    _check(_libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "prctl")
    _check(_libc.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
    subprocess.run(["mount", "--make-rprivate", "/"], check=True)
    bind_mounts(mounts)
    os.execv(command[0], command)  # noqa: S606 (argv, no shell)


def parent(pid: int) -> int:
    def forward(signum: int, _frame: object) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)

    for sig in FORWARDED:
        signal.signal(sig, forward)
    while True:
        _, status = os.waitpid(pid, 0)
        if os.WIFEXITED(status):
            return os.WEXITSTATUS(status)
        if os.WIFSIGNALED(status):
            return 128 + os.WTERMSIG(status)


def main(argv: list[str]) -> int:
    mounts_file, command = parse_args(argv)
    mounts = load_mounts(mounts_file)
    # Only the first fork enters the new PID namespace (and becomes its PID 1):
    # nothing may fork before it, or the namespace dies with that process.
    _check(_libc.unshare(CLONE_NEWPID), "unshare(CLONE_NEWPID)")
    pid = os.fork()
    if pid == 0:
        try:
            child(command, mounts)
        finally:
            os._exit(127)
    return parent(pid)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
