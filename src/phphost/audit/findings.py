"""What an audit rule reports. Pure data."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

Severity = Literal["info", "low", "medium", "high", "critical"]
SEVERITIES: tuple[Severity, ...] = ("info", "low", "medium", "high", "critical")


def rank(severity: Severity) -> int:
    return SEVERITIES.index(severity)


@dataclass(frozen=True)
class Finding:
    rule: str            # PHA001 ...
    severity: Severity
    where: str           # spec key, file (file:line) or host path
    problem: str         # what is wrong
    remedy: str          # what to do about it

    def to_json(self) -> dict[str, str]:
        return asdict(self)


def sort_findings(findings: list[Finding]) -> list[Finding]:
    """Most severe first, then by rule and place."""
    return sorted(findings, key=lambda f: (-rank(f.severity), f.rule, f.where))


def above(findings: list[Finding], threshold: Severity) -> list[Finding]:
    """The findings more severe than threshold."""
    return [f for f in findings if rank(f.severity) > rank(threshold)]


def some(paths: list[str] | tuple[str, ...], limit: int = 5) -> str:
    """A few of paths for a message: 'a, b, c (and 7 more)'."""
    shown = ", ".join(paths[:limit])
    rest = len(paths) - limit
    return f"{shown} (and {rest} more)" if rest > 0 else shown
