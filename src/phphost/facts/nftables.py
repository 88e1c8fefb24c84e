"""Read phphost's nftables table (docs/network.md): the live listing and the digest
recorded after the last load. Read-only; host/nftables.py loads and removes it."""

from __future__ import annotations

import os

from phphost import layout
from phphost.files import read_text
from phphost.runner import run


def live() -> str | None:
    """`nft list table inet phphost`, or None when there is no such table (or no nft)."""
    if not os.path.exists(layout.NFT_BINARY):
        return None
    family, name = layout.NFT_TABLE
    proc = run([layout.NFT_BINARY, "list", "table", family, name], check=False)
    return proc.stdout if proc.returncode == 0 else None


def loaded_digest() -> str | None:
    text = read_text(layout.NFT_LOADED)
    return text.strip() if text else None
