"""What a program needs inside a jail: pure parsing of `ldd` output and `#!` lines,
symlink chains, and the closure walk over a HostView (facts, not the host itself).

Everything here is pure: the host is only reached through the HostView protocol, so
tests run the walk against recorded facts.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal, Protocol

from phphost.errors import PlanError

HostKind = Literal["file", "dir", "symlink", "other"]

MAX_SYMLINKS = 40       # as the kernel's path walk (ELOOP)
MAX_SHEBANG_DEPTH = 4   # the kernel's binfmt_script nesting limit (BINPRM_MAX_RECURSION)
SEARCH_PATH = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")


class HostView(Protocol):
    """The host facts the pure jail code needs. `facts.hostview.RealHostView` reads
    them from the host; tests give recorded ones."""

    def kind(self, path: str) -> HostKind | None:
        """lstat kind of path, None when it does not exist."""

    def readlink(self, path: str) -> str | None:
        """Raw target of a symlink, None when path is not a symlink."""

    def listdir(self, path: str) -> tuple[str, ...]:
        """Names in a directory (not followed through symlinks), sorted."""

    def head(self, path: str) -> bytes:
        """The first bytes (up to 256) of a regular file."""

    def ldd(self, path: str) -> str:
        """What `ldd path` printed (stdout and stderr)."""

    def untrusted(self, path: str) -> str | None:
        """None when path resolves to a regular file owned by root and writable by
        no one else, every directory on the way is root's and not group/world-writable,
        and every symlink followed is root's: then no one but root can change what
        root reads there. Otherwise the first thing that is not, e.g.
        "/srv/www/ncs/bin is owned by uid 1001"."""

    def digest(self, path: str) -> str:
        """sha256 hex of a regular file's content."""

    def executable(self, path: str) -> bool:
        """True when any execute bit of the regular file is set."""

    def passwd_entry(self, user: str) -> str | None:
        """The user's /etc/passwd line, None when there is no such user."""

    def group_entry(self, group: str) -> str | None:
        """The group's /etc/group line, None when there is no such group."""

    def hostname(self) -> str:
        """The host's name, for the mailer's EHLO and default sender."""


@dataclass(frozen=True)
class Chain:
    """How a host path resolves: every symlink met on the way (the link's own
    symlink-free path and its raw target), then the real path at the end."""

    links: tuple[tuple[str, str], ...]
    real: str


# ---------------------------------------------------------------- pure parsers


def parse_ldd(output: str, binary: str = "?") -> tuple[str, ...]:
    """Pure: absolute paths of the shared objects in `ldd` output, in order.

    Lines look like `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)`, or
    `/lib64/ld-linux-x86-64.so.2 (0x...)` for the loader; the vDSO has no file.
    "not a dynamic executable" and "statically linked" mean no libraries.
    A library reported "not found" raises PlanError: the program would not run.
    """
    paths: list[str] = []
    for raw in output.splitlines():
        line = raw.strip()
        if not line or "statically linked" in line or "not a dynamic executable" in line:
            continue
        name, arrow, rest = line.partition("=>")
        where = rest.strip() if arrow else name.strip()
        if where.startswith("not found"):
            raise PlanError(
                f"{binary}: ldd cannot find {name.strip()!r}; the program would not run "
                "in the jail either. Install the library or drop the program")
        path = where.split(" (", 1)[0].strip()
        if path.startswith("/") and path not in paths:
            paths.append(path)
    return tuple(paths)


def parse_shebang(head: bytes) -> tuple[str, str | None] | None:
    """Pure: (interpreter, optional single argument) of a `#!` line, the way Linux
    reads it (everything after the interpreter is one argument); None otherwise."""
    if not head.startswith(b"#!"):
        return None
    line = head[2:].split(b"\n", 1)[0].decode("utf-8", "replace").strip(" \t\r")
    if not line:
        return None
    parts = line.replace("\t", " ").split(" ", 1)
    arg = parts[1].strip() if len(parts) > 1 else ""
    return parts[0], (arg or None)


def env_target(arg: str | None) -> str | None:
    """Pure: the program `#!/usr/bin/env [-S] prog ...` runs (first non-option word)."""
    for word in (arg or "").split():
        if not word.startswith("-") and "=" not in word:
            return word
    return None


def resolve_chain(path: str, readlink: Callable[[str], str | None]) -> Chain:
    """Pure: walk `path` component by component like the kernel, recording every
    symlink met (e.g. /lib -> usr/lib on a merged-/usr host, then /bin/sh -> dash).

    Keeping these links as links inside the jail is what lets programs such as TeX
    find their data relative to where their symlinks point."""
    if not path.startswith("/"):
        raise ValueError(f"{path!r} is not absolute")
    links: list[tuple[str, str]] = []
    followed = 0
    done = "/"
    todo = [p for p in path.split("/") if p]
    todo.reverse()
    while todo:
        name = todo.pop()
        if name == ".":
            continue
        if name == "..":
            done = posixpath.dirname(done)
            continue
        cand = posixpath.join(done, name)
        target = readlink(cand)
        if target is None:
            done = cand
            continue
        if (cand, target) not in links:
            links.append((cand, target))
        followed += 1
        if followed > MAX_SYMLINKS:
            raise PlanError(f"{path}: more than {MAX_SYMLINKS} symlinks (a loop?)")
        if target.startswith("/"):
            done = "/"
        todo.extend(reversed([p for p in target.split("/") if p]))
    return Chain(tuple(links), done)


# ---------------------------------------------------------------- the closure walk


class UntrustedProgram(PlanError):
    """A program (or a library it links) lies where someone other than root can
    change it: phphost will not read its `#!` line or run `ldd` on it."""

    def __init__(self, path: str, problem: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(f"{path}: {problem}; phphost reads #! lines and runs ldd only on "
                         "files that root owns in directories only root can write")


@dataclass(frozen=True)
class Need:
    """One host path the jail needs, as a file, symlink or directory."""

    path: str
    kind: Literal["file", "symlink", "dir"]
    link: str | None = None     # raw target, symlinks only


@dataclass
class Closure:
    """Collects host paths (with the symlinks leading to them) and, for executables,
    their interpreters and libraries. `skip` says which real paths come through a
    mount and must not be copied."""

    host: HostView
    skip: Callable[[str], bool] = lambda _path: False

    def __post_init__(self) -> None:
        self.needs: dict[str, Need] = {}
        self._done: set[str] = set()

    def add_path(self, path: str) -> str:
        """Add path, its symlink chain and (when a file) the file. Returns the real path."""
        chain = resolve_chain(path, self.host.readlink)
        for link, target in chain.links:
            self.needs.setdefault(link, Need(link, "symlink", target))
        kind = self.host.kind(chain.real)
        if kind is None:
            raise PlanError(f"{path}: does not exist on this host (resolved to {chain.real})")
        if kind == "file" and not self.skip(chain.real):
            self.needs.setdefault(chain.real, Need(chain.real, "file"))
        elif kind == "dir":
            self.needs.setdefault(chain.real, Need(chain.real, "dir"))
        elif kind == "other":
            raise PlanError(f"{path}: {chain.real} is not a regular file or directory")
        return chain.real

    def add_program(self, path: str, depth: int = 0) -> None:
        """Add an executable with its `#!` interpreters (followed through wrapper
        chains) and the shared libraries `ldd` lists. Only root's files are read:
        anything else raises UntrustedProgram before a byte of it is looked at."""
        self._trust(path)
        real = self.add_path(path)
        if real in self._done:
            return
        self._done.add(real)
        if self.host.kind(real) != "file":
            raise PlanError(f"program {path}: {real} is not a file")
        head = self.host.head(real)
        shebang = parse_shebang(head)
        if shebang is not None:
            self._add_interpreter(path, shebang, depth)
        elif head.startswith(b"\x7fELF"):
            for lib in parse_ldd(self.host.ldd(real), real):
                self._trust(lib)
                self.add_path(lib)

    def add_interpreted(self, path: str, interpreter: str) -> None:
        """A program the spec declares with its interpreter: the interpreter's closure
        comes in; the program itself is never read. When it is not root's it must be
        seen through a same-path mount (the tenant home), as nothing of it is copied."""
        self.add_program(interpreter)
        if self.host.untrusted(path) is None:
            self.add_program(path)
            return
        if not self.skip(posixpath.normpath(path)):
            raise UntrustedProgram(path, f"{self.host.untrusted(path)}, and it does not lie "
                                   "in the tenant home or a same-path mount, so the jail "
                                   "would need a copy of it")

    def _trust(self, path: str) -> None:
        problem = self.host.untrusted(path)
        if problem is not None:
            raise UntrustedProgram(path, problem)

    def _add_interpreter(self, path: str, shebang: tuple[str, str | None], depth: int) -> None:
        if depth >= MAX_SHEBANG_DEPTH:
            raise PlanError(f"program {path}: #! interpreters nest deeper than "
                            f"{MAX_SHEBANG_DEPTH} levels; Linux will not run it")
        interpreter, arg = shebang
        self.add_program(interpreter, depth + 1)
        if posixpath.basename(interpreter) == "env":
            name = env_target(arg)
            if name is not None:
                self.add_program(self.which(name, path), depth + 1)

    def which(self, name: str, why: str) -> str:
        if name.startswith("/"):
            return name
        for directory in SEARCH_PATH:
            cand = posixpath.join(directory, name)
            if self.host.kind(cand) in ("file", "symlink"):
                return cand
        raise PlanError(f"{why}: `#!/usr/bin/env {name}` but {name!r} is not in "
                        f"{':'.join(SEARCH_PATH)} on this host")

    def add_tree(self, top: str) -> None:
        """Add a directory tree (zoneinfo, gconv, locales): files, and symlinks kept
        as symlinks, never followed."""
        real = self.add_path(top)
        stack = [real]
        while stack:
            directory = stack.pop()
            for name in self.host.listdir(directory):
                child = posixpath.join(directory, name)
                kind = self.host.kind(child)
                if kind == "dir":
                    self.needs.setdefault(child, Need(child, "dir"))
                    stack.append(child)
                elif kind == "symlink":
                    target = self.host.readlink(child) or ""
                    self.needs.setdefault(child, Need(child, "symlink", target))
                elif kind == "file" and not self.skip(child):
                    self.needs.setdefault(child, Need(child, "file"))


def first_existing(host: HostView, candidates: Iterable[str]) -> str | None:
    """The first candidate path that exists on the host (after symlinks)."""
    for cand in candidates:
        real = resolve_chain(cand, host.readlink).real
        if host.kind(real) is not None:
            return cand
    return None
