"""Split a single-file spec into a spec directory (conf.d style), as a user would:
00-global.toml with [apache], [exporter] and the templates, then one file per
tenant with its [tenants.T], [pools.*] and [sites.*]. Text-level (comments kept)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

_HEADER = re.compile(r"^\[([a-z]+)(?:\.([A-Za-z0-9_-]+))?\]")


def sections(text: str) -> list[tuple[str, str, str]]:
    """(kind, name, text) of every [table] of `text`; lines before the first are dropped."""
    out: list[tuple[str, str, list[str]]] = []
    for line in text.splitlines():
        match = _HEADER.match(line)
        if match:
            out.append((match[1], match[2] or "", []))
        if out:
            out[-1][2].append(line)
    return [(kind, name, "\n".join(lines).rstrip() + "\n") for kind, name, lines in out]


def split_spec(text: str, directory: Path) -> dict[str, str]:
    """Write the files of the directory; returns file name -> text."""
    raw = tomllib.loads(text)
    files: dict[str, list[str]] = {"00-global.toml": []}
    for kind, name, body in sections(text):
        if kind in ("tenants", "pools", "sites"):
            tenant = name if kind == "tenants" else str(raw[kind][name]["tenant"])
            files.setdefault(f"{tenant}.toml", []).append(body)
        else:
            files["00-global.toml"].append(body)
    directory.mkdir(parents=True, exist_ok=True)
    written = {fname: "\n".join(parts) for fname, parts in files.items()}
    for fname, body in written.items():
        (directory / fname).write_text(body)
    return written
