"""Tenant homes for imported docroots: a docroot named like htdocs/public_html gets
its parent as home (its data dirs beside it stay inside), homes never nest, and
none may be where the spec forbids homes. Pure."""

from __future__ import annotations

import posixpath
from collections.abc import Callable

from phphost.spec.loader import FORBIDDEN_HOME_ROOTS
from phphost.spec.validate import is_inside

DOCROOT_NAMES = frozenset({"htdocs", "public_html", "public", "html", "web", "www", "httpdocs",
                           "htdocs-ssl", "docroot", "webroot"})
SHARED_PARENTS = frozenset({"/", "/var", "/var/www", "/srv", "/srv/www", "/home", "/opt",
                            "/usr/local", "/data", "/www"})


def forbidden_root(path: str) -> str | None:
    """The system directory path lies in (where a tenant home may not be), if any."""
    first = path.split("/")[1] if path != "/" else ""
    if path == "/":
        return "/"
    found = next((root for root in FORBIDDEN_HOME_ROOTS if is_inside(path, root)), None)
    return found or (f"/{first}" if first.startswith("lib") else None)


def candidate_home(docroot: str) -> str:
    parent = posixpath.dirname(docroot)
    if posixpath.basename(docroot) in DOCROOT_NAMES and parent not in SHARED_PARENTS:
        return parent
    return docroot


def ancestors_and_self(path: str) -> list[str]:
    """'/', '/a', '/a/b' for '/a/b'."""
    parts = [p for p in path.split("/") if p]
    return ["/"] + ["/" + "/".join(parts[: i + 1]) for i in range(len(parts))]


def containing(path: str, chosen: set[str]) -> str | None:
    """The member of chosen that is path or above it (the outermost), if any."""
    return next((a for a in ancestors_and_self(path) if a in chosen), None)


def homes(docroots: list[str]) -> dict[str, str]:
    """docroot -> tenant home; outer homes absorb the ones inside them. Linear in the
    number of docroots (each looks up its own ancestors)."""
    chosen: set[str] = set()
    for home in sorted({candidate_home(d) for d in docroots}, key=lambda h: (len(h), h)):
        if containing(home, chosen) is None:
            chosen.add(home)
    return {d: containing(candidate_home(d), chosen) or d for d in docroots}


def tenant_names(all_homes: list[str], exists: Callable[[str], bool],
                 name: Callable[[str, set[str]], str]) -> dict[str, str]:
    """home -> tenant name (also its Unix user and group), avoiding accounts that
    already exist on this host (phphost would refuse to take them over)."""
    taken: set[str] = set()
    out: dict[str, str] = {}
    for home in sorted(set(all_homes)):
        base = posixpath.basename(home) or "web"
        candidate = name(base, set(taken))
        n = 1
        while exists(candidate):
            candidate = name(f"{base}-web{n if n > 1 else ''}", set(taken))
            n += 1
        taken.add(candidate)
        out[home] = candidate
    return out
