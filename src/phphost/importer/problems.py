"""What import could not carry over, or carried over with a change, and what the admin
must decide. Pure data."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

# lost: not carried over at all; changed: carried over, but a visitor can see a
# difference; decide: import chose, the admin must confirm; note: for information
Kind = Literal["lost", "changed", "decide", "note"]
KINDS: tuple[Kind, ...] = ("lost", "changed", "decide", "note")


@dataclass(frozen=True)
class Problem:
    kind: Kind
    where: str           # file:line, or a path
    what: str            # what import found
    decision: str        # what the admin must decide or do

    def to_json(self) -> dict[str, str]:
        return asdict(self)

    def line(self) -> str:
        return f"{self.kind:7} {self.where}: {self.what}. {self.decision}"


def sort_problems(problems: list[Problem]) -> list[Problem]:
    """By kind (lost first), then place; duplicates dropped."""
    order = {k: i for i, k in enumerate(KINDS)}
    return sorted(set(problems), key=lambda p: (order[p.kind], _place(p.where), p.what))


def _place(where: str) -> tuple[str, int]:
    file, _, line = where.rpartition(":")
    return (file, int(line)) if file and line.isdigit() else (where, 0)
