"""Parsers of what apache2 itself says about its configuration: `-S` (the vhosts
as Apache resolved them, with file and line), `-t -D DUMP_INCLUDES` (every file it
read) and Debian's `envvars` file (the variables apache2ctl exports). Pure."""

from __future__ import annotations

import re
from dataclasses import dataclass

_INCLUDE = re.compile(r"^\s*\((?:\*|\d+)\)\s+(\S.*)$")
_WHERE = r"\((?P<file>.+):(?P<line>\d+)\)\s*$"
_NAMEVHOST = re.compile(r"^\s+port (?P<port>\d+) namevhost (?P<name>\S+) " + _WHERE)
_SINGLE = re.compile(r"^(?P<addr>\S+):(?P<port>\d+)\s+(?P<name>\S+) " + _WHERE)
_ADDR = re.compile(r"^(?P<addr>\S+):(?P<port>\d+)\s+is a NameVirtualHost")
_ALIAS = re.compile(r"^\s+(?:wild )?alias (?P<name>\S+)\s*$")
_USER = re.compile(r'^User: name="(?P<name>[^"]*)"', re.M)
_EXPORT = re.compile(r"^\s*(?:export\s+)?(?P<key>[A-Za-z_][A-Za-z0-9_]*)=(?P<value>\S*)\s*$")
_BRACED = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)")


@dataclass(frozen=True)
class VhostRef:
    """One vhost as `apache2 -S` lists it."""

    addr: str                 # "*", "127.0.0.1", "[::1]"
    port: int
    name: str                 # ServerName as Apache resolved it
    file: str
    line: int
    aliases: tuple[str, ...] = ()

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"


def included_files(text: str) -> list[str]:
    """The files of `apache2 -t -D DUMP_INCLUDES`, in the order Apache read them."""
    return [m.group(1).strip() for line in text.splitlines() if (m := _INCLUDE.match(line))]


def vhost_refs(text: str) -> list[VhostRef]:
    """The vhosts of `apache2 -S` (the "default server" lines repeat a namevhost)."""
    out: list[VhostRef] = []
    addr = ""
    for line in text.splitlines():
        if m := _ADDR.match(line):
            addr = m.group("addr")
        elif m := _NAMEVHOST.match(line):
            out.append(VhostRef(addr, int(m.group("port")), m.group("name").lower(),
                                m.group("file"), int(m.group("line"))))
        elif m := _SINGLE.match(line):
            out.append(VhostRef(m.group("addr"), int(m.group("port")), m.group("name").lower(),
                                m.group("file"), int(m.group("line"))))
        elif (m := _ALIAS.match(line)) and out:
            last = out[-1]
            out[-1] = VhostRef(last.addr, last.port, last.name, last.file, last.line,
                               (*last.aliases, m.group("name").lower()))
    return _unique(out)


def _unique(refs: list[VhostRef]) -> list[VhostRef]:
    seen: dict[tuple[str, int, int], VhostRef] = {}
    for ref in refs:
        seen.setdefault((ref.file, ref.line, ref.port), ref)
    return list(seen.values())


def run_user(text: str) -> str:
    """The User line of `apache2 -S` ("" when Apache names none or a #uid)."""
    m = _USER.search(text)
    name = m.group("name") if m else ""
    return "" if name.startswith("#") else name


def envvars(text: str, base: dict[str, str]) -> dict[str, str]:
    """The plain `export NAME=value` / `NAME=value` lines of Debian's envvars file,
    with $VAR and ${VAR} expanded from earlier lines and base. Lines inside `if`
    blocks and anything else a shell would do are skipped: apache2ctl is not run
    (it creates directories), so only the assignments Apache's config can use matter."""
    out: dict[str, str] = {}
    depth = 0
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        first = line.split(" ", 1)[0]
        if first in ("if", "case", "for", "while"):
            depth += 1
        elif first in ("fi", "esac", "done"):
            depth = max(0, depth - 1)
        elif depth == 0 and (m := _EXPORT.match(line)):
            value = m.group("value").strip("\"'")
            out[m.group("key")] = expand(value, {**base, **out})
    return out


def expand(text: str, variables: dict[str, str]) -> str:
    """$VAR / ${VAR} replaced from variables ("" when unknown): shell syntax."""
    return _VAR.sub(lambda m: variables.get(m.group(1) or m.group(2), ""), text)


def expand_config(text: str, variables: dict[str, str]) -> str:
    """${VAR} replaced as Apache does in its config (left as written when unknown)."""
    return _BRACED.sub(lambda m: variables.get(m.group(1), m.group(0)), text)
