"""Load, check and remove phphost's nftables table (docs/network.md). The rendered
file (layout.NFT_CONF) starts with `table inet phphost` + `delete table inet
phphost`, so one `nft -f` replaces the whole table atomically. After a load the
sha256 of `nft list table inet phphost` is recorded (layout.NFT_LOADED): plan
compares it with the live listing, so a table flushed or deleted by hand is noticed
and loaded again."""

from __future__ import annotations

import os

from phphost import files, layout
from phphost.errors import HostError
from phphost.facts.nftables import live
from phphost.render.nftables import digest, table_name
from phphost.runner import run


def _nft(*args: str, check: bool = True, input_text: str | None = None) -> str:
    if not os.path.exists(layout.NFT_BINARY):
        raise HostError(f"{layout.NFT_BINARY} is missing: the pools' network policy needs "
                        "nftables (apt-get install nftables; scripts/setup-demo installs it)")
    proc = run([layout.NFT_BINARY, *args], check=check, input_text=input_text)
    return proc.stdout if proc.returncode == 0 else ""


def check(content: str) -> None:
    """`nft -c`: parse and validate against the kernel without changing anything
    (user and group names must exist by then)."""
    try:
        _nft("-c", "-f", "-", input_text=content)
    except HostError as err:
        raise HostError(f"the rendered {layout.NFT_CONF} does not load ({err}); nothing "
                        "was changed") from err


def load(path: str = layout.NFT_CONF) -> None:
    _nft("-f", path)
    record()


def load_text(content: str) -> None:
    _nft("-f", "-", input_text=content)
    record()


def record() -> None:
    listing = live()
    if listing is None:
        raise HostError(f"nft loaded {layout.NFT_CONF} but table {table_name()} is missing")
    files.atomic_write(layout.NFT_LOADED, digest(listing) + "\n", 0o600)


def delete() -> None:
    """Remove the table (when there is one) and the recorded digest."""
    if live() is not None:
        family, name = layout.NFT_TABLE
        _nft("delete", "table", family, name)
    files.remove(layout.NFT_LOADED)
