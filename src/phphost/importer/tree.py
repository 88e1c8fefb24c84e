"""What import needs from one docroot on disk: its PHP files, its `.htaccess` files
(text, and whether the web user can read them), the directories the web user can
write (today's data dirs) and sub-directories that hold an application of their own.
Read-only: walked by directory descriptor (safefs.fwalk, no symlink followed), at most
MAX_ENTRIES entries per docroot."""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass, field

from phphost import safefs

MAX_ENTRIES = 200_000
MAX_HTACCESS_BYTES = 256 * 1024
# a directory holding one of these beside an index.php is an application of its own
APP_MARKERS = frozenset({
    "composer.json", "wp-config.php", "wp-load.php", "doku.php", "LocalSettings.php",
    "config.inc.php", "adminer.php", "install.php", "version.php",
})


@dataclass(frozen=True)
class WebUser:
    uid: int
    gids: frozenset[int]


@dataclass(frozen=True)
class Htaccess:
    path: str
    text: str | None             # None: the web user cannot read it (or it is not a file)
    problem: str = ""            # why it is None


@dataclass(frozen=True)
class TreeFacts:
    root: str
    exists: bool = True
    php_files: tuple[str, ...] = ()      # relative paths (at most MAX_LISTED)
    php_count: int = 0
    htaccess: tuple[Htaccess, ...] = ()
    writable: tuple[str, ...] = ()       # absolute, top-most dirs the web user can write
    apps: tuple[str, ...] = ()           # relative dirs with an application of their own
    truncated: bool = False
    dirs_with_php: frozenset[str] = field(default_factory=frozenset)   # relative dirs
    # writable dirs with entries inside that the web user owns (a pool cannot write those)
    web_owned: frozenset[str] = field(default_factory=frozenset)


MAX_LISTED = 50


# tags of the kernel's POSIX ACL xattr entries (safefs.decode_acl gives (tag, perm, id))
_USER_OBJ, _USER, _GROUP_OBJ, _GROUP, _MASK, _OTHER = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20


def allows(st: os.stat_result, user: WebUser, want: int,
           acl: list[tuple[int, int, int]] | None = None) -> bool:
    """Whether user may access the inode with `want` (4 read, 2 write), as the kernel
    decides it: mode bits, or the POSIX ACL when there is one (owner, named users
    and groups limited by the mask, other)."""
    if not acl:
        shift = 6 if st.st_uid == user.uid else 3 if st.st_gid in user.gids else 0
        return bool((st.st_mode >> shift) & want)
    mask = next((p for t, p, _ in acl if t == _MASK), 7)
    if st.st_uid == user.uid:
        return bool(next((p for t, p, _ in acl if t == _USER_OBJ), 0) & want)
    named = [p for t, p, i in acl if t == _USER and i == user.uid]
    if named:
        return bool(named[0] & mask & want)
    groups = [p for t, p, i in acl if (t == _GROUP_OBJ and st.st_gid in user.gids)
              or (t == _GROUP and i in user.gids)]
    if groups:
        return any(p & mask & want for p in groups)
    return bool(next((p for t, p, _ in acl if t == _OTHER), 0) & want)


def acl_of(fd: int) -> list[tuple[int, int, int]] | None:
    """The access ACL of an open file, None when it has none (or it cannot be read)."""
    try:
        return safefs.decode_acl(os.getxattr(fd, safefs.ACCESS))
    except (OSError, ValueError):
        return None


def _read_htaccess(path: str, name: str, dfd: int, st: os.stat_result,
                   user: WebUser) -> Htaccess:
    if not stat.S_ISREG(st.st_mode):
        return Htaccess(path, None, "not a regular file")
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dfd)
    except OSError as err:
        return Htaccess(path, None, f"cannot be read: {err.strerror}")
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fd).st_mode):     # swapped since the lstat (a FIFO)
            return Htaccess(path, None, "not a regular file")
        if not allows(os.fstat(fd), user, 4, acl_of(fd)):
            return Htaccess(path, None, f"the web user (uid {user.uid}) cannot read it "
                                        f"(mode {stat.S_IMODE(st.st_mode):04o}, uid {st.st_uid})")
        data = fh.read(MAX_HTACCESS_BYTES)
    return Htaccess(path, data.decode("utf-8", "replace"))


class _Walk:
    """What scan collects, one directory and one file at a time."""

    def __init__(self, root: str, user: WebUser, php: re.Pattern[str], access: str) -> None:
        self.root, self.user, self.php, self.access = root, user, php, access
        self.php_files: list[str] = []
        self.php_count = self.entries = 0
        self.htaccess: list[Htaccess] = []
        self.writable: list[str] = []
        self.writable_set: set[str] = set()
        self.apps: list[str] = []
        self.php_dirs: set[str] = set()
        self.owned: set[str] = set()

    def under_writable(self, path: str) -> str | None:
        """The writable dir at or above path (found by its ancestors: linear walks)."""
        parts = path.split("/")
        return next(("/".join(parts[:i]) for i in range(len(parts), 1, -1)
                     if "/".join(parts[:i]) in self.writable_set), None)

    def owner_is_web(self, path: str, st: os.stat_result, strict: bool) -> None:
        top = self.under_writable(path) if st.st_uid == self.user.uid else None
        if top is not None and (top != path or not strict):
            self.owned.add(top)

    def directory(self, dirpath: str, dirnames: list[str], filenames: list[str],
                  dfd: int) -> str:
        rel = os.path.relpath(dirpath, self.root)
        rel = "" if rel == "." else rel
        dst = os.fstat(dfd)
        self.owner_is_web(dirpath, dst, strict=True)
        if self.under_writable(dirpath) is None and allows(dst, self.user, 2, acl_of(dfd)):
            self.writable.append(dirpath)
            self.writable_set.add(dirpath)
        if self.access in dirnames:
            self.htaccess.append(Htaccess(os.path.join(dirpath, self.access), None,
                                          "is a directory, not a file"))
        names = set(filenames)
        if rel and "index.php" in names and names & APP_MARKERS and \
                not any(rel == a or rel.startswith(a + "/") for a in self.apps):
            self.apps.append(rel)
        self.entries += len(dirnames)
        return rel

    def file(self, dirpath: str, rel: str, name: str, dfd: int) -> None:
        self.entries += 1
        try:
            st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
        except OSError:
            return
        path = os.path.join(dirpath, name)
        self.owner_is_web(path, st, strict=False)
        if name == self.access:
            self.htaccess.append(_read_htaccess(path, name, dfd, st, self.user))
        elif self.php.search(name) and (stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode)):
            self.php_count += 1
            self.php_dirs.add(rel)
            if len(self.php_files) < MAX_LISTED:
                self.php_files.append(os.path.join(rel, name))


def scan(root: str, user: WebUser, php: re.Pattern[str],
         access_name: str = ".htaccess") -> TreeFacts:
    """Walk root (a docroot) without following symlinks."""
    if not os.path.isdir(root):
        return TreeFacts(root, exists=False)
    w = _Walk(root, user, php, access_name)
    truncated = False
    for dirpath, dirnames, filenames, dfd in safefs.fwalk(root):
        rel = w.directory(dirpath, dirnames, filenames, dfd)
        for name in filenames:
            w.file(dirpath, rel, name, dfd)
        if w.entries >= MAX_ENTRIES:
            truncated = True
            break
    return TreeFacts(root, True, tuple(w.php_files), w.php_count, tuple(w.htaccess),
                     tuple(w.writable), tuple(w.apps), truncated, frozenset(w.php_dirs),
                     frozenset(w.owned))
