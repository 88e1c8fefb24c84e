"""File operations that never follow a path a tenant or a pool can swap.

phphost runs as root and acts on directories that tenants own (homes, docroots,
writable dirs). Every such side effect goes through file descriptors: the path is
walked from `/` one component at a time with O_NOFOLLOW, and the change is made on
the descriptor (fchown, fchmod, fsetxattr) or relative to the parent's descriptor
(mkdirat, unlinkat). A symlink is followed only while every directory so far is
root-owned and writable by nobody else, and only when root owns the link too, so
/var/run -> /run works but a tenant's `htdocs -> /etc` is refused with
UnsafePath, which names the path and what to do.

Standard library only; nothing here knows about specs or plans.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from phphost.errors import PlanError

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
MAX_LINKS = 40


class UnsafePath(PlanError):
    """A path phphost manages is a symlink, a hard link to a foreign file or a
    non-directory where a directory belongs. Nothing was changed through it."""

    def __init__(self, path: str, problem: str, remedy: str = "") -> None:
        self.path = path
        self.problem = problem
        fix = remedy or (f"remove or rename {path} as its owner (phphost never follows "
                         "a tenant's symlink), then run phphost again")
        super().__init__(f"{path}: {problem}. {fix}")


def trusted(st: os.stat_result) -> bool:
    """Owned by root and writable by nobody else: no tenant can change its entries."""
    return st.st_uid == 0 and not st.st_mode & 0o022


def _components(path: str) -> list[str]:
    if not path.startswith("/"):
        raise UnsafePath(path, "is not an absolute path", "name absolute paths only")
    return [p for p in os.path.normpath(path).split("/") if p]


class _Walk:
    """One walk down a path: the fd of the current directory and whether everything
    up to it is trusted."""

    def __init__(self, shown: str) -> None:
        self.shown = shown
        self.fd = os.open("/", DIR_FLAGS)
        self.trusted = True
        self.links = 0
        self.where = ""

    def close(self) -> None:
        os.close(self.fd)

    def copy(self, shown: str) -> _Walk:
        """Another walk from where this one is (its own fd)."""
        other = _Walk.__new__(_Walk)
        other.shown, other.fd = shown, os.dup(self.fd)
        other.trusted, other.links, other.where = self.trusted, self.links, self.where
        return other

    def restart(self) -> None:
        os.close(self.fd)
        self.fd = os.open("/", DIR_FLAGS)
        self.trusted = True
        self.where = ""

    def step(self, name: str) -> None:
        """Descend into directory `name` (following only trusted symlinks)."""
        if name == "..":
            self._enter(name)
            return
        st = os.stat(name, dir_fd=self.fd, follow_symlinks=False)
        if stat.S_ISLNK(st.st_mode):
            self._follow(name, st)
            return
        if not stat.S_ISDIR(st.st_mode):
            raise UnsafePath(self.shown, f"{self.where}/{name} is not a directory")
        self._enter(name)

    def _enter(self, name: str) -> None:
        try:
            new = os.open(name, DIR_FLAGS, dir_fd=self.fd)
        except OSError as e:
            if e.errno in (errno.ELOOP, errno.ENOTDIR):
                raise UnsafePath(self.shown, f"{self.where}/{name} changed while phphost "
                                 "walked it (now a symlink or not a directory)") from e
            raise
        os.close(self.fd)
        self.fd = new
        self.trusted = self.trusted and trusted(os.fstat(new))
        self.where = os.path.normpath(f"{self.where}/{name}")

    def _follow(self, name: str, st: os.stat_result) -> None:
        here = f"{self.where}/{name}"
        if not (self.trusted and st.st_uid == 0):
            raise UnsafePath(self.shown, f"{here} is a symlink in a directory another "
                             "user can write")
        self.links += 1
        if self.links > MAX_LINKS:
            raise UnsafePath(self.shown, "has too many levels of symlinks")
        target = os.readlink(name, dir_fd=self.fd)
        if target.startswith("/"):
            self.restart()
        for part in [p for p in target.split("/") if p and p != "."]:
            self.step(part)


@contextlib.contextmanager
def parent(path: str) -> Iterator[tuple[int, str, bool]]:
    """(fd of the parent directory, last component, parent trusted) for path."""
    parts = _components(path)
    if not parts:
        raise UnsafePath(path, "is the root directory", "name a directory below /")
    walk = _Walk(path)
    try:
        for part in parts[:-1]:
            walk.step(part)
        yield walk.fd, parts[-1], walk.trusted
    finally:
        walk.close()


def open_dir(path: str) -> int:
    """A descriptor of the directory at path (symlinks refused as above). The last
    component is never followed, even in a trusted place."""
    with parent(path) as (pfd, name, _trusted):
        return _open_dir_at(pfd, name, path)


def _open_dir_at(pfd: int, name: str, shown: str) -> int:
    try:
        return os.open(name, DIR_FLAGS, dir_fd=pfd)
    except OSError as e:
        if e.errno in (errno.ELOOP, errno.ENOTDIR):
            st = os.stat(name, dir_fd=pfd, follow_symlinks=False)
            kind = "a symlink" if stat.S_ISLNK(st.st_mode) else f"not a directory ({_kind(st)})"
            raise UnsafePath(shown, f"is {kind} where phphost expects a directory") from e
        raise


def _kind(st: os.stat_result) -> str:
    mode = st.st_mode
    for test, name in ((stat.S_ISREG, "a file"), (stat.S_ISFIFO, "a FIFO"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISLNK, "a symlink")):
        if test(mode):
            return name
    return "something else"


class DirOpener:
    """open_dir for many paths in turn, as one process reading the host for a plan
    does (2,000 homes and docroots at 1,000 tenants): the walk to a trusted directory
    (root's, writable by nobody else: no tenant can rename or swap anything in it) is
    kept for the next paths below it, the last KEEP of them, each an fd of its own; a
    home below /srv/tenants then costs one step from there, not a walk from `/`. Every
    step below a kept walk is open_dir's, so each answer and refusal is open_dir's.
    close() (or `with`) closes the kept fds."""

    KEEP = 64

    def __init__(self) -> None:
        self._walks: dict[tuple[str, ...], _Walk] = {}

    def __enter__(self) -> DirOpener:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for walk in self._walks.values():
            walk.close()
        self._walks.clear()

    def open_dir(self, path: str) -> int:
        parts = tuple(_components(path))
        if not parts:
            raise UnsafePath(path, "is the root directory", "name a directory below /")
        walk = self._walk(parts[:-1], path)
        try:
            return _open_dir_at(walk.fd, parts[-1], path)
        finally:
            walk.close()

    def _walk(self, parts: tuple[str, ...], shown: str) -> _Walk:
        """A walk of its own to `parts`: from the longest kept prefix, then a step at a
        time; each trusted directory on the way is kept (a copy) for later paths."""
        n = len(parts)
        while n and parts[:n] not in self._walks:
            n -= 1
        base = self._walks.pop(parts[:n], None)
        if base is not None:
            self._walks[parts[:n]] = base       # most recently used last
            walk = base.copy(shown)
        else:
            walk = _Walk(shown)
            self._keep((), walk.copy(shown))
        try:
            for i in range(n, len(parts)):
                walk.step(parts[i])
                if walk.trusted:
                    self._keep(parts[:i + 1], walk.copy(shown))
        except BaseException:
            walk.close()
            raise
        return walk

    def _keep(self, key: tuple[str, ...], walk: _Walk) -> None:
        old = self._walks.pop(key, None)
        if old is not None:
            old.close()
        self._walks[key] = walk
        while len(self._walks) > max(self.KEEP, 1):
            self._walks.pop(next(iter(self._walks))).close()


@contextlib.contextmanager
def opened_dir(path: str) -> Iterator[int]:
    fd = open_dir(path)
    try:
        yield fd
    finally:
        os.close(fd)


def lstat(path: str) -> os.stat_result | None:
    """lstat of path reached without following any untrusted symlink; None when it
    (or a parent) does not exist."""
    try:
        with parent(path) as (pfd, name, _trusted):
            return os.stat(name, dir_fd=pfd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def describe(st: os.stat_result) -> str:
    return _kind(st) if not stat.S_ISDIR(st.st_mode) else "a directory"


# --- directories -------------------------------------------------------------

@dataclass(frozen=True)
class DirState:
    uid: int
    gid: int
    mode: int


def dir_state(path: str) -> DirState | None:
    """Owner and mode of the directory at path; None when missing; UnsafePath when
    it is not a real directory."""
    try:
        fd = open_dir(path)
    except FileNotFoundError:
        return None
    try:
        return dir_state_of(fd)
    finally:
        os.close(fd)


def dir_state_of(fd: int) -> DirState:
    """Owner and mode of an open directory (dir_state)."""
    st = os.fstat(fd)
    return DirState(st.st_uid, st.st_gid, _effective_group_mode(fd, stat.S_IMODE(st.st_mode)))


def make_dir(path: str) -> bool:
    """mkdirat the last component (mode 0700) unless it exists. True when made."""
    with parent(path) as (pfd, name, _trusted):
        try:
            os.mkdir(name, 0o700, dir_fd=pfd)
        except FileExistsError:
            os.close(_open_dir_at(pfd, name, path))   # refuses a symlink or a file
            return False
        return True


def set_owner_mode(path: str, uid: int, gid: int, mode: int) -> None:
    """fchown + fchmod on the directory itself, never through a symlink. With an ACL
    (e.g. inherited from a docroot's default ACL), fchmod sets only the mask: the owning
    group's entry, access and default, is set to the mode's group bits too."""
    with opened_dir(path) as fd:
        os.fchown(fd, uid, gid)
        os.fchmod(fd, mode)
        _align_group_obj(fd, (mode >> 3) & 7)


def chmod_fd(fd: int, mode: int) -> None:
    """fchmod that also holds with an ACL: the owning group's entry (access, and
    default for a directory) set to the mode's group bits, not only the mask."""
    os.fchmod(fd, mode)
    _align_group_obj(fd, (mode >> 3) & 7)


def _effective_group_mode(fd: int, mode: int) -> int:
    """mode with the group bits the owning group really has: with an ACL, st_mode's
    group bits are the mask, and the group's own entry may grant less."""
    blob = _read_xattr(fd, ACCESS)
    if not blob:
        return mode
    group = next((p for t, p, _i in decode_acl(blob) if t == _GROUP_OBJ), 7)
    return (mode & ~0o070) | ((mode >> 3) & group & 7) << 3


def _align_group_obj(fd: int, bits: int) -> None:
    """The owning group's entry of the access ACL (mask as fchmod left it) and of the
    default ACL (mask widened to it) set to bits; nothing without an ACL."""
    for name in (ACCESS, DEFAULT):
        blob = _read_xattr(fd, name)
        if not blob:
            continue
        entries = [(t, bits if t == _GROUP_OBJ else p, i) for t, p, i in decode_acl(blob)]
        if name == DEFAULT:
            entries = [(t, p | bits if t == _MASK else p, i) for t, p, i in entries]
        if entries != decode_acl(blob):
            os.setxattr(fd, name, encode_acl(entries))


def remove_empty_dir(path: str) -> None:
    """unlinkat(AT_REMOVEDIR): removes only an empty directory, never a link target."""
    with contextlib.suppress(OSError, UnsafePath), parent(path) as (pfd, name, _t):
        os.rmdir(name, dir_fd=pfd)


def remove_tree(path: str) -> None:
    """Delete the directory tree at path, by descriptor: a symlink at path itself is
    refused, symlinks inside are unlinked, never followed, and every subdirectory is
    opened with O_NOFOLLOW and O_DIRECTORY, so a FIFO or symlink its owner swaps in
    is unlinked, never blocked on or followed (shutil.rmtree opens each subdirectory
    with plain O_RDONLY). Iterative, one descriptor per level; a tree deeper than
    MAX_TREE_DEPTH is refused part-way (UnsafePath naming the path)."""
    try:
        with parent(path) as (pfd, name, _trusted):
            fd = _open_dir_at(pfd, name, path)
            try:
                _empty(fd, path)
            finally:
                os.close(fd)
            os.rmdir(name, dir_fd=pfd)
    except FileNotFoundError:
        return


def _empty(top: int, shown: str) -> None:
    """Remove everything inside the open directory top."""
    # (descriptor, its name in the directory below it in the stack, path shown, to do)
    stack: list[tuple[int, str, str, list[str]]] = [(top, "", shown, os.listdir(top))]
    try:
        while stack:
            dfd, own, where, names = stack[-1]
            if not names:
                stack.pop()
                if dfd != top:
                    os.close(dfd)
                    os.rmdir(own, dir_fd=stack[-1][0])
                continue
            name = names.pop()
            sub = _subdir(dfd, name)
            if sub is None:
                continue
            if len(stack) > MAX_TREE_DEPTH:
                os.close(sub)
                raise UnsafePath(f"{where}/{name}", f"is nested more than {MAX_TREE_DEPTH} "
                                 "directories deep", "remove it by hand")
            stack.append((sub, name, f"{where}/{name}", []))
            stack[-1][3].extend(os.listdir(sub))
    finally:
        for dfd, _own, _where, _names in stack:
            if dfd != top:
                os.close(dfd)


def _subdir(dfd: int, name: str) -> int | None:
    """A descriptor of directory `name` to empty; anything else is unlinked (None)."""
    try:
        return os.open(name, DIR_FLAGS, dir_fd=dfd)
    except FileNotFoundError:
        return None
    except OSError as e:
        if e.errno not in (errno.ELOOP, errno.ENOTDIR):
            raise
    with contextlib.suppress(FileNotFoundError):
        os.unlink(name, dir_fd=dfd)
    return None


# --- POSIX ACLs through xattrs on descriptors --------------------------------

ACCESS = "system.posix_acl_access"
DEFAULT = "system.posix_acl_default"
_VERSION = 2
_USER_OBJ, _USER, _GROUP_OBJ, _GROUP, _MASK, _OTHER = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20
_UNDEFINED = 0xFFFFFFFF
_TAGS = {"user": _USER, "group": _GROUP}

AclEntry = tuple[int, int, int]      # tag, perm bits (rwx = 4 2 1), id


def decode_acl(blob: bytes) -> list[AclEntry]:
    """Pure: the kernel's xattr ACL format (a u32 version, then u16 tag, u16 perm,
    u32 id per entry, little-endian)."""
    if len(blob) < 4 or (len(blob) - 4) % 8 or struct.unpack_from("<I", blob)[0] != _VERSION:
        raise ValueError("not a POSIX ACL xattr")
    return [struct.unpack_from("<HHI", blob, off) for off in range(4, len(blob), 8)]


def encode_acl(entries: list[AclEntry]) -> bytes:
    """Pure: entries sorted as the kernel wants them (by tag, then id)."""
    out = [struct.pack("<I", _VERSION)]
    out += [struct.pack("<HHI", *e) for e in sorted(entries, key=lambda e: (e[0], e[2]))]
    return b"".join(out)


def _base_from_mode(mode: int) -> list[AclEntry]:
    return [(_USER_OBJ, (mode >> 6) & 7, _UNDEFINED), (_GROUP_OBJ, (mode >> 3) & 7, _UNDEFINED),
            (_OTHER, mode & 7, _UNDEFINED)]


def merge_acl(current: list[AclEntry], named: dict[tuple[int, int], int]) -> list[AclEntry]:
    """Pure: current entries with named (tag, id) -> perm set, and the mask
    recomputed as the union of the group class (as setfacl does)."""
    keep = {(t, i): p for t, p, i in current if t != _MASK}
    keep.update(named)
    out = [(t, p, i) for (t, i), p in keep.items()]
    if any(t in (_USER, _GROUP) for t, _p, _i in out):
        mask = 0
        for t, p, _i in out:
            if t in (_USER, _GROUP, _GROUP_OBJ):
                mask |= p
        out.append((_MASK, mask, _UNDEFINED))
    return out


def _read_xattr(fd: int, name: str) -> bytes | None:
    try:
        return os.getxattr(fd, name)
    except OSError as e:
        if e.errno in (errno.ENODATA, errno.EOPNOTSUPP):
            return None
        raise


def acl_blobs(fd: int) -> tuple[bytes | None, bytes | None]:
    """The access and (for a directory) default ACL xattrs of fd, None where absent."""
    is_dir = stat.S_ISDIR(os.fstat(fd).st_mode)
    return _read_xattr(fd, ACCESS), _read_xattr(fd, DEFAULT) if is_dir else None


def restore_acl(fd: int, access: bytes | None, default: bytes | None) -> None:
    """Put back the xattrs acl_blobs read (None removes)."""
    is_dir = stat.S_ISDIR(os.fstat(fd).st_mode)
    for name, blob in ((ACCESS, access), *(((DEFAULT, default),) if is_dir else ())):
        if blob is None:
            with contextlib.suppress(OSError):
                os.removexattr(fd, name)
        else:
            os.setxattr(fd, name, blob)


def parse_entry(text: str) -> tuple[bool, int, int, int]:
    """'[default:]user|group:NAME-or-ID:rwx' -> (default, tag, id, perm bits)."""
    import grp
    import pwd
    fields = text.split(":")
    default = fields[0] == "default"
    if default:
        fields = fields[1:]
    if len(fields) != 3 or fields[0] not in _TAGS or len(fields[2]) != 3:
        raise ValueError(f"ACL entry {text!r} is not [default:]user|group:NAME:rwx")
    kind, who, perms = fields
    if who.isdigit():
        ident = int(who)
    else:
        ident = pwd.getpwnam(who).pw_uid if kind == "user" else grp.getgrnam(who).gr_gid
    bits = sum(b for ch, want, b in zip(perms, "rwx", (4, 2, 1), strict=True) if ch == want)
    return default, _TAGS[kind], ident, bits


def grant(fd: int, entries: tuple[str, ...], *, files_rx: bool = False) -> None:
    """Add named entries to the access ACL (and, on a directory, the default ACL)
    of fd. On a regular file `default:` entries are ignored and r-x becomes r-- unless
    the file is executable by someone (setfacl's X)."""
    st = os.fstat(fd)
    is_dir = stat.S_ISDIR(st.st_mode)
    access: dict[tuple[int, int], int] = {}
    default: dict[tuple[int, int], int] = {}
    for text in entries:
        is_default, tag, ident, bits = parse_entry(text)
        if not is_dir and not files_rx and not st.st_mode & 0o111:
            bits &= ~1
        (default if is_default else access)[(tag, ident)] = bits
    if access:
        blob = _read_xattr(fd, ACCESS)
        cur = decode_acl(blob) if blob else _base_from_mode(st.st_mode)
        os.setxattr(fd, ACCESS, encode_acl(merge_acl(cur, access)))
    if default and is_dir:
        blob = _read_xattr(fd, DEFAULT)
        base = _read_xattr(fd, ACCESS)
        cur = decode_acl(blob) if blob else [
            e for e in (decode_acl(base) if base else _base_from_mode(st.st_mode))
            if e[0] in (_USER_OBJ, _GROUP_OBJ, _OTHER)]
        os.setxattr(fd, DEFAULT, encode_acl(merge_acl(cur, default)))


def _nss_name(kind: str, ident: int) -> str:
    import grp
    import pwd
    try:
        return pwd.getpwuid(ident).pw_name if kind == "user" else grp.getgrgid(ident).gr_name
    except KeyError:
        return str(ident)


def named_entries(fd: int, name_of: Callable[[str, int], str] = _nss_name) -> frozenset[str]:
    """Named entries of fd's ACLs as getfacl prints them: 'user:www-data:r-x',
    'default:user:www-data:r-x' (names where the id has one). name_of("user" or
    "group", id): the name, or the number where there is none."""
    out: set[str] = set()
    access, default = acl_blobs(fd)
    for prefix, blob in (("", access), ("default:", default)):
        for tag, perm, ident in decode_acl(blob) if blob else []:
            if tag not in (_USER, _GROUP):
                continue
            kind = "user" if tag == _USER else "group"
            who = name_of(kind, ident)
            bits = "".join(c if perm & b else "-" for c, b in zip("rwx", (4, 2, 1), strict=True))
            out.add(f"{prefix}{kind}:{who}:{bits}")
    return frozenset(out)


def open_at(dirfd: int, name: str, shown: str) -> int | None:
    """A read-only descriptor of a regular file or directory `name` in dirfd, never
    through a symlink; None for symlinks, FIFOs, devices and sockets (they are
    skipped, never opened)."""
    st = os.stat(name, dir_fd=dirfd, follow_symlinks=False)
    if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
        return None
    flags = DIR_FLAGS if stat.S_ISDIR(st.st_mode) else FILE_FLAGS
    try:
        fd = os.open(name, flags, dir_fd=dirfd)
    except OSError as e:
        if e.errno in (errno.ELOOP, errno.ENOTDIR):
            raise UnsafePath(shown, "changed while phphost walked it") from e
        raise
    now = os.fstat(fd)
    if (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino):
        os.close(fd)
        raise UnsafePath(shown, "changed while phphost walked it")
    return fd


# --- trees -------------------------------------------------------------------

def _owners(top: os.stat_result) -> set[int]:
    """Who may own a hard-linked file in a tenant's tree: the tree's owner and the
    users whose primary group is its group (the tenant's pool users); never root."""
    import pwd
    return ({top.st_uid} | {p.pw_uid for p in pwd.getpwall() if p.pw_gid == top.st_gid}) - {0}


MAX_TREE_DEPTH = 200      # directories below a tree's top walk_tree goes (one descriptor each)


def walk_tree(path: str) -> Iterator[tuple[str, int]]:
    """(relative path, descriptor) of every directory and regular file below and
    including path, walked by descriptor without following symlinks (symlinks, FIFOs,
    devices and sockets are skipped, never opened). A regular file with other hard links
    whose owner is not the tree's is refused: changing it would change a file
    elsewhere. Iterative, one descriptor per level: a tree deeper than MAX_TREE_DEPTH
    is refused (UnsafePath), never a RecursionError or a descriptor per directory. An
    entry that vanishes meanwhile is skipped. (os.fwalk is not used: it opens each
    subdirectory it listed without O_NOFOLLOW, O_DIRECTORY or O_NONBLOCK, so a tenant
    who swaps a directory for a FIFO, or a symlink to one, makes root block on it.)"""
    top = open_dir(path)
    stack: list[tuple[str, int, list[str]]] = []
    try:
        owners = _owners(os.fstat(top))
        yield ".", top
        stack.append((".", top, sorted(os.listdir(top), reverse=True)))
        while stack:
            rel, dfd, names = stack[-1]
            if not names:
                stack.pop()
                if dfd != top:
                    os.close(dfd)
                continue
            name = names.pop()
            child = name if rel == "." else f"{rel}/{name}"
            entry = _entry_at(dfd, name, f"{path}/{child}", owners)
            if entry is None:
                continue
            fd, is_dir = entry
            if not is_dir:
                try:
                    yield child, fd
                finally:
                    os.close(fd)
                continue
            if len(stack) > MAX_TREE_DEPTH:
                os.close(fd)
                raise UnsafePath(f"{path}/{child}", f"is nested more than {MAX_TREE_DEPTH} "
                                 "directories deep", "flatten that tree as the tenant, then "
                                 "run phphost again")
            stack.append((child, fd, []))      # closed with the stack, whatever happens
            yield child, fd
            stack[-1] = (child, fd, sorted(os.listdir(fd), reverse=True))
    finally:
        for _rel, dfd, _names in stack:
            if dfd != top:
                os.close(dfd)
        os.close(top)


Listing = tuple[str, list[str], list[str], int]     # (path, dirnames, filenames, dir fd)


def fwalk(top: str, max_depth: int = MAX_TREE_DEPTH) -> Iterator[Listing]:
    """What os.fwalk(top, follow_symlinks=False) yields, top-down (the caller may
    remove names from dirnames to prune), for trees a tenant can change while root
    reads them: each subdirectory is opened by name with O_NOFOLLOW and O_DIRECTORY,
    so a symlink or FIFO swapped in is skipped, never followed or blocked on (os.fwalk
    opens it with plain O_RDONLY); iterative, one descriptor per level; directories
    deeper than max_depth are not entered; an entry gone meanwhile is skipped. As in
    os.fwalk, a symlink to a directory is listed in dirnames but never entered."""
    try:
        top_fd = os.open(top, DIR_FLAGS)
    except OSError:
        return
    stack: list[tuple[str, int, list[str]]] = [(top, top_fd, [])]
    try:
        dirs, files = _list(top_fd)
        yield top, dirs, files, top_fd
        stack[-1] = (top, top_fd, dirs[::-1])
        while stack:
            path, dfd, pending = stack[-1]
            if not pending:
                stack.pop()
                os.close(dfd)
                continue
            name = pending.pop()
            if len(stack) > max_depth:
                continue
            try:
                sub = os.open(name, DIR_FLAGS, dir_fd=dfd)
            except OSError:          # a symlink, a FIFO or a file now, or gone
                continue
            sub_path = os.path.join(path, name)
            stack.append((sub_path, sub, []))      # closed with the stack, whatever happens
            try:
                dirs, files = _list(sub)
            except OSError:
                continue
            yield sub_path, dirs, files, sub
            stack[-1] = (sub_path, sub, dirs[::-1])
    finally:
        for _path, dfd, _pending in stack:
            os.close(dfd)


def _list(dfd: int) -> tuple[list[str], list[str]]:
    """(directory names, other names) in an open directory, as os.fwalk sorts them."""
    dirs: list[str] = []
    files: list[str] = []
    with os.scandir(dfd) as entries:
        for entry in entries:
            try:
                (dirs if entry.is_dir() else files).append(entry.name)
            except OSError:
                continue
    return dirs, files


def _entry_at(dfd: int, name: str, shown: str, owners: set[int]) -> tuple[int, bool] | None:
    """(descriptor, is a directory) of a directory or regular file of the walk; None
    for anything else or an entry gone meanwhile; UnsafePath for a hard link to a file
    someone outside the tree owns."""
    try:
        fd = open_at(dfd, name, shown)
    except FileNotFoundError:
        return None
    if fd is None:
        return None
    st = os.fstat(fd)
    if stat.S_ISREG(st.st_mode) and st.st_nlink > 1 and st.st_uid not in owners:
        os.close(fd)
        raise UnsafePath(shown, "is a hard link to a file another user owns",
                         "remove that link as the tenant, then run phphost again")
    return fd, stat.S_ISDIR(st.st_mode)


def open_below(path: str, rel: str) -> int | None:
    """Descriptor of rel inside the directory path, walked without following
    symlinks; None when it is gone, no longer a file or directory, or a hard link to
    a file someone outside the tree owns."""
    parts = [p for p in rel.split("/") if p and p != "."]
    if ".." in parts:
        raise UnsafePath(f"{path}/{rel}", "leaves its tree", "this is a bug in phphost")
    try:
        fd = open_dir(path)
    except FileNotFoundError:
        return None
    owners = _owners(os.fstat(fd))
    try:
        for part in parts:
            nxt = open_at(fd, part, f"{path}/{rel}")
            os.close(fd)
            if nxt is None:
                return None
            fd = nxt
    except (FileNotFoundError, NotADirectoryError, UnsafePath):
        os.close(fd)
        return None
    st = os.fstat(fd)
    if stat.S_ISREG(st.st_mode) and st.st_nlink > 1 and st.st_uid not in owners:
        os.close(fd)        # a hard link to another user's file planted since: not ours
        return None
    return fd


def read_file(path: str, limit: int = 1 << 20, root_only: bool = False) -> bytes:
    """Content of the regular file at path, opened without following any untrusted
    symlink (nor a symlink as the last component); at most `limit` bytes. root_only:
    also refuse a file that root does not own or that lies where another user can
    write (what root later opens by name again, e.g. apache2 its TLS files)."""
    with parent(path) as (pfd, name, chain_trusted):
        fd = open_at(pfd, name, path)
        if fd is not None and root_only and not (chain_trusted and trusted(os.fstat(fd))):
            os.close(fd)
            raise UnsafePath(path, "is not a root-owned file in directories only root can "
                             "write (apache2 reads it again by name at every reload)",
                             "keep TLS files in a root-only place such as /etc/ssl/private "
                             "or /etc/letsencrypt")
    if fd is None:
        st = lstat(path)
        raise UnsafePath(path, f"is {describe(st) if st else 'missing'}, not a regular file")
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise UnsafePath(path, "is a directory, not a regular file")
        data = os.read(fd, limit + 1)
    finally:
        os.close(fd)
    if len(data) > limit:
        raise UnsafePath(path, f"is larger than {limit} bytes", "point the spec at the right file")
    return data


def require_trusted_dir(directory: str) -> None:
    """Root writes its own files only in directories no other user can change."""
    with parent(directory) as (pfd, name, chain_trusted):
        fd = _open_dir_at(pfd, name, directory)
        ok = chain_trusted and trusted(os.fstat(fd))
        os.close(fd)
        if not ok:
            raise UnsafePath(directory, "is not a root-owned directory that only root can "
                             "write", "phphost keeps its own files out of other users' reach")
