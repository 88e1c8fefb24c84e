"""Readers of PHP-FPM pool files, php.ini text and FPM -d flags. Pure."""

from __future__ import annotations

import itertools
import re
import shlex
from dataclasses import dataclass, field

# FPM's compiled-in listen.backlog on Linux when a pool sets none
FPM_DEFAULT_BACKLOG = 511
_TRUE = ("1", "on", "yes", "true")


@dataclass(frozen=True)
class FpmPool:
    name: str
    file: str
    line: int                      # line of the [name] header
    master: str                    # config file of the master that runs this pool
    values: dict[str, str] = field(default_factory=dict)    # keys lowercased
    lines: dict[str, int] = field(default_factory=dict)

    def get(self, key: str, default: str = "") -> str:
        return self.values.get(key, default)

    def where(self, key: str = "") -> str:
        return f"{self.file}:{self.lines.get(key, self.line)}"

    def number(self, key: str, default: int) -> int:
        try:
            return int(self.values.get(key, str(default)), 0)
        except ValueError:
            return default


@dataclass(frozen=True)
class Listen:
    kind: str            # "unix" or "tcp"
    path: str = ""       # unix
    host: str = ""       # tcp; "" = every address
    port: int = 0


def _strip_value(raw: str) -> str:
    value = raw.strip()
    if value[:1] in "\"'" and value[-1:] == value[:1] and len(value) >= 2:
        return value[1:-1]
    return value.split(";", 1)[0].strip()


def parse_ini(text: str) -> list[tuple[str, int, str, str]]:
    """(section, line, key, value) of every `key = value`; section "" before any header."""
    out: list[tuple[str, int, str, str]] = []
    section = ""
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith((";", "#")):
            continue
        header = re.fullmatch(r"\[([^\]]+)\]", line)
        if header:
            section = header.group(1).strip()
            continue
        if "=" in line:
            key, value = line.split("=", 1)
            out.append((section, number, key.strip().lower(), _strip_value(value)))
    return out


def parse_fpm(file: str, text: str, master: str) -> list[FpmPool]:
    """The pools of one FPM config file ([global] is not a pool)."""
    pools: dict[str, FpmPool] = {}
    for section, number, key, value in parse_ini(text):
        if not section or section.lower() == "global":
            continue
        pool = pools.setdefault(section, FpmPool(section, file, _header_line(text, section),
                                                 master))
        pool.values[key] = value
        pool.lines[key] = number
    return list(pools.values())


def _header_line(text: str, section: str) -> int:
    for number, raw in enumerate(text.splitlines(), 1):
        if raw.strip() == f"[{section}]":
            return number
    return 1


def ini_values(text: str, prefix: str = "") -> dict[str, str]:
    """key -> value of a php.ini text (later wins), keys starting with prefix."""
    return {key: value for _, _, key, value in parse_ini(text) if key.startswith(prefix)}


def d_flags(command: str) -> dict[str, str]:
    """`-d key=value` flags of a command line."""
    try:
        argv = shlex.split(command)
    except ValueError:
        argv = command.split()
    out: dict[str, str] = {}
    for flag, arg in itertools.pairwise(argv):
        if flag == "-d" and "=" in arg:
            key, value = arg.split("=", 1)
            out[key.strip().lower()] = value.strip()
    return out


def supervisor_command(text: str) -> str:
    """The `command=` of a supervisord program file ('' when none)."""
    for _, _, key, value in parse_ini(text):
        if key == "command":
            return value
    return ""


def listen_of(value: str) -> Listen:
    """FPM's `listen`: a path, 'host:port', '[v6]:port' or a bare port (every address)."""
    if value.startswith("/"):
        return Listen("unix", path=value)
    host, sep, port = value.rpartition(":")
    if not sep:
        host, port = "", value
    host = host.strip("[]")
    every = host in ("0.0.0.0", "::", "*")  # noqa: S104 (recognised, not bound)
    return Listen("tcp", host="" if every else host,
                  port=int(port) if port.isdigit() else 0)


def is_loopback(host: str) -> bool:
    return host == "localhost" or host.startswith("127.") or host == "::1"


def ini_on(value: str | None, default: bool) -> bool:
    if value is None:
        return default
    return value.strip().lower() in _TRUE
