"""`phphost check` as text: a table per pool, then a summary line. Pure."""

from __future__ import annotations

import re

from phphost.check.result import WORDING, PoolReport, Report, Row, Verdict

HEAD = ("feature", "declared", "result", "detail")
DETAIL_MAX = 110
# a detail quotes what the pool answered (errors, names): the tenant's bytes once it
# controls the pool; no escape sequence of them reaches the admin's terminal
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def declared_text(row: Row) -> str:
    if row.declared is None:
        return "always"
    return "yes" if row.declared else "no"


def _clip(text: str, width: int = DETAIL_MAX) -> str:
    one_line = _CONTROL.sub("?", " ".join(text.split()))
    return one_line if len(one_line) <= width else one_line[: width - 3] + "..."


def render_pool(pool: PoolReport) -> list[str]:
    where = "jailed" if pool.jailed else "not jailed"
    cells = [(r.feature, declared_text(r), WORDING[r.verdict], _clip(r.detail))
             for r in pool.rows]
    widths = [max(len(c[i]) for c in [HEAD, *cells]) for i in range(3)]
    lines = [f"pool {pool.pool} (user {pool.user}, {where})"]
    for cell in [HEAD, *cells]:
        lead = "  ".join(c.ljust(w) for c, w in zip(cell[:3], widths, strict=True))
        lines.append(f"  {lead}  {cell[3]}".rstrip())
    lines += [f"  hint: {hint}" for hint in pool.hints]
    return lines


def summary(report: Report) -> str:
    counts = report.counts()
    parts = [f"{n} {WORDING[Verdict(v)]}" for v, n in counts.items() if n]
    failed = sum(counts[str(v)] for v in (Verdict.FAIL, Verdict.PRESENT, Verdict.ERROR))
    verdict = f"{failed} FAILED" if failed else "all checks passed"
    return f"{len(report.pools)} pools: {', '.join(parts)}: {verdict}"


def render_report(report: Report) -> str:
    lines = [f"phphost check {report.spec} (run {report.run_id})", ""]
    for pool in report.pools:
        lines += render_pool(pool)
        lines.append("")
    lines.append(summary(report))
    return "\n".join(lines) + "\n"
