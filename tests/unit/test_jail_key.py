"""The jail cache's key (facts/jailcache.jail_key) leaves out the pool's FPM settings a
jail does not read, so that a change of max_children does not make the next plan walk
that pool's jail again; every setting jail/ reads is in the key."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

from phphost.facts import jailcache
from phphost.spec.model import Pool, PoolSettings, Tenant

JAIL = Path(jailcache.__file__).resolve().parents[1] / "jail"


def settings_read_by_jail() -> set[str]:
    """Every `X.settings.NAME` in jail/'s modules."""
    names = set()
    for path in JAIL.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute) \
                    and node.value.attr == "settings":
                names.add(node.attr)
    return names


def test_the_key_has_every_setting_a_jail_reads() -> None:
    assert settings_read_by_jail() <= set(jailcache.JAIL_SETTINGS)
    assert "tmp_size" in settings_read_by_jail()        # the scan above finds them


def key(pool: Pool) -> str:
    return jailcache.jail_key("code", pool, Tenant("t", "t", "t", "/srv/t"), "/jails/p")


def test_a_setting_no_jail_reads_keeps_the_key() -> None:
    pool = Pool("p", "t", "php-p", "/run/p.sock", PoolSettings())
    more = dataclasses.replace(pool, settings=dataclasses.replace(
        pool.settings, max_children=pool.settings.max_children + 1))
    assert key(more) == key(pool)
    tmp = dataclasses.replace(pool, settings=dataclasses.replace(pool.settings,
                                                                 tmp_size="99m"))
    assert key(tmp) != key(pool)
    assert key(dataclasses.replace(pool, user="php-q")) != key(pool)
