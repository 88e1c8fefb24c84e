"""A small reader of Apache httpd config text: every directive with its arguments,
its file and line, and the sections it sits in. Pure: the caller supplies the text of
each file (and the expansion of Include globs). Enough for audit rules; not a full
httpd parser (variables are left as written, <If*> sections count as active)."""

from __future__ import annotations

import fnmatch
import posixpath
import re
from collections.abc import Callable
from dataclasses import dataclass

_TOKEN = re.compile(r'"((?:[^"\\]|\\.)*)"|\'([^\']*)\'|(\S+)')
MAX_INCLUDE_DEPTH = 8


@dataclass(frozen=True)
class Section:
    kind: str            # lowercased: "virtualhost", "directory", "location", ...
    arg: str             # first argument as written ("*:80", "/srv/www", "~", ...)
    args: tuple[str, ...]
    file: str
    line: int

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True)
class Directive:
    name: str            # lowercased directive name
    args: tuple[str, ...]
    file: str
    line: int
    context: tuple[Section, ...] = ()   # enclosing sections, outermost first

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"

    def section(self, *kinds: str) -> Section | None:
        """The innermost enclosing section of one of kinds."""
        return next((s for s in reversed(self.context) if s.kind in kinds), None)

    @property
    def vhost(self) -> Section | None:
        return self.section("virtualhost")


def tokens(text: str) -> list[str]:
    """Arguments of one logical line, quotes removed (backslash escapes kept simple)."""
    out = []
    for match in _TOKEN.finditer(text):
        dq, sq, bare = match.groups()
        out.append(dq.replace('\\"', '"') if dq is not None else sq if sq is not None else bare)
    return out


def logical_lines(text: str) -> list[tuple[int, str]]:
    """(first line number, text) with backslash continuations joined, comments dropped."""
    out: list[tuple[int, str]] = []
    pending, start = "", 0
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.rstrip()
        if not pending:
            start = number
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        if full and not full.startswith("#"):
            out.append((start, full))
    return out


Reader = Callable[[str], "str | None"]
Globber = Callable[[str], list[str]]


def parse(file: str, text: str, context: tuple[Section, ...] = ()) -> list[Directive]:
    """Directives of one file's text (no Include expansion)."""
    return _parse(file, text, context, None, 0)


def load(root_file: str, read: Reader, glob: Globber, server_root: str) -> list[Directive]:
    """Directives of root_file with Include/IncludeOptional expanded in place."""
    text = read(root_file)
    return [] if text is None else _parse(root_file, text, (), (read, glob, server_root), 0)


def _parse(file: str, text: str, context: tuple[Section, ...],
           io: tuple[Reader, Globber, str] | None, depth: int) -> list[Directive]:
    out: list[Directive] = []
    stack = list(context)
    for number, line in logical_lines(text):
        if line.startswith("</"):
            if len(stack) > len(context):
                stack.pop()
            continue
        if line.startswith("<"):
            parts = tokens(line[1:].rstrip(">").rstrip())
            if parts:
                # the opening itself is recorded as a directive named "<kind>"
                out.append(Directive("<" + parts[0].lower(), tuple(parts[1:]), file, number,
                                     tuple(stack)))
                stack.append(Section(parts[0].lower(), parts[1] if len(parts) > 1 else "",
                                     tuple(parts[1:]), file, number))
            continue
        parts = tokens(line)
        directive = Directive(parts[0].lower(), tuple(parts[1:]), file, number, tuple(stack))
        out.append(directive)
        if io is not None and directive.name in ("include", "includeoptional") and \
                directive.args and depth < MAX_INCLUDE_DEPTH:
            out += _include(directive, tuple(stack), io, depth)
    return out


def _include(d: Directive, context: tuple[Section, ...], io: tuple[Reader, Globber, str],
             depth: int) -> list[Directive]:
    read, glob, server_root = io
    pattern = posixpath.join(server_root, d.args[0])
    out: list[Directive] = []
    for path in sorted(glob(pattern)):
        text = read(path)
        if text is not None:
            out += _parse(path, text, context, io, depth + 1)
    return out


# --- queries ------------------------------------------------------------------------------


def named(directives: list[Directive], *names: str) -> list[Directive]:
    return [d for d in directives if d.name in names]


def global_value(directives: list[Directive], name: str) -> str | None:
    """The last value of a server-wide directive (outside vhosts and path sections)."""
    found = [d for d in named(directives, name) if d.args and not any(
        s.kind not in ("ifmodule", "ifdefine", "ifversion") for s in d.context)]
    return found[-1].args[0] if found else None


def path_covers(section_path: str, path: str) -> bool:
    """True when a <Directory section_path> (wildcards allowed) applies to path."""
    pattern = section_path.rstrip("/") or "/"
    if pattern == "/":
        return True
    pat_parts, parts = pattern.strip("/").split("/"), path.strip("/").split("/")
    if len(pat_parts) > len(parts):
        return False
    return all(fnmatch.fnmatchcase(p, q) for p, q in zip(parts, pat_parts, strict=False))


def url_covers(location: str, url_path: str) -> bool:
    """True when a <Location location> (prefix on path segments) applies to url_path."""
    loc = location.rstrip("/")
    return loc == "" or url_path == loc or url_path.startswith(loc + "/") or \
        (location.endswith("/") and url_path.startswith(location))


def regex_search(pattern: str, text: str) -> bool:
    """re.search, False when Python cannot compile the (PCRE) pattern."""
    try:
        return re.search(pattern, text) is not None
    except re.error:
        return False


def vhost_names(directives: list[Directive], vhost: Section) -> set[str]:
    names: set[str] = set()
    for d in named(directives, "servername", "serveralias"):
        if d.vhost == vhost:
            names.update(a.lower().split(":")[0] for a in d.args)
    return names


def vhost_roots(directives: list[Directive], vhost: Section) -> list[str]:
    """DocumentRoot and Alias targets of a vhost."""
    roots = [d.args[0] for d in named(directives, "documentroot") if d.vhost == vhost and d.args]
    roots += [d.args[-1] for d in named(directives, "alias", "aliasmatch")
              if d.vhost == vhost and len(d.args) >= 2]
    return roots


def vhosts(directives: list[Directive]) -> list[Section]:
    seen: dict[Section, None] = {}
    for d in directives:
        if d.vhost is not None:
            seen.setdefault(d.vhost, None)
    return list(seen)


def opened(d: Directive) -> Section:
    """The Section a "<kind" directive opens."""
    return Section(d.name[1:], d.args[0] if d.args else "", d.args, d.file, d.line)
