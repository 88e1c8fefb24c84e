"""supervisord, FPM masters and apache2: start, reload, validate. Every master is
addressed by its own supervisor program name or pid, never by process name."""

from __future__ import annotations

import contextlib
import os
import re
import resource
import signal
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

from phphost import layout
from phphost.errors import FastCGIError, HostError, ValidationFailed
from phphost.facts.gather import (
    apache_parent,
    apache_running,
    pool_asleep,
    read_program,
    supervisord_running,
)
from phphost.fastcgi.status import fpm_ping, fpm_status
from phphost.host import priority, supervisord
from phphost.runner import run

SUPERVISORCTL = ("supervisorctl", "-c", layout.SUPERVISOR_MAIN_CONF)


def supervisorctl(*args: str, check: bool = True) -> str:
    proc = run([*SUPERVISORCTL, *args], check=False)
    out = proc.stdout + proc.stderr
    if check and proc.returncode != 0 and "ERROR" in out:
        raise HostError(f"supervisorctl {' '.join(args)} failed: {out.strip()}")
    return out


def _daemon(argv: list[str]) -> None:
    """Run a command that leaves a daemon behind (supervisord, apache2) at the cgroup
    and niceness phphost started with, never planning's (host/priority.py)."""
    with priority.normal():
        run(argv)


def ensure_supervisord() -> None:
    if supervisord_running():
        return
    os.makedirs(layout.SUPERVISOR_LOG_DIR, exist_ok=True)
    _daemon(["supervisord", "-c", layout.SUPERVISOR_MAIN_CONF])
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if supervisord_running():
            return
        time.sleep(0.2)
    raise HostError(f"supervisord did not come up within 15s: see {layout.SUPERVISOR_LOG_DIR}/")


# stopping many masters together: the longest stopwaitsecs (process_control_timeout
# + 5 s, render/supervisor.py) plus a margin for supervisord to reap them all
STOP_TIMEOUT = 120.0


def update_programs(names: list[str]) -> None:
    """Make supervisord take new, changed and removed program files of these names:
    changed and removed ones are stopped together, not one after another."""
    supervisord.update(names, STOP_TIMEOUT)


def start_programs(names: list[str]) -> set[str]:
    """Ask supervisord to start these programs at once (wait_master waits for each);
    returns those that were already started."""
    return supervisord.start(names) if names else set()


def stop_programs(names: list[str]) -> None:
    """Stop these programs together and wait until all have stopped."""
    if names:
        supervisord.stop(names, STOP_TIMEOUT)


def ensure_running(names: list[str]) -> list[str]:
    """After a rollback: every one of these programs that supervisord has (its file
    is back) and that is not up is started again; a rollback never leaves a pool
    stopped. Returns the programs it started."""
    now = supervisord.states()
    down = [n for n in names if n in now and now[n] not in supervisord.UP]
    start_programs(down)
    return down


def start_program(name: str) -> None:
    start_programs([name])


def restart_program(name: str) -> None:
    out = supervisorctl("restart", name, check=False)
    if "ERROR" in out:
        raise HostError(f"could not restart {name}: {out.strip()}. See {layout.LOG_DIR}/")


def stop_program(name: str) -> None:
    stop_programs([name])


def fpm_test(pool: str) -> None:
    proc = run([layout.FPM_BINARY, "-t", "--fpm-config", layout.fpm_conf(pool)], check=False)
    if proc.returncode != 0:
        raise ValidationFailed(
            f"php-fpm -t rejected {layout.fpm_conf(pool)} (pool {pool!r}):\n"
            f"{(proc.stderr or proc.stdout).strip()}\nFix the pool's settings in the spec"
        )


def master_start_time(socket: str) -> int | None:
    try:
        return fpm_status(socket, timeout=2.0).start_time
    except FastCGIError:
        return None


def reload_master(pool: str, socket: str, tested: bool = False) -> None:
    """php-fpm -t (unless apply just tested this very config), then SIGUSR2 to this
    master alone (over supervisord's socket, by program name); wait until it answers
    anew. A socket-activated pool asleep has no master to reload (and asking it would
    wake it): the next master reads the new config."""
    if not tested:
        fpm_test(pool)
    prog = read_program(layout.program_name(pool))
    if prog is not None and prog.state == "RUNNING" and pool_asleep(prog.pid):
        return
    before = master_start_time(socket)
    if before is not None:
        # FPM's start time has a resolution of one second: a reload within the second
        # the master (re)started would leave it unchanged, and the wait below would
        # not see the reload happen. Signal from the next second on.
        time.sleep(max(0.0, before + 1.05 - time.time()))
    supervisord.signal([layout.program_name(pool)], "USR2")
    wait_master(pool, socket, not_start_time=before)


def wait_master(pool: str, socket: str, not_start_time: int | None = None,
                timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if fpm_ping(socket):
                started = master_start_time(socket)
                if not_start_time is None or (started is not None and started != not_start_time):
                    return
        except FastCGIError:
            pass
        time.sleep(0.1)
    raise HostError(
        f"FPM master of pool {pool!r} did not answer on {socket} within {timeout:.0f}s. "
        f"See {layout.fpm_log(pool)} and `supervisorctl status {layout.program_name(pool)}`"
    )


# masters apply wakes at once to see them come up (each start is mostly CPU: PHP's
# startup of its extensions)
MASTER_WAKES_AT_ONCE = max(2, 2 * (os.cpu_count() or 1))
# masters that answered are put back to sleep this many at a time, in one call to
# supervisord: one call each cost supervisord ~4.5 ms at 1,000 programs (its loop walks
# every program per event), a quarter of the wake's cost there (docs/scale.md)
SLEEP_BATCH = 8


def wake_masters(pools: list[tuple[str, str]]) -> None:
    """For each (pool, socket) apply started: wait until its master answers on its
    socket (which starts the master of a socket-activated pool and forks it a worker),
    then send its program SIGWINCH: the launcher of an activated pool stops that master
    gracefully and sleeps again at once, instead of after idle_timeout (other launchers
    ignore it). So a master that cannot start (a mount source gone, its chroot, the
    network policy, FPM itself) still fails the apply, without leaving every new pool
    awake: at most MASTER_WAKES_AT_ONCE wait to answer, and fewer than SLEEP_BATCH +
    MASTER_WAKES_AT_ONCE have answered and wait for their SIGWINCH. On a failure the
    waits not begun are cancelled, those under way finish, the masters that answered
    are put to sleep, and the first failure in the given order is raised."""
    workers = ThreadPoolExecutor(max_workers=MASTER_WAKES_AT_ONCE)
    futures = [workers.submit(wait_master, pool, sock) for pool, sock in pools]
    program = {f: layout.program_name(pool) for f, (pool, _sock) in zip(futures, pools,
                                                                         strict=True)}
    asleep: set[Future[None]] = set()
    awake: list[Future[None]] = []
    try:
        pending: set[Future[None]] = set(futures)
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            awake += [f for f in done if _answered(f)]
            if any(not _answered(f) for f in done):
                for f in pending:
                    f.cancel()
            if len(awake) >= SLEEP_BATCH or not pending:
                supervisord.signal([program[f] for f in awake], "WINCH")
                asleep.update(awake)
                awake = []
        for f in futures:
            if not f.cancelled():
                f.result()
    finally:
        workers.shutdown(wait=True, cancel_futures=True)
        # after a failure (or an interrupt), the masters that answered meanwhile; the
        # error under way is the one to report, not this call's
        late = [program[f] for f in futures if _answered(f) and f not in asleep]
        if late:
            with contextlib.suppress(Exception):
                supervisord.signal(late, "WINCH")


def _answered(f: Future[None]) -> bool:
    return f.done() and not f.cancelled() and f.exception() is None


def apache_configtest() -> None:
    proc = run(["apache2ctl", "configtest"], check=False)
    if proc.returncode != 0:
        raise ValidationFailed(
            f"apache2ctl configtest rejected the configuration:\n{proc.stderr.strip()}\n"
            "Nothing was changed. Fix the site's settings in the spec (TLS paths, names)"
        )


def apache_reload(restart: bool, tested: bool = False) -> None:
    """tested: the live configuration passed configtest since it was last written
    (apply's stage does it; each test parses every site: 0.13 s at 1,000)."""
    if not tested:
        apache_configtest()
    mark = _error_log_size()
    if not apache_running():
        _daemon(["apache2ctl", "start"])
    elif restart:
        run(["apache2ctl", "stop"])
        _wait_apache_stopped()
        _daemon(["apache2ctl", "start"])
    else:
        _graceful()
    _wait_apache_started()
    _check_apache_survives(mark)


APACHE_ERROR_LOG = f"{layout.APACHE_LOG_DIR}/error.log"    # Debian's ErrorLog
# AH00489, logged by the MPM itself after post_config: the line's prefix (time, module,
# pid, code) comes before any text a client can put in a line (`[client ...]` first)
APACHE_READY = re.compile(rb"^\[[^\]\n]*\] \[mpm_[a-z]+:notice\] \[pid \d+(?::tid \d+)?\] "
                          rb"AH00489: ", re.MULTILINE)


def _graceful() -> None:
    """SIGUSR1 to apache2's parent, by the pid in its pid file: what `apache2ctl
    graceful` ends with, without its own `apache2 -t` and the parse `-k graceful`
    makes to find the pid file (the config was tested just before; at 1,000 sites
    each parse is 0.13 s)."""
    pid = apache_parent()
    if pid is None:
        _daemon(["apache2ctl", "graceful"])     # starts apache2 when it is not running
        return
    try:
        os.kill(pid, signal.SIGUSR1)
    except ProcessLookupError:
        _daemon(["apache2ctl", "graceful"])


def _error_log_size() -> int | None:
    try:
        fd = os.open(APACHE_ERROR_LOG, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        return os.fstat(fd).st_size
    finally:
        os.close(fd)


def _logged_ready(mark: int | None) -> bool:
    """apache2 wrote AH00489 to its error log since `mark` (the size before the
    reload): its (re)start got past loading the configuration, certificates and keys
    included. Reads at most 1 MiB of new lines."""
    if mark is None:
        return False
    try:
        fd = os.open(APACHE_ERROR_LOG, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        start = mark if os.fstat(fd).st_size >= mark else 0     # rotated meanwhile
        return APACHE_READY.search(os.pread(fd, 1 << 20, start)) is not None
    finally:
        os.close(fd)


def _check_apache_survives(mark: int | None, seconds: float = 1.0) -> None:
    """A (graceful) restart that fails after configtest (say, a key apache2 cannot
    load) makes apache2 exit a moment later: watch for that, for `seconds` or until
    apache2 logs that it resumed normal operations (AH00489: its configuration,
    certificates and keys are loaded by then)."""
    started = time.monotonic()
    while time.monotonic() < started + seconds:
        if not apache_running():
            raise HostError(f"apache2 exited after reloading: see {APACHE_ERROR_LOG}")
        if _logged_ready(mark):
            return
        time.sleep(0.02)


def _wait_apache_stopped(timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while apache_running() and time.monotonic() < deadline:
        time.sleep(0.1)


def _wait_apache_started(timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not apache_running():
        if time.monotonic() > deadline:
            raise HostError("apache2 did not start: see /var/log/apache2/error.log")
        time.sleep(0.1)


def _descendants(pid: int) -> list[int]:
    """pid and every process below it (from /proc/PID/task/TID/children)."""
    out, todo = [], [pid]
    while todo:
        cur = todo.pop()
        out.append(cur)
        try:
            tasks = os.listdir(f"/proc/{cur}/task")
        except OSError:
            continue
        for tid in tasks:
            try:
                with open(f"/proc/{cur}/task/{tid}/children", encoding="ascii") as fh:
                    todo += [int(c) for c in fh.read().split()]
            except (OSError, ValueError):
                continue
    return out


def set_nproc(pool: str, nproc: int) -> tuple[int | None, str]:
    """RLIMIT_NPROC on the pool's running launcher, master and workers (new workers
    inherit the master's). Returns (the launcher's old limit or None when it is not
    running, a note when the new limit could not be set live)."""
    prog = read_program(layout.program_name(pool))
    if prog is None or not prog.pid:
        return None, ""
    old: int | None = None
    note = ""
    for pid in _descendants(prog.pid):
        try:
            before = resource.prlimit(pid, resource.RLIMIT_NPROC)
            resource.prlimit(pid, resource.RLIMIT_NPROC, (nproc, nproc))
        except ProcessLookupError:
            continue        # exited meanwhile
        except PermissionError:
            # raising a hard limit needs CAP_SYS_RESOURCE, which some containers'
            # root lacks: the launcher sets the new one when the master next starts
            note = (f"RLIMIT_NPROC {nproc} of pool {pool} takes effect when its master "
                    "restarts (raising a running process's hard limit needs CAP_SYS_RESOURCE)")
            break
        if pid == prog.pid:
            old = before[1]
    return old, note
