"""The vhosts Apache runs (from `-S`), their directives, and one draft site per
server name (an http and an https vhost of the same name are one phphost site). Pure."""

from __future__ import annotations

import posixpath
import re
from collections import Counter
from dataclasses import dataclass, field

from phphost.audit.apacheconf import Directive, Section
from phphost.importer.apacheout import VhostRef
from phphost.importer.errors import SourceError
from phphost.importer.problems import Problem
from phphost.importer.scope import live, path_sections
from phphost.importer.source import ApacheSource

_REDIRECT_STATUS = ("permanent", "temp", "seeother", "gone", "301", "302", "303", "307", "308")


@dataclass(frozen=True)
class Vhost:
    ref: VhostRef
    section: Section
    directives: tuple[Directive, ...]      # live directives inside it, any depth
    ssl: bool = False
    docroot: str | None = None
    docroot_where: str = ""
    tls: tuple[tuple[str, str], ...] = ()  # ("cert", path), ("key", ...), ("chain", ...)
    redirect: str | None = None            # a whole-site Redirect target
    redirect_where: str = ""
    redirect_status: str = "302"


@dataclass
class Draft:
    """One future phphost site: a server name and the vhosts that answered for it."""

    server_name: str
    aliases: list[str] = field(default_factory=list)
    vhosts: list[Vhost] = field(default_factory=list)

    @property
    def content(self) -> Vhost:
        """The vhost whose content the site serves: the TLS one if any."""
        return next((v for v in self.vhosts if v.ssl), self.vhosts[0])

    @property
    def tls_vhost(self) -> Vhost | None:
        return next((v for v in self.vhosts if v.ssl), None)

    @property
    def where(self) -> str:
        return self.content.ref.where


def _one(directives: list[Directive], name: str) -> Directive | None:
    found = [d for d in directives if d.name == name and d.args and not path_sections(d)]
    return found[-1] if found else None


def _redirect(directives: list[Directive]) -> tuple[str | None, str, str]:
    for d in directives:
        if d.name not in ("redirect", "redirectpermanent", "redirecttemp") or path_sections(d):
            continue
        args = list(d.args)
        status = "301" if d.name == "redirectpermanent" else "302"
        if args and args[0].lower() in _REDIRECT_STATUS:
            status = args.pop(0).lower()
        if len(args) == 2 and args[0] == "/":
            return args[1], d.where, {"permanent": "301", "temp": "302"}.get(status, status)
    return None, "", ""


def by_vhost(source: ApacheSource) -> dict[tuple[str, int], list[Directive]]:
    """(file, line) of each <VirtualHost> -> its live directives (one pass)."""
    out: dict[tuple[str, int], list[Directive]] = {}
    defines = frozenset(source.variables)
    for d in source.directives:
        if d.name == "<virtualhost":
            out.setdefault((d.file, d.line), [])
        vhost = d.vhost
        if vhost is not None and live(d, source.modules, defines):
            out.setdefault((vhost.file, vhost.line), []).append(d)
    return out


def vhost_of(ref: VhostRef, source: ApacheSource,
             index: dict[tuple[str, int], list[Directive]]) -> Vhost:
    inside = index.get((ref.file, ref.line))
    if inside is None:
        raise SourceError(f"{ref.where}: apache2 -S lists a vhost here that import cannot "
                          "find in the files it read. Check the Include lines leading to it")
    section = Section("virtualhost", ref.addr, (), ref.file, ref.line)
    docroot = _one(inside, "documentroot")
    if docroot is not None and not docroot.args[0].startswith("/"):
        docroot = Directive(docroot.name, (posixpath.join(source.server_root, docroot.args[0]),),
                            docroot.file, docroot.line, docroot.context)
    engine = _one(inside, "sslengine")
    tls = tuple((key, d.args[0]) for key, name in (("cert", "sslcertificatefile"),
                                                   ("key", "sslcertificatekeyfile"),
                                                   ("chain", "sslcertificatechainfile"))
                if (d := _one(inside, name)) is not None)
    target, where, status = _redirect(inside)
    return Vhost(ref, section, tuple(inside),
                 ssl=engine is not None and engine.args[0].lower() == "on",
                 docroot=docroot.args[0].rstrip("/") or "/" if docroot else None,
                 docroot_where=docroot.where if docroot else "",
                 tls=tls, redirect=target, redirect_where=where, redirect_status=status)


def check_vhost(v: Vhost) -> None:
    """A vhost that serves content needs its own DocumentRoot (broken input otherwise)."""
    if v.docroot is None and v.redirect is None:
        raise SourceError(
            f"{v.ref.where}: the vhost {v.ref.name} ({v.ref.addr}:{v.ref.port}) has no "
            "DocumentRoot and no whole-site Redirect, so it serves the server-wide "
            "DocumentRoot by accident. Give it a DocumentRoot (or Redirect / URL), "
            "then run import again; nothing was written")


def drafts(source: ApacheSource) -> list[Draft]:
    """One Draft per server name, in the order Apache lists them."""
    out: dict[str, Draft] = {}
    index = by_vhost(source)
    for ref in source.refs:
        vhost = vhost_of(ref, source, index)
        check_vhost(vhost)
        draft = out.setdefault(ref.name, Draft(ref.name))
        draft.vhosts.append(vhost)
        draft.aliases += [a for a in ref.aliases if a not in draft.aliases and a != ref.name]
    return list(out.values())


def ports(all_drafts: list[Draft]) -> tuple[int, int, list[Problem]]:
    """(http port, https port) most vhosts use, and the vhosts on other ports."""
    plain = Counter(v.ref.port for d in all_drafts for v in d.vhosts if not v.ssl)
    secure = Counter(v.ref.port for d in all_drafts for v in d.vhosts if v.ssl)
    http = plain.most_common(1)[0][0] if plain else 80
    https = secure.most_common(1)[0][0] if secure else (443 if http != 443 else 8443)
    problems: list[Problem] = []
    bound: dict[str, list[Vhost]] = {}
    for d in all_drafts:
        for v in d.vhosts:
            want = https if v.ssl else http
            if v.ref.port != want:
                problems.append(Problem(
                    "lost", v.ref.where, f"{v.ref.name} listens on port {v.ref.port}",
                    f"phphost serves every site on {http} (and {https} with TLS); move the "
                    "vhost to those ports or keep it outside phphost"))
            if v.ref.addr not in ("*", "_default_"):
                bound.setdefault(v.ref.addr, []).append(v)
    for addr, vhosts in bound.items():
        names = sorted({v.ref.name for v in vhosts})
        problems.append(Problem(
            "changed", vhosts[0].ref.where,
            f"{len(vhosts)} vhosts answered on {addr} only ({', '.join(names[:6])}"
            f"{', ...' if len(names) > 6 else ''})",
            "phphost listens on every address; firewall its ports if they must stay private"))
    return http, https, problems


_NAME_BAD = re.compile(r"[^a-z0-9-]+")


def spec_name(text: str, taken: set[str], limit: int = 24) -> str:
    """A spec name (^[a-z][a-z0-9_-]{0,30}$) from a host or directory name, unique."""
    base = _NAME_BAD.sub("-", text.lower()).strip("-")[:limit].strip("-") or "site"
    if not base[0].isalpha():
        base = ("s-" + base)[:limit]
    name, n = base, 2
    while name in taken:
        name = f"{base[:limit - len(str(n)) - 1]}-{n}"
        n += 1
    taken.add(name)
    return name
