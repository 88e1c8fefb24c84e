"""The stages of a migration, by number and by name. Pure."""

from __future__ import annotations

from phphost.errors import PlanError
from phphost.exitcodes import ExitCode

STAGES = ("start", "php-off", "one-pool", "move", "modphp-off", "pools", "identities", "jails")
BUILT = 7          # the highest stage migrate can bring about today (docs/migrate.md)


class StageError(PlanError):
    """An unknown stage, or one not built yet: nothing was changed."""

    exit_code: int = ExitCode.USAGE


def parse_stage(text: str) -> int:
    """0..7 or a stage's name; StageError naming the stages otherwise."""
    known = ", ".join(f"{i} {name}" for i, name in enumerate(STAGES))
    value = text.strip().lower()
    stage = int(value) if value.isdigit() else (STAGES.index(value) if value in STAGES else -1)
    if not 0 <= stage < len(STAGES):
        raise StageError(f"--to {text!r}: no such stage. The stages are: {known}")
    if stage > BUILT:
        raise StageError(f"--to {text!r}: stage {stage} ({STAGES[stage]}) is not built yet; "
                         f"migrate goes as far as stage {BUILT} ({STAGES[BUILT]})")
    return stage


def name(stage: int) -> str:
    return f"{stage} ({STAGES[stage]})"
