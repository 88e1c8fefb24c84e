"""The real host behind closure.HostView: thin, cached reads. Parsing stays in the
pure modules (closure.parse_ldd, closure.parse_shebang)."""

from __future__ import annotations

import hashlib
import os
import socket
import stat
from collections.abc import Callable

from phphost import layout, safefs
from phphost.errors import FactError, PlanError
from phphost.jail.closure import HostKind, UntrustedProgram, resolve_chain
from phphost.runner import run


class RealHostView:
    """Reads facts from this host. Cached: one instance serves many pools (the
    closure of /bin/dash or the digest of zoneinfo files are computed once)."""

    def __init__(self, etc: str = "/etc") -> None:
        self._passwd = os.path.join(etc, "passwd")
        self._group = os.path.join(etc, "group")
        self._kinds: dict[str, HostKind | None] = {}
        self._links: dict[str, str | None] = {}
        self._dirs: dict[str, tuple[str, ...]] = {}
        self._ldd: dict[str, str] = {}
        self._digests: dict[str, str] = {}
        self._trust: dict[str, str | None] = {}

    def kind(self, path: str) -> HostKind | None:
        if path not in self._kinds:
            self._kinds[path] = _kind(path)
        return self._kinds[path]

    def readlink(self, path: str) -> str | None:
        if path not in self._links:
            self._links[path] = _readlink(path)
        return self._links[path]

    def listdir(self, path: str) -> tuple[str, ...]:
        if path not in self._dirs:
            self._dirs[path] = tuple(sorted(os.listdir(path)))
        return self._dirs[path]

    def head(self, path: str) -> bytes:
        """The first bytes of a trusted file, read from a descriptor opened without
        following symlinks (UntrustedProgram for anything else)."""
        real = self._trusted_real(path)
        with safefs.parent(real) as (pfd, name, _trusted):
            fd = os.open(name, safefs.FILE_FLAGS, dir_fd=pfd)
        with os.fdopen(fd, "rb") as fh:
            problem = _file_problem(real, os.fstat(fh.fileno()))
            if problem is not None:
                raise UntrustedProgram(path, problem)
            return fh.read(256)

    def ldd(self, path: str) -> str:
        """`ldd` runs the dynamic loader on the file: only ever on a trusted one
        (nobody but root can swap it between the check and the run)."""
        real = self._trusted_real(path)
        if real not in self._ldd:
            proc = run([layout.LDD, "--", real], check=False, timeout=30)
            self._ldd[real] = proc.stdout + proc.stderr
        return self._ldd[real]

    def untrusted(self, path: str) -> str | None:
        if path not in self._trust:
            self._trust[path] = _untrusted(path, self.readlink)
        return self._trust[path]

    def _trusted_real(self, path: str) -> str:
        problem = self.untrusted(path)
        if problem is not None:
            raise UntrustedProgram(path, problem)
        return resolve_chain(path, self.readlink).real

    def digest(self, path: str) -> str:
        if path not in self._digests:
            self._digests[path] = _sha256(path)
        return self._digests[path]

    def executable(self, path: str) -> bool:
        return bool(os.stat(path).st_mode & 0o111)

    def passwd_entry(self, user: str) -> str | None:
        return _entry(self._passwd, user)

    def group_entry(self, group: str) -> str | None:
        return _entry(self._group, group)

    def hostname(self) -> str:
        return socket.gethostname() or "localhost"


def _kind(path: str) -> HostKind | None:
    try:
        st = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    if stat.S_ISLNK(st.st_mode):
        return "symlink"
    if stat.S_ISDIR(st.st_mode):
        return "dir"
    return "file" if stat.S_ISREG(st.st_mode) else "other"


def _untrusted(path: str, readlink: Callable[[str], str | None]) -> str | None:
    """Why root should not read path (None: it may). Every symlink on the way and
    the file itself are checked by descriptor walks from / (safefs: O_NOFOLLOW, a
    symlink is followed only when root owns it and its directory is trusted)."""
    try:
        chain = resolve_chain(path, readlink)
        for link, _target in chain.links:
            problem = _check_at(link, want_link=True)
            if problem is not None:
                return problem
        return _check_at(chain.real, want_link=False)
    except FileNotFoundError:
        return f"{path} does not exist"
    except (safefs.UnsafePath, PlanError) as err:
        return str(err).split(". ", 1)[0]
    except OSError as err:
        return f"cannot inspect {path}: {err.strerror or err}"


def _check_at(path: str, *, want_link: bool) -> str | None:
    with safefs.parent(path) as (pfd, name, trusted):
        if not trusted:
            return (f"a directory above {path} is not root's or is group/world-writable "
                    f"({_first_untrusted_dir(path)})")
        st = os.stat(name, dir_fd=pfd, follow_symlinks=False)
    if want_link:
        if st.st_uid != 0:
            return f"the symlink {path} is owned by uid {st.st_uid}, not root"
        return None
    return _file_problem(path, st)


def _file_problem(path: str, st: os.stat_result) -> str | None:
    if not stat.S_ISREG(st.st_mode):
        return f"{path} is not a regular file"
    if st.st_uid != 0:
        return f"{path} is owned by uid {st.st_uid}, not root"
    if st.st_mode & 0o022:
        return f"{path} is group/world-writable (mode {stat.S_IMODE(st.st_mode):04o})"
    return None


def _first_untrusted_dir(path: str) -> str:
    """For the message: the first directory on path that root does not solely control."""
    done = "/"
    for part in [p for p in path.split("/") if p][:-1]:
        done = os.path.join(done, part)
        try:
            st = os.lstat(done)
        except OSError:
            break
        if not safefs.trusted(st):
            return (f"{done} is owned by uid {st.st_uid}, mode "
                    f"{stat.S_IMODE(st.st_mode):04o}")
    return "changed while phphost looked"


def _readlink(path: str) -> str | None:
    try:
        return os.readlink(path)
    except OSError:
        return None


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _entry(path: str, name: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as fh:
            lines = fh.read().splitlines()
    except OSError as err:
        raise FactError(f"cannot read {path}: {err}") from err
    return next((line for line in lines if line.split(":", 1)[0] == name), None)
