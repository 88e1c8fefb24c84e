"""Every attack verify knows, in the order they run, and selection by id or family."""

from __future__ import annotations

from collections.abc import Sequence
from fnmatch import fnmatchcase

from phphost.verify import (
    attacks_answers,
    attacks_apache,
    attacks_files,
    attacks_fpm,
    attacks_htaccess,
    attacks_jail,
    attacks_network,
    attacks_procs,
    attacks_resources,
    attacks_root,
)
from phphost.verify.attack import Attack

ALL: tuple[Attack, ...] = (
    *attacks_files.ATTACKS,
    *attacks_procs.ATTACKS,
    *attacks_fpm.ATTACKS,
    *attacks_apache.ATTACKS,
    *attacks_htaccess.ATTACKS,
    *attacks_jail.ATTACKS,
    *attacks_network.ATTACKS,
    *attacks_resources.ATTACKS,
    *attacks_root.ATTACKS,
    *attacks_answers.ATTACKS,
)
FAMILIES = tuple(dict.fromkeys(a.family for a in ALL))


def select(patterns: Sequence[str] = (), attacks: Sequence[Attack] = ALL) -> list[Attack]:
    """Attacks whose id or family matches any glob pattern (all when none given)."""
    if not patterns:
        return list(attacks)
    return [a for a in attacks
            if any(fnmatchcase(a.id, p) or fnmatchcase(a.family, p) for p in patterns)]
