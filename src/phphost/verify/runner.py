"""Run attacks against the live host: every attack in every cell of its scope, one
cell's failure never stops the others, and everything placed is removed at the end."""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import Sequence

from phphost.errors import PhphostError
from phphost.spec.model import Model
from phphost.verify.attack import Attack, pairs_for
from phphost.verify.context import Ctx, Pair, Run
from phphost.verify.result import Cell, Report, Result, Verdict, verdict_of

# what a cell may raise and still be reported (as `error`) rather than stop the run
# (TypeError and LookupError too: a hostile probe answer of the wrong shape must cost
# its cell, never the run and its cleanup)
CELL_ERRORS = (PhphostError, OSError, ValueError, LookupError, TypeError,
               subprocess.SubprocessError)


def _cell(attack: Attack, pair: Pair, verdict: Verdict, tried: str, evidence: str) -> Cell:
    return Cell(attack=attack.id, family=attack.family, tenant=pair.tenant,
                attacker=pair.attacker, target=pair.target, verdict=verdict,
                tried=tried, evidence=evidence)


def run_cell(run: Run, attack: Attack, pair: Pair) -> Cell:
    try:
        result: Result = attack.run(Ctx(run, pair))
    except CELL_ERRORS as err:
        return _cell(attack, pair, Verdict.ERROR, "", f"{type(err).__name__}: {err}")
    return _cell(attack, pair, verdict_of(result), result.tried, result.evidence)


def run_attacks(model: Model, attacks: Sequence[Attack], run_id: str | None = None,
                ) -> tuple[Report, list[str]]:
    """(the report, what cleanup could not remove)."""
    run = Run.create(model, run_id or secrets.token_hex(4))
    cells: list[Cell] = []
    try:
        for attack in attacks:
            cells += [run_cell(run, attack, pair) for pair in pairs_for(model, attack.scope)]
    finally:
        problems = run.cleanup()
    tenants = tuple(sorted(t.name for t in model.tenants))
    report = Report(spec=model.source, run_id=run.run_id, tenants=tenants,
                    attacks=tuple(a.info for a in attacks), cells=tuple(cells))
    return report, problems
