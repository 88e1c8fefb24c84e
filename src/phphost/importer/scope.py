"""Where an Apache directive applies, seen from one site: everywhere, the whole site,
one directory of it, or something phphost cannot express (per file, per regex, per
expression). Also which <IfModule> sections are live. Pure."""

from __future__ import annotations

import bisect
import posixpath
from dataclasses import dataclass

from phphost.audit.apacheconf import Directive, Section, path_covers

WRAPPERS = ("virtualhost", "ifmodule", "ifdefine", "ifversion", "ifdirective", "ifsection")


@dataclass(frozen=True)
class Place:
    kind: str            # "server", "site", "dir", "other", "elsewhere"
    rel: str = ""        # "dir": the directory relative to the docroot
    why: str = ""        # "other": which section makes it inexpressible


def module_id(arg: str) -> str:
    """<IfModule> argument -> module identifier: mod_rewrite.c -> rewrite_module."""
    name = arg.lstrip("!")
    if name.endswith(".c"):
        base = name[:-2].removeprefix("mod_")
        if base in ("php", "php7", "php5", "sapi_apache2"):
            return "php_module" if base in ("php", "sapi_apache2") else f"{base}_module"
        return f"{base}_module"
    return name


def live(d: Directive, modules: frozenset[str], defines: frozenset[str] = frozenset()) -> bool:
    """False when an enclosing <IfModule>/<IfDefine> is false on this Apache."""
    for s in d.context:
        if s.kind == "ifmodule" and s.arg:
            present = module_id(s.arg) in modules
            if present == s.arg.startswith("!"):
                return False
        if s.kind == "ifdefine" and s.arg:
            present = s.arg.lstrip("!") in defines
            if present == s.arg.startswith("!"):
                return False
    return True


def in_modphp_only(d: Directive) -> bool:
    """Inside <IfModule mod_php*.c>/<IfModule php*_module>: dead once mod_php is gone."""
    return any(s.kind == "ifmodule" and not s.arg.startswith("!")
               and module_id(s.arg) in ("php_module", "php7_module", "php5_module")
               for s in d.context)


def path_sections(d: Directive) -> list[Section]:
    return [s for s in d.context if s.kind not in WRAPPERS]


def place(d: Directive, docroot: str, skip: tuple[str, ...] = ()) -> Place:
    """Where d applies for a site with this docroot (sections of the kinds in skip
    left out: `("files", "filesmatch")` asks where a handler's <Files> sit)."""
    sections = [s for s in path_sections(d) if s.kind not in skip]
    if not sections:
        return Place("server" if d.vhost is None else "site")
    rel = ""
    for s in sections:
        if s.kind in ("files", "filesmatch", "if", "elseif", "else", "directorymatch",
                      "locationmatch", "limit", "limitexcept", "proxy", "proxymatch") \
                or s.arg == "~":
            return Place("other", why=f"<{s.kind} {' '.join(s.args)}> at {s.where}")
        if s.kind == "directory":
            if path_covers(s.arg, docroot):
                continue
            if path_covers(docroot, s.arg):
                rel = posixpath.relpath(s.arg.rstrip("/") or "/", docroot)
                continue
            return Place("elsewhere")
        if s.kind == "location":
            url = s.arg.strip("/")
            if url:
                rel = posixpath.join(rel, url) if rel else url
            continue
        return Place("other", why=f"<{s.kind} {' '.join(s.args)}> at {s.where}")
    return Place("dir", rel) if rel and rel != "." else Place("site")


class ServerLines:
    """The server-wide directives, indexed so that each site gets only those that can
    apply to it (everything outside a plain <Directory>, plus the <Directory> sections
    on its docroot's path and inside it): linear in the number of sites even when the
    global config has a <Directory> per docroot."""

    def __init__(self, lines: list[Directive]) -> None:
        self.everywhere: list[tuple[int, Directive]] = []
        self.by_dir: dict[str, list[tuple[int, Directive]]] = {}
        for i, d in enumerate(lines):
            if d.name == "<virtualhost":
                continue
            first = next((s for s in path_sections(d) if s.kind == "directory"), None)
            if first is None or first.arg == "~" or any(c in first.arg for c in "*?["):
                self.everywhere.append((i, d))
            else:
                self.by_dir.setdefault(first.arg.rstrip("/") or "/", []).append((i, d))
        self.keys = sorted(self.by_dir)

    def for_docroot(self, docroot: str) -> list[Directive]:
        found = list(self.everywhere)
        parts = [p for p in docroot.split("/") if p]
        for path in ["/"] + ["/" + "/".join(parts[: i + 1]) for i in range(len(parts))]:
            found += self.by_dir.get(path, [])
        prefix = docroot.rstrip("/") + "/"
        at = bisect.bisect_left(self.keys, prefix)
        while at < len(self.keys) and self.keys[at].startswith(prefix):
            found += self.by_dir[self.keys[at]]
            at += 1
        return [d for _, d in sorted(found, key=lambda x: x[0])]
