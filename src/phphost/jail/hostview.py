"""The real host behind closure.HostView: thin, cached reads. Parsing stays in the
pure modules (closure.parse_ldd, closure.parse_shebang)."""

from __future__ import annotations

import hashlib
import os
import socket
import stat

from phphost.errors import FactError
from phphost.host.runner import run
from phphost.jail.closure import HostKind

LDD = "/usr/bin/ldd"


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
        with open(path, "rb") as fh:
            return fh.read(256)

    def ldd(self, path: str) -> str:
        if path not in self._ldd:
            proc = run([LDD, path], check=False, timeout=30)
            self._ldd[path] = proc.stdout + proc.stderr
        return self._ldd[path]

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
