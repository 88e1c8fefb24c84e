"""A phphost spec as TOML text: [section.name] tables of scalars, string lists and
inline tables, with comment lines. Pure (tomllib reads, the stdlib writes no TOML)."""

from __future__ import annotations

import json
import re
from typing import Any

from phphost.importer.errors import SourceError

_BARE = re.compile(r"^[A-Za-z0-9_-]+$")
# what TOML forbids raw (C0 but tab, DEL) plus C1, which terminals may act on: import
# writes names and .htaccess text a tenant chose, and prints the spec and its notes
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")     # a byte of a name that is not UTF-8


def printable(text: str) -> str:
    """Pure: control characters as \\xNN and bytes that are not UTF-8 (surrogate
    escapes) as \\xNN too: safe in a TOML comment and on a terminal."""
    text = _SURROGATE.sub(lambda m: f"\\x{ord(m[0]) & 0xff:02x}", text)
    return _CONTROL.sub(lambda m: f"\\x{ord(m[0]):02x}", text)


def _string(text: str) -> str:
    if _SURROGATE.search(text):
        raise SourceError(f"{printable(text)}: not valid UTF-8, so a spec cannot name it. "
                          "Rename it (UTF-8 only), then run import again; nothing was written")
    quoted = json.dumps(text, ensure_ascii=False)     # JSON string escapes are valid TOML
    return _CONTROL.sub(lambda m: f"\\u{ord(m[0]):04x}", quoted)   # DEL and C1 too


def key(text: str) -> str:
    return text if _BARE.match(text) else _string(text)


def value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return str(v)
    if isinstance(v, str):
        return _string(v)
    if isinstance(v, list | tuple):
        return "[" + ", ".join(value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{key(k)} = {value(x)}" for k, x in v.items()) + " }" \
            if v else "{}"
    raise TypeError(f"cannot write {type(v).__name__} as TOML")


def comment(text: str) -> list[str]:
    return [f"# {printable(line)}".rstrip() for line in text.splitlines()] or ["#"]


def table(header: str, body: dict[str, Any], notes: list[str] | None = None) -> list[str]:
    lines = [line for note in notes or [] for line in comment(note)]
    lines.append(f"[{header}]")
    lines += [f"{key(k)} = {value(v)}" for k, v in body.items() if v is not None]
    return lines
