"""Which files and directories of a tree were opened while something ran: an inotify
watch (IN_OPEN) on every directory of the tree. apply's staged Apache test uses it to
learn whether apache2 read a live file the plan is about to change (host/staging.py).
A file opened through a symlink from elsewhere counts: the event comes from the
directory that holds the file itself."""

from __future__ import annotations

import contextlib
import ctypes
import os
import struct
from collections.abc import Iterator

IN_OPEN = 0x00000020
IN_Q_OVERFLOW = 0x00004000
IN_NONBLOCK = os.O_NONBLOCK
IN_CLOEXEC = os.O_CLOEXEC
_EVENT = struct.Struct("iIII")      # wd, mask, cookie, len (then len bytes of name)


class Opens:
    """`paths`: what was opened below the tree while the watch ran (directories by
    their own path), or None when that is not known (no inotify here, too many
    events for the kernel's queue)."""

    def __init__(self) -> None:
        self.paths: set[str] | None = None


def _libc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.inotify_init1.argtypes = [ctypes.c_int]
        libc.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
        return libc
    except (OSError, AttributeError):
        return None


class _Unknown(Exception):
    """The tree cannot be watched whole."""


def _fail(err: OSError) -> None:
    raise _Unknown(str(err))


def _directories(top: str) -> list[str]:
    """Every directory below top, and each outside it that holds a file a link in the
    tree leads to (that file is read under its own directory's name). _Unknown for a
    directory that cannot be listed, or a link to a directory outside the tree (not
    followed)."""
    found: list[str] = []
    outside: set[str] = set()
    for here, _subdirs, _files in os.walk(top, onerror=_fail):   # links to dirs not entered
        found.append(here)
        for entry in os.scandir(here):
            if not entry.is_symlink():
                continue
            real = os.path.realpath(entry.path)
            if real == top or real.startswith(top + "/"):
                continue
            if os.path.isdir(real):
                raise _Unknown(f"{entry.path} leads to the directory {real}")
            outside.add(os.path.dirname(real))
    return [*found, *sorted(outside)]


def _watch_all(libc: ctypes.CDLL, fd: int, top: str) -> dict[int, str] | None:
    dirs: dict[int, str] = {}
    try:    # listed first: the walk's own opens come before any watch
        listed = _directories(top)
    except (_Unknown, OSError):
        return None
    for here in listed:
        wd = libc.inotify_add_watch(fd, os.fsencode(here), IN_OPEN)
        if wd < 0:
            return None
        dirs[wd] = here
    return dirs


def _drain(fd: int, dirs: dict[int, str]) -> set[str] | None:
    seen: set[str] = set()
    while True:
        try:
            data = os.read(fd, 1 << 16)
        except BlockingIOError:
            return seen
        except OSError:
            return None
        at = 0
        while at + _EVENT.size <= len(data):
            wd, mask, _cookie, size = _EVENT.unpack_from(data, at)
            name = data[at + _EVENT.size:at + _EVENT.size + size].rstrip(b"\0")
            at += _EVENT.size + size
            if mask & IN_Q_OVERFLOW or wd not in dirs:
                return None
            seen.add(os.path.join(dirs[wd], os.fsdecode(name)) if name else dirs[wd])


@contextlib.contextmanager
def watch(top: str) -> Iterator[Opens]:
    """Watch every directory below `top` (a real path), and those outside that hold
    files its links lead to, while the block runs; the answer is in the yielded Opens
    once the block has ended."""
    opens = Opens()
    libc = _libc()
    fd = libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC) if libc is not None else -1
    if libc is None or fd < 0:
        yield opens
        return
    try:
        dirs = _watch_all(libc, fd, top)
        yield opens
        if dirs is not None:
            opens.paths = _drain(fd, dirs)
    finally:
        os.close(fd)
