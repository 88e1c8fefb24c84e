"""render.common.check_value and render.supervisor.command_line take a one-pass fast
path for clean values: they accept and refuse exactly what the per-character rules
say (control characters, the forbidden ones; for supervisord also whitespace, what
is not printable and its special characters)."""

from __future__ import annotations

import random

from phphost.render.common import check_value
from phphost.render.supervisor import _SPECIAL, command_line

CHARS = [chr(i) for i in range(0x250)] + ["\u00a0", "\u2028", "\u3000", "\ufeff", "]", "^"]


def _accepts(fn: object, *args: object) -> bool:
    try:
        fn(*args)  # type: ignore[operator]
    except ValueError:
        return False
    return True


def test_same_answers_as_the_character_rules() -> None:
    rnd = random.Random(12)  # noqa: S311 - reproducible test data
    for forbidden in ("", '"', "]\\^-", "<>&\"'", " "):
        for _ in range(3000):
            v = "".join(rnd.choice(CHARS) for _ in range(rnd.randint(0, 4)))
            clean = all(ord(c) >= 0x20 and ord(c) != 0x7F and c not in forbidden for c in v)
            assert _accepts(check_value, v, "x", forbidden) == clean, (v, forbidden)
    for _ in range(10000):
        v = "".join(rnd.choice(CHARS) for _ in range(rnd.randint(0, 4)))
        clean = bool(v) and all(not c.isspace() and c.isprintable() and c not in _SPECIAL
                                for c in v)
        assert _accepts(command_line, [v]) == clean, repr(v)
