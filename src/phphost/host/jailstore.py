"""Content-addressed store of the read-only files jails share.

Each object is one root-owned, read-only file named by the sha256 of its content
(".x" appended when executable). Jails hard-link to it, so zoneinfo, libc or the CA
bundle take disk space once however many pools there are. The store must be on the
jails' filesystem (hard links cannot cross filesystems).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
import threading

from phphost import layout
from phphost.errors import HostError
from phphost.facts.jailcache import Gone
from phphost.facts.jailscan import store_index
from phphost.jail.diff import object_name


class Store:
    def __init__(self, path: str = layout.STORE_DIR) -> None:
        self.path = path

    def ensure(self, same_fs_as: str) -> None:
        os.makedirs(self.path, mode=0o700, exist_ok=True)
        os.chmod(self.path, 0o700)
        if os.stat(self.path).st_dev != os.stat(same_fs_as).st_dev:
            raise HostError(
                f"jail store {self.path} and jails under {same_fs_as} are on different "
                "filesystems; hard links need one: put both under the same mount")

    def index(self) -> dict[tuple[int, int], str]:
        """(st_dev, st_ino) -> object name, for recognising links on disk."""
        return store_index(self.path)

    def object_path(self, digest: str, mode: int, gid: int = 0) -> str:
        return os.path.join(self.path, object_name(digest, mode, gid))

    def put(self, digest: str, mode: int, *, source: str | None = None,
            content: bytes | None = None, gid: int = 0) -> str:
        """Path of the object for this content, written when missing or damaged."""
        path = self.object_path(digest, mode, gid)
        if self._sound(path, mode, gid):
            return path
        # unique per thread: jails are built in parallel and share the store
        tmp = os.path.join(self.path, f".tmp-{os.getpid()}-{threading.get_ident()}-"
                                      f"{digest[:16]}")
        try:
            got = self._write(tmp, mode, gid, source, content)
            if got != digest:
                raise HostError(f"{source or 'generated content'} changed while phphost "
                                "copied it into the jail store; run again")
            try:        # a new object: never replace one another build just linked
                os.link(tmp, path)
            except FileExistsError:
                if not self._sound(path, mode, gid):
                    os.replace(tmp, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        return path

    @staticmethod
    def _sound(path: str, mode: int, gid: int) -> bool:
        """The object is there as it must be (root's, the group and mode its name says)."""
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return False
        return (stat.S_ISREG(st.st_mode) and st.st_uid == 0 and st.st_gid == gid
                and stat.S_IMODE(st.st_mode) == mode)

    @staticmethod
    def _write(tmp: str, mode: int, gid: int, source: str | None,
               content: bytes | None) -> str:
        h = hashlib.sha256()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "wb") as out:
            if content is not None:
                h.update(content)
                out.write(content)
            elif source is not None:
                with open(source, "rb") as src:
                    for block in iter(lambda: src.read(1 << 20), b""):
                        h.update(block)
                        out.write(block)
            else:
                raise ValueError("put needs a source or content")
            out.flush()
            os.fsync(out.fileno())
            os.fchown(out.fileno(), 0, gid)   # before fchmod: chown clears setgid
            os.fchmod(out.fileno(), mode)
        return h.hexdigest()

    def gc(self) -> list[Gone]:
        """Remove objects no jail links to any more (link count 1). Run it after all
        jails are built, under the apply lock. Returns (dev, inode, name) of each."""
        removed = []
        with contextlib.suppress(FileNotFoundError), os.scandir(self.path) as it:
            for entry in it:
                st = entry.stat(follow_symlinks=False)
                if stat.S_ISREG(st.st_mode) and st.st_nlink == 1:
                    os.unlink(entry.path)
                    removed.append((st.st_dev, st.st_ino, entry.name))
        return sorted(removed, key=lambda obj: obj[2])

    def usage(self) -> tuple[int, int]:
        """(objects, bytes allocated)."""
        count = size = 0
        with contextlib.suppress(FileNotFoundError), os.scandir(self.path) as it:
            for entry in it:
                st = entry.stat(follow_symlinks=False)
                count += 1
                size += st.st_blocks * 512
        return count, size
