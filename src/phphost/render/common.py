"""Shared bits of the renderers. Pure."""

from __future__ import annotations

import functools
import re

HEADER = "Managed by phphost: changes here are overwritten by `phphost apply`."


def check_value(value: str, what: str, forbidden: str = "") -> str:
    """`value` unchanged, or ValueError when it holds a control character (a newline
    would start a new directive) or one of `forbidden`."""
    if not _unsafe(forbidden).search(value):
        return value        # the common case, in one regex pass instead of one per char
    bad = next((c for c in value if ord(c) < 0x20 or ord(c) == 0x7F or c in forbidden), None)
    if bad is not None:
        raise ValueError(f"{what}: {value!r} contains {bad!r}, which cannot be written "
                         "safely into this config file")
    return value


@functools.cache
def _unsafe(forbidden: str) -> re.Pattern[str]:
    """Any control character or any of `forbidden`."""
    return re.compile("|".join(["[\x00-\x1f\x7f]", *(re.escape(c) for c in forbidden)]))
