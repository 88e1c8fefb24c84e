"""What `phphost check` found: one row per (pool, feature). Pure data.

A row's verdict follows from whether the feature is declared and whether it worked:

| declared | worked | verdict |
|---|---|---|
| yes | yes | ok |
| yes | no | FAIL |
| no | no | absent (as expected) |
| no | yes | PRESENT (though not declared): a failure |

plus n/a (the pool is not jailed), skipped (could not be exercised on this host, with
the reason; not a failure) and ERROR (the probe itself did not run; a failure).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from enum import StrEnum

from phphost.exitcodes import ExitCode


class Verdict(StrEnum):
    OK = "ok"
    FAIL = "FAIL"
    ABSENT = "absent"
    PRESENT = "PRESENT"
    NA = "n/a"
    SKIPPED = "skipped"
    ERROR = "ERROR"


FAILURES = frozenset({Verdict.FAIL, Verdict.PRESENT, Verdict.ERROR})

# how a verdict reads in the table
WORDING = {
    Verdict.OK: "ok",
    Verdict.FAIL: "FAIL",
    Verdict.ABSENT: "absent as expected",
    Verdict.PRESENT: "PRESENT though not declared",
    Verdict.NA: "n/a",
    Verdict.SKIPPED: "skipped",
    Verdict.ERROR: "ERROR",
}

# Rows of every pool, in this order. The first three are base checks (always
# declared, also run in unjailed pools); the rest are the jail features of the spec.
BASE_CHECKS = ("user", "tmp", "zoneinfo")
FEATURE_CHECKS = ("dns", "tls", "mail", "sessions", "iconv", "locale", "proc", "mysql",
                  "shell", "phplibs")
CHECKS = BASE_CHECKS + FEATURE_CHECKS


@dataclass(frozen=True)
class Outcome:
    """What exercising one feature showed. `worked`: the feature is there (for an
    undeclared one: PRESENT). `wrong`: it is there but does not do what it must (a
    declared one then FAILs). `skip`: a declared feature could not be exercised on
    this host (why)."""

    worked: bool
    detail: str
    skip: str = ""
    wrong: str = ""


@dataclass(frozen=True)
class Row:
    feature: str
    declared: bool | None   # None: a base check, always on
    verdict: Verdict
    detail: str

    @property
    def failed(self) -> bool:
        return self.verdict in FAILURES


@dataclass(frozen=True)
class PoolReport:
    pool: str
    user: str
    jailed: bool
    rows: tuple[Row, ...]
    # what the pool's PHP failed on since its master started, and the feature that
    # provides it (from its FPM log; informative, not a failure: docs/check.md)
    hints: tuple[str, ...] = ()

    @property
    def failed(self) -> bool:
        return any(r.failed for r in self.rows)


@dataclass(frozen=True)
class Report:
    spec: str
    run_id: str
    pools: tuple[PoolReport, ...]

    @property
    def failed(self) -> bool:
        return any(p.failed for p in self.pools)

    def row(self, pool: str, feature: str) -> Row:
        found = next(p for p in self.pools if p.pool == pool)
        return next(r for r in found.rows if r.feature == feature)

    def counts(self) -> dict[str, int]:
        out = {str(v): 0 for v in Verdict}
        for p in self.pools:
            for r in p.rows:
                out[str(r.verdict)] += 1
        return out


def verdict_of(declared: bool | None, outcome: Outcome) -> Verdict:
    """Pure: the table above."""
    if declared is False:
        return Verdict.PRESENT if outcome.worked else Verdict.ABSENT
    if outcome.skip:
        return Verdict.SKIPPED
    return Verdict.OK if outcome.worked and not outcome.wrong else Verdict.FAIL


def row_of(feature: str, declared: bool | None, outcome: Outcome) -> Row:
    verdict = verdict_of(declared, outcome)
    if verdict is Verdict.SKIPPED:
        detail = outcome.skip
    elif verdict is Verdict.FAIL:
        detail = outcome.wrong or outcome.detail
    else:
        detail = outcome.detail
    return Row(feature, declared, verdict, detail)


def exit_status(report: Report) -> ExitCode:
    return ExitCode.CHECK_FAILED if report.failed else ExitCode.OK


def report_json(report: Report) -> str:
    data = dataclasses.asdict(report)
    data["failed"] = report.failed
    data["counts"] = report.counts()
    return json.dumps(data, indent=1) + "\n"
