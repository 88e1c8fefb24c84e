"""Pure parsers of command output. Tested from recorded outputs."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ProgramStatus:
    name: str
    state: str           # RUNNING, STARTING, STOPPED, FATAL, BACKOFF, EXITED, ...
    pid: int | None


def parse_supervisorctl_status(text: str) -> dict[str, ProgramStatus]:
    """`supervisorctl status` lines: 'name  RUNNING   pid 123, uptime 0:00:05'."""
    out: dict[str, ProgramStatus] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 2 or not parts[1].isupper():
            continue
        pid = None
        if len(parts) >= 4 and parts[2] == "pid":
            pid = int(parts[3].rstrip(","))
        out[parts[0]] = ProgramStatus(parts[0], parts[1], pid)
    return out


def parse_getfacl(text: str) -> frozenset[str]:
    """Named ACL entries from `getfacl --omit-header -p -E` output, e.g.
    'user:www-data:r-x' and 'default:user:www-data:r-x'."""
    entries = set()
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        fields = line.split(":")
        named = fields[-2] if len(fields) >= 3 else ""
        if named and fields[-3] in ("user", "group"):
            entries.add(line.split("\t")[0].strip())
    return frozenset(entries)


def parse_apache_modules(names: list[str]) -> frozenset[str]:
    """Enabled modules from the file names in mods-enabled (x.load, x.conf)."""
    return frozenset(n[: -len(".load")] for n in names if n.endswith(".load"))
