"""A phphost spec as TOML text: [section.name] tables of scalars, string lists and
inline tables, with comment lines. Pure (tomllib reads, the stdlib writes no TOML)."""

from __future__ import annotations

import json
import re
from typing import Any

_BARE = re.compile(r"^[A-Za-z0-9_-]+$")


def key(text: str) -> str:
    return text if _BARE.match(text) else json.dumps(text, ensure_ascii=False)


def value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return str(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)     # JSON string escapes are valid TOML
    if isinstance(v, list | tuple):
        return "[" + ", ".join(value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{key(k)} = {value(x)}" for k, x in v.items()) + " }" \
            if v else "{}"
    raise TypeError(f"cannot write {type(v).__name__} as TOML")


def comment(text: str) -> list[str]:
    return [f"# {line}".rstrip() for line in text.splitlines()] or ["#"]


def table(header: str, body: dict[str, Any], notes: list[str] | None = None) -> list[str]:
    lines = [line for note in notes or [] for line in comment(note)]
    lines.append(f"[{header}]")
    lines += [f"{key(k)} = {value(v)}" for k, v in body.items() if v is not None]
    return lines
