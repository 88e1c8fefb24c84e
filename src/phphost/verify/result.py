"""What one attack found in one cell, and the report of a whole run. Pure data."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Verdict(StrEnum):
    BLOCKED = "blocked"
    BREACHED = "BREACHED"
    NA = "n/a"
    ERROR = "error"


# how bad a verdict is when several cells are summed up into one
SEVERITY = {Verdict.NA: 0, Verdict.BLOCKED: 1, Verdict.ERROR: 2, Verdict.BREACHED: 3}


@dataclass(frozen=True)
class Result:
    """What an attack's run(ctx) returns: was it blocked, what was tried, what was seen.

    applicable=False means the attack does not apply to this cell (n/a); `evidence`
    then says why."""

    blocked: bool
    tried: str
    evidence: str
    applicable: bool = True


def not_applicable(why: str) -> Result:
    return Result(blocked=True, tried="", evidence=why, applicable=False)


def judged(breaches: list[str], tried: str, blocked_evidence: str) -> Result:
    """BREACHED with the breaches as evidence when there are any, else blocked."""
    if breaches:
        return Result(blocked=False, tried=tried, evidence="; ".join(breaches))
    return Result(blocked=True, tried=tried, evidence=blocked_evidence)


@dataclass(frozen=True)
class AttackInfo:
    id: str
    family: str
    description: str


@dataclass(frozen=True)
class Cell:
    """One attack by one attacker (a pool or a site of `tenant`) on one target."""

    attack: str
    family: str
    tenant: str            # the attacking tenant: the matrix column
    attacker: str          # "pool:NAME" or "site:NAME"
    target: str | None     # "tenant:NAME", "pool:NAME" or None
    verdict: Verdict
    tried: str
    evidence: str


@dataclass(frozen=True)
class Report:
    spec: str
    run_id: str
    tenants: tuple[str, ...]
    attacks: tuple[AttackInfo, ...]
    cells: tuple[Cell, ...]

    def count(self, verdict: Verdict) -> int:
        return sum(1 for c in self.cells if c.verdict is verdict)

    @property
    def breached(self) -> bool:
        return self.count(Verdict.BREACHED) > 0


def verdict_of(result: Result) -> Verdict:
    if not result.applicable:
        return Verdict.NA
    return Verdict.BLOCKED if result.blocked else Verdict.BREACHED
