"""Atomic file operations: temp file beside the target, fsync, os.replace."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile

from phphost import safefs


def read_text(path: str) -> str | None:
    """File content, or None when the file does not exist."""
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read()
    except FileNotFoundError:
        return None


def read_mountinfo() -> str:
    """This process's /proc/self/mountinfo (cgroup and jail facts read it)."""
    with open("/proc/self/mountinfo", encoding="utf-8") as fh:
        return fh.read()


def atomic_write(path: str, content: str | bytes, mode: int = 0o644, uid: int = 0,
                 gid: int = 0) -> None:
    """Write content (text is UTF-8) to path so that readers see either the old or the
    new file."""
    directory = os.path.dirname(path)
    os.makedirs(directory, exist_ok=True)
    safefs.require_trusted_dir(directory)
    fd, tmp = tempfile.mkstemp(prefix=".phphost-", dir=directory)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(content.encode("utf-8") if isinstance(content, str) else content)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.chown(tmp, uid, gid)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(directory)


def fsync_dir(directory: str) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sha256_file(path: str) -> str:
    """The hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 16), b""):
            h.update(chunk)
    return h.hexdigest()


def remove(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def atomic_symlink(link: str, target: str) -> None:
    safefs.require_trusted_dir(os.path.dirname(link))
    tmp = f"{link}.phphost-tmp"
    remove(tmp)
    os.symlink(target, tmp)
    os.replace(tmp, link)
