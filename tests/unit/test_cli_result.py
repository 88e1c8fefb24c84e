"""One result object per command: text, JSON and the exit status come from it."""

from __future__ import annotations

import io
import json

from phphost.cli.audit import AuditResult
from phphost.cli.jail import JailResult, NotJailed
from phphost.cli.result import ApplyResult, PlanResult
from phphost.cli.status import StatusResult
from phphost.exitcodes import ExitCode
from phphost.jail.diff import ListingRow
from phphost.plan import actions as A

CHANGE = A.WriteFile("spec changed", path="/etc/phphost/fpm/blog.conf", content="x\n")
STATE = A.SaveState("state", state={"pools": ["blog"]})


def emitted(result: PlanResult | ApplyResult | StatusResult | AuditResult | JailResult
            | NotJailed, as_json: bool) -> tuple[str, ExitCode]:
    out = io.StringIO()
    code = result.emit(as_json, out)
    return out.getvalue(), code


def test_plan_result_owns_changes_pending() -> None:
    text, code = emitted(PlanResult(A.Plan((CHANGE, STATE)), interrupted=True), False)
    assert code == ExitCode.CHANGES and code == 10
    assert text.startswith("note: an earlier apply was interrupted")
    assert "* create file /etc/phphost/fpm/blog.conf\n    because: spec changed\n" in text
    assert text.endswith("\n1 change(s).\n")
    data, code = emitted(PlanResult(A.Plan((STATE,)), interrupted=True), True)
    assert code == ExitCode.OK and json.loads(data)["changes"] == [] and "note" not in data


def test_apply_result_text_and_json() -> None:
    result = ApplyResult(A.Plan((CHANGE, STATE)), ["create file x"], ["path x"])
    assert result.text() == ("Rolled back 1 change(s) of an interrupted apply first.\n"
                             "1 change(s) made.\n")
    data = json.loads(result.json())
    assert data["changed"] == ["create file x"] and data["recovered"] == ["path x"]
    assert "fingerprint" in data["plan"] and result.exit_code == ExitCode.OK
    assert ApplyResult(A.Plan(()), [], []).text() == "No changes: the host already matches.\n"


def test_status_result_fails_when_a_pool_is_down() -> None:
    up = {"pool": "blog", "running": True, "state": "RUNNING", "master_pid": 7, "pm": "static"}
    down = {"pool": "shop", "running": False, "state": "FATAL", "master_pid": None,
            "error": "connect refused"}
    assert StatusResult([up]).exit_code == ExitCode.OK
    text, code = emitted(StatusResult([up, down]), False)
    assert code == ExitCode.NOT_RUNNING
    assert text.splitlines()[0].split() == ["pool", "state", "master", "pm", "active", "idle",
                                            "total", "accepted", "memory", "pids", "cpu"]
    assert text.endswith("  ! connect refused\n")
    assert json.loads(StatusResult([down]).json()) == [down]


def test_audit_result_follows_the_threshold() -> None:
    from phphost.audit.findings import Finding

    low = Finding("PHA017", "low", "/etc/x", "differs", "apply")
    assert AuditResult([low], "info").exit_code == ExitCode.FINDINGS
    assert AuditResult([low], "low").exit_code == ExitCode.OK
    assert json.loads(AuditResult([low], "info").json())["failed"] is True
    assert AuditResult([low], "info").text().startswith("PHA017 LOW      /etc/x\n")


def test_jail_results() -> None:
    rows = [ListingRow("/etc/passwd", "file", "generated", "0444", "root", "passwd")]
    text, code = emitted(JailResult(rows), False)
    assert code == ExitCode.OK and text.startswith("path") and text.endswith("passwd: 1\n")
    assert json.loads(JailResult(rows).json())[0]["path"] == "/etc/passwd"
    assert NotJailed("p").json() == NotJailed("p").text() == \
        "pool p is not jailed (jail.enabled = false)\n"
