"""The extension set a pool's master loads (spec/extensions.py)."""

from __future__ import annotations

import os

import pytest

from phphost import layout
from phphost.errors import ValidationFailed
from phphost.host import staging
from phphost.plan import actions as A
from phphost.spec.extensions import BASE, KNOWN, closure


def test_base_is_known_and_closed() -> None:
    assert set(BASE) <= set(KNOWN)
    assert set(closure(())) == set(BASE)


def test_closure_adds_what_an_extension_needs_and_loads_it_first() -> None:
    names = closure(("xsl", "pdo_sqlite", "gd"))
    assert len(names) == len(set(names))
    assert {"xsl", "dom", "pdo_sqlite", "pdo", "gd"} <= set(names)
    for ext in names:
        for dep in KNOWN[ext]:
            assert names.index(dep) < names.index(ext), (dep, ext)


def _program(pool: str, *exts: str) -> A.WriteFile:
    flags = " ".join(f"-d extension={e}" for e in exts)
    return A.WriteFile("program", layout.supervisor_conf(pool),
                       f"[program:x]\ncommand=/x -- /usr/sbin/php-fpm8.2 {flags} -d a=b\n")


def test_apply_names_what_pools_load() -> None:
    actions = [_program("a", "mysqlnd", "gd"), _program("b", "gd", "intl"),
               A.WriteFile("other", "/etc/x.conf", "command=-d extension=zip\n")]
    assert staging.extensions_written(actions) == ["gd", "intl", "mysqlnd"]


@pytest.mark.skipif(not os.access(layout.FPM_BINARY, os.X_OK), reason="no php-fpm")
def test_an_extension_that_is_not_installed_fails_apply_before_any_change() -> None:
    staging.validate_extensions([_program("a", *BASE)])         # Debian's php-fpm has these
    with pytest.raises(ValidationFailed) as err:
        staging.validate_extensions([_program("a", "mysqlnd", "phphostnosuchext")])
    assert "phphostnosuchext" in str(err.value) and "Nothing was changed" in str(err.value)


def test_import_keeps_what_mod_php_loaded() -> None:
    from phphost.importer.php import pool_extensions
    modphp = {n: f"/etc/php/8.2/apache2/conf.d/20-{n}.ini:2"
              for n in ("mysqli", "gd", "intl", "opcache", "someones_own")}
    assert pool_extensions(modphp) == ["gd", "intl"]     # mysqli: base; opcache: always
