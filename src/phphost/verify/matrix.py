"""The verify report as text (a matrix: attack x attacking tenant) and as JSON, and
the exit status it maps to. Pure."""

from __future__ import annotations

import json
from collections.abc import Iterable

from phphost.exitcodes import ExitCode
from phphost.verify.result import SEVERITY, Cell, Report, Verdict

_GAP = "  "


def exit_status(report: Report) -> ExitCode:
    if report.breached:
        return ExitCode.BREACHED
    return ExitCode.INCONCLUSIVE if report.count(Verdict.ERROR) else ExitCode.OK


def summarize(cells: Iterable[Cell]) -> str:
    """One matrix cell from the cells of one attack and one tenant: the worst verdict,
    with how many of the tenant's attacker/target pairs had it when not all did."""
    cells = list(cells)
    if not cells:
        return "-"
    worst = max((c.verdict for c in cells), key=lambda v: SEVERITY[v])
    hits = sum(1 for c in cells if c.verdict is worst)
    if worst in (Verdict.BREACHED, Verdict.ERROR) and hits < len(cells):
        return f"{worst.value} {hits}/{len(cells)}"
    return worst.value


def _grid(report: Report) -> list[list[str]]:
    rows = [["attack", *report.tenants]]
    for attack in report.attacks:
        mine = [c for c in report.cells if c.attack == attack.id]
        rows.append([attack.id, *(summarize(c for c in mine if c.tenant == t)
                                  for t in report.tenants)])
    return rows


def _format_rows(rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [_GAP.join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip()
            for row in rows]


def _detail(cell: Cell) -> list[str]:
    where = cell.attacker + (f" -> {cell.target}" if cell.target else "")
    lines = [f"{cell.verdict.value:<8}  {cell.attack}  {where}"]
    if cell.tried:
        lines.append(f"    tried:    {cell.tried}")
    lines.append(f"    evidence: {cell.evidence}")
    return lines


def _summary_line(report: Report) -> str:
    parts = [f"{report.count(v)} {v.value}" for v in
             (Verdict.BLOCKED, Verdict.BREACHED, Verdict.ERROR, Verdict.NA)]
    return f"{len(report.cells)} cells: " + ", ".join(parts)


def render_matrix(report: Report, verbose: bool = False) -> str:
    """The matrix, then the details of every cell that was not blocked (every cell
    with verbose), then a summary line."""
    lines = [f"phphost verify {report.spec} (run {report.run_id})", ""]
    lines += _format_rows(_grid(report))
    shown = [c for c in report.cells
             if verbose or c.verdict in (Verdict.BREACHED, Verdict.ERROR)]
    if shown:
        lines.append("")
    for cell in shown:
        lines += _detail(cell)
    lines += ["", _summary_line(report)]
    return "\n".join(lines) + "\n"


def report_json(report: Report) -> str:
    data = {
        "spec": report.spec,
        "run": report.run_id,
        "breached": report.breached,
        "exit_status": exit_status(report),
        "summary": {v.value: report.count(v) for v in Verdict},
        "tenants": list(report.tenants),
        "attacks": [{"id": a.id, "family": a.family, "description": a.description}
                    for a in report.attacks],
        "cells": [{"attack": c.attack, "family": c.family, "tenant": c.tenant,
                   "attacker": c.attacker, "target": c.target, "verdict": c.verdict.value,
                   "tried": c.tried, "evidence": c.evidence} for c in report.cells],
    }
    return json.dumps(data, indent=1)
