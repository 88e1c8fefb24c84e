"""The FPM master launcher: private mount namespace, jail mounts, exec. Standalone
(standard library only), so it can also be installed as a single file.

    python -m phphost.launcher.launch --pool NAME --jail ROOT [--pid-ns] \
        [--cgroup phphost/NAME] [--limits FILE | --nproc N] [--network-policy FILE] \
        [--mounts /etc/phphost/fpm/NAME.mounts.json] [--mount SRC:DST:ro|rw ...] \
        -- /usr/sbin/php-fpm8.2 --nodaemonize --fpm-config ... [-d k=v ...]

supervisord runs this; it unshares an IPC namespace (SysV IPC and POSIX message
queues private to the master and its workers) and a mount namespace, makes every mount in it
private (nothing propagates back to the host), bind-mounts each source onto its
target inside the jail (nosuid, nodev; read-only ones remounted MS_RDONLY, writable
ones noexec; "proc" mounts a read-only procfs with hidepid=invisible; "tmpfs" a
private tmpfs of the given size, noexec, nosuid, nodev, mode 1777), then execs the
command, so the supervised pid is the FPM master. The host's mount table never shows
a jail mount, so removing or rebuilding a jail on the host can never reach into what
a mount points at.

With --cgroup the launcher first moves itself into phphost/NAME in every mounted
cgroup hierarchy where apply created it (so the master and every worker are counted
and limited there), and with --limits (a JSON file {"pool": NAME, "nproc": N}) or
--nproc sets RLIMIT_NPROC: the master runs as root and
is exempt, its workers run as the pool user and are not.

With --pid-ns the master instead becomes PID 1 of a new PID namespace (a killed
master takes every worker with it) and the launcher stays as the supervised process,
forwarding signals to the master and exiting with its status.

Sources and targets are opened component by component with O_NOFOLLOW and mounted
through /proc/self/fd: a symlink planted in a tenant's home cannot redirect a bind.

With --network-policy FILE (phphost renders it for every pool), before any of that the
pool's network policy (docs/network.md) must be in the kernel: when table inet phphost
has no chain for this pool (after a reboot the kernel has no table at all), the
launcher loads FILE (/etc/phphost/nftables.conf) with `nft -f`; if the pool's chain is
still missing, the master does not start. Without it (a launcher run by hand, the
jail tests) no policy is asked for.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import posixpath
import re
import resource
import signal
import stat
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

CLONE_NEWNS = 0x00020000
MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REMOUNT = 0x20
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 0x40000
CLONE_NEWPID = 0x20000000
CLONE_NEWIPC = 0x08000000
PR_SET_PDEATHSIG = 1
NFT = "/usr/sbin/nft"                       # layout.NFT_BINARY
NFT_CONF = "/etc/phphost/nftables.conf"     # layout.NFT_CONF
NFT_TABLE = ("inet", "phphost")             # layout.NFT_TABLE
FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2,
             signal.SIGHUP)

_PATH_FLAGS = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC


MountType = Literal["bind", "proc", "tmpfs"]
TMPFS_MODE = "1777"       # the pool user is the only user in its jail: a sticky /tmp


@dataclass(frozen=True)
class MountSpec:
    source: str          # host path ("proc" for procfs, "tmpfs" for a tmpfs)
    target: str          # path inside the jail
    writable: bool = False
    type: MountType = "bind"
    size: int = 0        # tmpfs: its size in bytes (> 0)


class LaunchError(Exception):
    """A mount cannot be set up; the master must not start."""


@dataclass(frozen=True)
class LaunchPlan:
    pool: str
    jail: str
    mounts: tuple[MountSpec, ...]
    command: tuple[str, ...]
    pid_ns: bool = False
    cgroup: str | None = None   # e.g. "phphost/blog": joined in every hierarchy that has it
    nproc: int | None = None    # RLIMIT_NPROC for the workers (root's master is exempt)
    network_policy: str | None = None   # nftables file that must hold the pool's chain


# ---------------------------------------------------------------- pure


def parse_mounts_json(text: str, where: str = "mount file") -> tuple[str, tuple[MountSpec, ...]]:
    """Pure: (pool, mounts) from a mount file; ValueError naming what is wrong."""
    try:
        data = json.loads(text)
    except ValueError as err:
        raise ValueError(f"{where} is not JSON: {err}") from err
    if not isinstance(data, dict) or not isinstance(data.get("pool"), str) \
            or not isinstance(data.get("mounts"), list):
        raise ValueError(f"{where} needs a \"pool\" string and a \"mounts\" list")
    mounts = tuple(_mount_item(item, f"{where}: mounts[{i}]")
                   for i, item in enumerate(data["mounts"]))
    return data["pool"], order(mounts)


def _mount_item(item: Any, where: str) -> MountSpec:
    if not isinstance(item, dict):
        raise ValueError(f"{where} is not an object")
    kind, source, target = item.get("type", "bind"), item.get("source"), item.get("target")
    writable, size = item.get("writable", False), item.get("size", 0)
    if kind not in ("bind", "proc", "tmpfs") or not isinstance(writable, bool):
        raise ValueError(f"{where}: type must be bind, proc or tmpfs, writable true or false")
    if not isinstance(source, str) or not isinstance(target, str):
        raise ValueError(f"{where}: source and target must be strings")
    if kind == "tmpfs" and (not isinstance(size, int) or isinstance(size, bool) or size <= 0):
        raise ValueError(f"{where}: a tmpfs needs \"size\", a number of bytes > 0")
    return checked(MountSpec(source, target, writable, kind, size if kind == "tmpfs" else 0),
                   where)


def checked(m: MountSpec, where: str) -> MountSpec:
    """Pure: the mount with normalised paths; ValueError when a path is relative,
    has "..", or the target is the jail root."""
    for name, path in (("target", m.target), *((("source", m.source),) if m.type == "bind"
                                               else ())):
        if not path.startswith("/") or ".." in path.split("/"):
            raise ValueError(f"{where}: {name} {path!r} must be absolute, without '..'")
    target = posixpath.normpath(m.target)
    if target == "/":
        raise ValueError(f"{where}: cannot mount over the jail root")
    source = posixpath.normpath(m.source) if m.type == "bind" else m.type
    return MountSpec(source, target, m.writable, m.type, m.size)


def parse_mount_arg(text: str) -> MountSpec:
    """Pure: `SRC:DST:ro|rw` (SRC "proc" mounts a procfs) from the command line."""
    parts = text.split(":")
    if len(parts) != 3 or parts[2] not in ("ro", "rw"):
        raise ValueError(f"--mount {text!r}: expected SRC:DST:ro or SRC:DST:rw "
                         "(paths with ':' go in a mount file)")
    kind: MountType = "proc" if parts[0] == "proc" else "bind"
    return checked(MountSpec(parts[0], parts[1], parts[2] == "rw", kind), f"--mount {text}")


def order(mounts: tuple[MountSpec, ...]) -> tuple[MountSpec, ...]:
    """Pure: parents before children; a target given twice is an error."""
    targets = [m.target for m in mounts]
    dup = next((t for t in targets if targets.count(t) > 1), None)
    if dup is not None:
        raise ValueError(f"two mounts have the target {dup}")
    return tuple(sorted(mounts, key=lambda m: (m.target.count("/"), m.target)))


_CGROUP_RE = re.compile(r"^phphost/[a-z][a-z0-9_-]{0,30}$")


def launcher_argv(python: str, pool: str, jail: str, mounts_file: str,
                  command: Sequence[str], pid_ns: bool = False) -> list[str]:
    """Pure: the supervisord command of a jailed pool's master."""
    return [python, "-m", "phphost.launcher.launch", "--pool", pool, "--jail", jail,
            *(["--pid-ns"] if pid_ns else []), "--mounts", mounts_file, "--", *command]


def parse_args(argv: Sequence[str], read: Callable[[str], str] | None = None) -> LaunchPlan:
    """Pure given `read` (path -> text; default: read the file): the launch plan."""
    if "--" not in argv:
        raise LaunchError("usage: ... --pool NAME --jail ROOT [--mounts FILE] "
                          "[--mount SRC:DST:ro|rw] -- COMMAND ARGS")
    split = list(argv).index("--")
    opts, command = list(argv[:split]), tuple(argv[split + 1 :])
    values: dict[str, list[str]] = {"--pool": [], "--jail": [], "--mounts": [], "--mount": [],
                                    "--cgroup": [], "--nproc": [], "--limits": [],
                                    "--network-policy": []}
    pid_ns = "--pid-ns" in opts
    opts = [o for o in opts if o != "--pid-ns"]
    while opts:
        key = opts.pop(0)
        if key not in values or not opts:
            raise LaunchError(f"unknown option or missing value: {key}")
        values[key].append(opts.pop(0))
    if len(values["--pool"]) != 1 or len(values["--jail"]) != 1 or not command:
        raise LaunchError("--pool, --jail (once each) and a command after -- are required")
    pool, jail = values["--pool"][0], values["--jail"][0]
    if not jail.startswith("/") or not command[0].startswith("/"):
        raise LaunchError("the jail root and the command must be absolute paths")
    cgroup, nproc = _cgroup_nproc(values["--cgroup"], values["--nproc"])
    policies = values["--network-policy"]
    if len(policies) > 1 or any(not p.startswith("/") for p in policies):
        raise LaunchError("--network-policy is given at most once, as an absolute path")
    for path in values["--limits"]:
        nproc = parse_limits_json(read(path) if read is not None else _read(path), pool, path)
    try:
        mounts = [parse_mount_arg(m) for m in values["--mount"]]
        for path in values["--mounts"]:
            text = read(path) if read is not None else _read(path)
            owner, listed = parse_mounts_json(text, path)
            if owner != pool:
                raise LaunchError(f"{path} is the mount file of pool {owner!r}, not {pool!r}")
            mounts += listed
        return LaunchPlan(pool, jail, order(tuple(mounts)), command, pid_ns, cgroup, nproc,
                          policies[0] if policies else None)
    except ValueError as err:
        raise LaunchError(str(err)) from err


def _cgroup_nproc(cgroups: list[str], nprocs: list[str]) -> tuple[str | None, int | None]:
    if len(cgroups) > 1 or len(nprocs) > 1:
        raise LaunchError("--cgroup and --nproc are given at most once")
    if cgroups and not _CGROUP_RE.match(cgroups[0]):
        raise LaunchError(f"--cgroup {cgroups[0]!r}: expected phphost/POOL")
    if nprocs and not (nprocs[0].isdigit() and 0 < int(nprocs[0]) < 1 << 22):
        raise LaunchError(f"--nproc {nprocs[0]!r}: expected a number of processes")
    return (cgroups[0] if cgroups else None), (int(nprocs[0]) if nprocs else None)


def parse_limits_json(text: str, pool: str, where: str) -> int:
    """Pure: RLIMIT_NPROC from a limits file ({"pool": NAME, "nproc": N})."""
    try:
        data = json.loads(text)
    except ValueError as err:
        raise LaunchError(f"{where} is not JSON: {err}") from err
    if not isinstance(data, dict) or data.get("pool") != pool:
        raise LaunchError(f"{where} is not the limits file of pool {pool!r}")
    nproc = data.get("nproc")
    if not isinstance(nproc, int) or isinstance(nproc, bool) or not 0 < nproc < 1 << 22:
        raise LaunchError(f"{where}: \"nproc\" must be a number of processes")
    return nproc


def cgroup_mounts(mountinfo: str) -> list[str]:
    """Pure: mount points of cgroup (v1) and cgroup2 filesystems in a mountinfo text."""
    points = []
    for line in mountinfo.splitlines():
        left, sep, right = line.partition(" - ")
        fields, fstype = left.split(" "), right.split(" ")[0]
        if sep and len(fields) > 4 and fstype in ("cgroup", "cgroup2"):
            points.append(fields[4].replace("\\040", " "))
    return points


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read()
    except OSError as err:
        raise LaunchError(f"cannot read {path}: {err.strerror}") from err


def remount_flags(m: MountSpec) -> int:
    """Pure: flags of the MS_REMOUNT that follows a bind."""
    base = MS_REMOUNT | MS_BIND | MS_NOSUID | MS_NODEV
    return base | MS_NOEXEC if m.writable else base | MS_RDONLY


# ---------------------------------------------------------------- syscalls


_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong,
                        ctypes.c_void_p]
_libc.unshare.argtypes = [ctypes.c_int]
_libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong,
                        ctypes.c_ulong]


def _check(rc: int, what: str) -> None:
    if rc != 0:
        err = ctypes.get_errno()
        raise LaunchError(f"{what}: {os.strerror(err)}")


def _mount(source: str | None, target: str, fstype: str | None, flags: int,
           data: str | None, what: str) -> None:
    def enc(s: str | None) -> bytes | None:
        return s.encode() if s is not None else None
    _check(_libc.mount(enc(source), enc(target), enc(fstype), flags, enc(data)), what)


def private_ipc() -> None:
    """A new IPC namespace: SysV shared memory, semaphores, message queues and POSIX
    message queues of this master and its workers are invisible to every other pool
    (and theirs to it), and go away with the master."""
    _check(_libc.unshare(CLONE_NEWIPC), "unshare(CLONE_NEWIPC)")


def private_namespace() -> None:
    """A new mount namespace whose mounts never propagate to or from the host."""
    _check(_libc.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS) (are we root?)")
    _mount(None, "/", None, MS_REC | MS_PRIVATE, None, "making / private")


def open_nofollow(base: int, path: str, *, create: bool, want_dir: bool, shown: str) -> int:
    """O_PATH fd of `path` under directory fd `base`, no symlink followed anywhere.
    With create, missing directories (and a missing final file) are made, root's."""
    parts = [p for p in path.split("/") if p]
    fd = os.dup(base)
    try:
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            is_dir = want_dir or not last
            sub = _open_part(fd, part, create, is_dir, shown)
            os.close(fd)
            fd = sub
        return fd
    except BaseException:
        os.close(fd)
        raise


def _open_part(fd: int, part: str, create: bool, is_dir: bool, shown: str) -> int:
    try:
        sub = os.open(part, _PATH_FLAGS, dir_fd=fd)
    except FileNotFoundError:
        if not create:
            raise LaunchError(f"{shown} does not exist") from None
        if is_dir:
            os.mkdir(part, 0o755, dir_fd=fd)
            _fchmod_dir(fd, part, 0o755)
        else:
            os.close(os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                             | os.O_CLOEXEC, 0o444, dir_fd=fd))
        sub = os.open(part, _PATH_FLAGS, dir_fd=fd)
    mode = os.fstat(sub).st_mode
    ok = stat.S_ISDIR(mode) if is_dir else stat.S_ISREG(mode) or stat.S_ISDIR(mode)
    if not ok:
        os.close(sub)
        what = "a symlink" if stat.S_ISLNK(mode) else "not a directory"
        raise LaunchError(f"{shown}: {part!r} is {what}; mount sources and targets must be "
                          "real paths without symlinks")
    return sub


def _fchmod_dir(fd: int, name: str, mode: int) -> None:
    """chmod a directory we just made (mkdir is subject to supervisord's umask)."""
    sub = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
    try:
        os.fchmod(sub, mode)
    finally:
        os.close(sub)


def _fdpath(fd: int) -> str:
    return f"/proc/self/fd/{fd}"


def tmpfs_options(m: MountSpec) -> str:
    """Pure: the data of a tmpfs mount: bounded in bytes and inodes, sticky."""
    return f"size={m.size},nr_inodes={max(1024, m.size // 4096)},mode={TMPFS_MODE}"


def mount_one(m: MountSpec, jail_fd: int, slash_fd: int, inside_mount: bool) -> None:
    where = f"mount {m.source} -> {m.target}"
    if m.type == "tmpfs":
        tfd = open_nofollow(jail_fd, m.target, create=not inside_mount, want_dir=True,
                            shown=f"{where}: target")
        try:
            _mount("tmpfs", _fdpath(tfd), "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
                   tmpfs_options(m), where)
        finally:
            os.close(tfd)
        return
    if m.type == "proc":
        tfd = open_nofollow(jail_fd, m.target, create=not inside_mount, want_dir=True,
                            shown=f"{where}: target")
        try:
            _mount("proc", _fdpath(tfd), "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RDONLY,
                   "hidepid=invisible", where)
        finally:
            os.close(tfd)
        return
    sfd = open_nofollow(slash_fd, m.source, create=False, want_dir=False,
                        shown=f"{where}: source {m.source}")
    try:
        is_dir = stat.S_ISDIR(os.fstat(sfd).st_mode)
        tfd = open_nofollow(jail_fd, m.target, create=not inside_mount, want_dir=is_dir,
                            shown=f"{where}: target")
        try:
            _mount(_fdpath(sfd), _fdpath(tfd), None, MS_BIND, None, where)
        finally:
            os.close(tfd)
    finally:
        os.close(sfd)
    rfd = open_nofollow(jail_fd, m.target, create=False, want_dir=is_dir, shown=where)
    try:
        _mount(None, _fdpath(rfd), None, remount_flags(m), None, f"{where} (remount)")
    finally:
        os.close(rfd)


def join_cgroups(plan: LaunchPlan) -> list[str]:
    """Move this process into the pool's cgroup in every hierarchy where apply made it
    (before the master is forked: it and every worker inherit it), and set the
    workers' RLIMIT_NPROC. A cgroup that exists but refuses us stops the launch."""
    joined: list[str] = []
    if plan.cgroup is not None:
        with open("/proc/self/mountinfo", encoding="utf-8") as fh:
            points = cgroup_mounts(fh.read())
        for point in points:
            procs = f"{point}/{plan.cgroup}/cgroup.procs"
            if not os.path.isdir(f"{point}/{plan.cgroup}"):
                continue
            try:
                fd = os.open(procs, os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
                try:
                    os.write(fd, str(os.getpid()).encode())
                finally:
                    os.close(fd)
            except OSError as err:
                raise LaunchError(f"cannot join cgroup {point}/{plan.cgroup}: "
                                  f"{err.strerror}") from err
            joined.append(f"{point}/{plan.cgroup}")
    if plan.nproc is not None:
        resource.setrlimit(resource.RLIMIT_NPROC, (plan.nproc, plan.nproc))
    return joined


def set_up(plan: LaunchPlan) -> None:
    private_namespace()
    slash_fd = os.open("/", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        jail_fd = open_nofollow(slash_fd, plan.jail, create=False, want_dir=True,
                                shown=f"jail root {plan.jail}")
    except LaunchError as err:
        raise LaunchError(f"{err}; build the jail first (phphost apply)") from None
    try:
        done: list[str] = []
        for m in plan.mounts:
            inside = any(m.target.startswith(t.rstrip("/") + "/") for t in done)
            mount_one(m, jail_fd, slash_fd, inside)
            done.append(m.target)
    finally:
        os.close(jail_fd)
        os.close(slash_fd)


def _fail(pool: str, err: Exception) -> int:
    print(f"phphost-launch[{pool}]: {err}; the FPM master was not started", file=sys.stderr)
    return 1


def _exec(plan: LaunchPlan) -> int:
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execv(plan.command[0], list(plan.command))  # noqa: S606 - argv, no shell
    except OSError as err:
        print(f"phphost-launch[{plan.pool}]: cannot run {plan.command[0]}: {err.strerror}",
              file=sys.stderr)
    return 127


def run_in_pid_namespace(plan: LaunchPlan) -> int:
    """The master as PID 1 of a new PID namespace; we forward signals and wait.
    Nothing may fork before the child: the first child is the namespace's init."""
    _check(_libc.unshare(CLONE_NEWPID), "unshare(CLONE_NEWPID)")
    pid = os.fork()
    if pid == 0:
        code = 127
        try:
            _check(_libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "prctl")
            private_ipc()
            set_up(plan)
            code = _exec(plan)
        except (LaunchError, OSError) as err:
            code = _fail(plan.pool, err)
        finally:
            os._exit(code)

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


def _policy_has(pool: str) -> bool:
    proc = subprocess.run([NFT, "list", "table", *NFT_TABLE], capture_output=True,
                          text=True, timeout=60, check=False)
    return proc.returncode == 0 and any(line.split()[-2:] == ["jump", f"pool-{pool}"]
                                        for line in proc.stdout.splitlines())


def ensure_network_policy(pool: str, conf: str = NFT_CONF) -> None:
    """The pool's chain in phphost's nftables table, loading the rendered file when it
    is missing (the first master after a reboot). No file: phphost never rendered a
    policy here (nothing to enforce). LaunchError when the chain cannot be had."""
    if not os.path.exists(conf) or _policy_has(pool):
        return
    proc = subprocess.run([NFT, "-f", conf], capture_output=True, text=True, timeout=60,
                          check=False)
    if proc.returncode != 0 or not _policy_has(pool):
        why = proc.stderr.strip()[-500:] or f"it has no chain pool-{pool}"
        raise LaunchError(f"the network policy is not loaded and `nft -f {conf}` did not "
                          f"load it ({why}); run `phphost apply`")


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    pool = args[args.index("--pool") + 1] if "--pool" in args[:-1] else "?"
    try:
        plan = parse_args(args)
        if plan.network_policy is not None:
            ensure_network_policy(plan.pool, plan.network_policy)
        join_cgroups(plan)
        if plan.pid_ns:
            return run_in_pid_namespace(plan)
        private_ipc()
        set_up(plan)
    except (LaunchError, OSError) as err:
        return _fail(pool, err)
    return _exec(plan)


if __name__ == "__main__":
    raise SystemExit(main())
