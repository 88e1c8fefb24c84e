"""verify's report rendering: the matrix text, JSON and exit status. Pure."""

from __future__ import annotations

import json

from phphost.exitcodes import ExitCode
from phphost.verify.matrix import (
    exit_status,
    render_matrix,
    report_json,
    summarize,
)
from phphost.verify.result import AttackInfo, Cell, Report, Verdict

B, X, NA, E = Verdict.BLOCKED, Verdict.BREACHED, Verdict.NA, Verdict.ERROR


def cell(attack: str, tenant: str, verdict: Verdict, target: str | None = None,
         attacker: str | None = None) -> Cell:
    return Cell(attack=attack, family=attack.split(".")[0], tenant=tenant,
                attacker=attacker or f"pool:{tenant}", target=target, verdict=verdict,
                tried=f"tried {attack}" if verdict is not NA else "",
                evidence=f"evidence {attack} {verdict.value}")


def report(*cells: Cell) -> Report:
    attacks = tuple(AttackInfo(a, a.split(".")[0], f"about {a}")
                    for a in dict.fromkeys(c.attack for c in cells))
    return Report(spec="demo.toml", run_id="abc123", tenants=("blog", "ncs"),
                  attacks=attacks, cells=cells)


MIXED = report(
    cell("files.read-code", "blog", B, "tenant:ncs"),
    cell("files.read-code", "ncs", B, "tenant:blog"),
    cell("files.read-code", "ncs", X, "tenant:blog", attacker="pool:chords"),
    cell("jail.escape", "blog", NA),
    cell("jail.escape", "ncs", NA),
    cell("fpm.status-http", "blog", E, attacker="site:blog"),
    cell("fpm.status-http", "ncs", B, attacker="site:files"),
)


def test_matrix_text_is_exact() -> None:
    assert render_matrix(MIXED) == (
        "phphost verify demo.toml (run abc123)\n"
        "\n"
        "attack           blog     ncs\n"
        "files.read-code  blocked  BREACHED 1/2\n"
        "jail.escape      n/a      n/a\n"
        "fpm.status-http  error    blocked\n"
        "\n"
        "BREACHED  files.read-code  pool:chords -> tenant:blog\n"
        "    tried:    tried files.read-code\n"
        "    evidence: evidence files.read-code BREACHED\n"
        "error     fpm.status-http  site:blog\n"
        "    tried:    tried fpm.status-http\n"
        "    evidence: evidence fpm.status-http error\n"
        "\n"
        "7 cells: 3 blocked, 1 BREACHED, 1 error, 2 n/a\n"
    )


def test_verbose_lists_every_cell() -> None:
    text = render_matrix(MIXED, verbose=True)
    assert text.count("    evidence: ") == len(MIXED.cells)
    assert "n/a       jail.escape  pool:blog\n    evidence: evidence jail.escape n/a" in text


def test_summarize_takes_the_worst_and_counts_it() -> None:
    assert summarize([]) == "-"
    assert summarize([cell("a.b", "t", B), cell("a.b", "t", NA)]) == "blocked"
    assert summarize([cell("a.b", "t", X), cell("a.b", "t", X)]) == "BREACHED"
    assert summarize([cell("a.b", "t", E), cell("a.b", "t", B)]) == "error 1/2"
    assert summarize([cell("a.b", "t", E), cell("a.b", "t", X)]) == "BREACHED 1/2"


def test_exit_status() -> None:
    assert exit_status(MIXED) == ExitCode.BREACHED
    assert exit_status(report(cell("a.b", "blog", B), cell("a.b", "ncs", E))) == \
        ExitCode.INCONCLUSIVE
    assert exit_status(report(cell("a.b", "blog", B), cell("a.b", "ncs", NA))) == ExitCode.OK
    assert ExitCode.OK == 0 and ExitCode.BREACHED != ExitCode.INCONCLUSIVE


def test_json_has_every_cell_and_the_summary() -> None:
    data = json.loads(report_json(MIXED))
    assert data["breached"] is True and data["exit_status"] == ExitCode.BREACHED
    assert data["summary"] == {"blocked": 3, "BREACHED": 1, "n/a": 2, "error": 1}
    assert len(data["cells"]) == len(MIXED.cells)
    assert data["cells"][2] == {
        "attack": "files.read-code", "family": "files", "tenant": "ncs",
        "attacker": "pool:chords", "target": "tenant:blog", "verdict": "BREACHED",
        "tried": "tried files.read-code", "evidence": "evidence files.read-code BREACHED"}
    assert [a["id"] for a in data["attacks"]] == ["files.read-code", "jail.escape",
                                                  "fpm.status-http"]
