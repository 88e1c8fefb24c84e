"""check's PHP probe: valid PHP, and its answers (run by the PHP CLI on this host,
unjailed) are what the judge expects: the PHP/Python contract without FPM."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from phphost.check import judge as J
from phphost.check.result import Verdict
from phphost.check.runner import probe_text
from phphost.verify.probes import encode_args

PHP = shutil.which("php")
pytestmark = pytest.mark.skipif(PHP is None, reason="php CLI not installed")

# the CLI does not fill $_GET from QUERY_STRING as FPM does
PREPEND = "<?php parse_str((string)getenv('QUERY_STRING'), $_GET);\n"
ALL = J.PoolFacts("p", "nobody", "nogroup", True,
                  frozenset({"iconv", "locale", "shell", "proc"}), "127.0.0.1:25")


@pytest.fixture
def probe(tmp_path: Path) -> Path:
    (tmp_path / "prepend.php").write_text(PREPEND)
    path = tmp_path / "probe.php"
    path.write_text(probe_text("probe.php"))
    return path


def run(probe: Path, args: dict[str, Any]) -> dict[str, Any]:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
           "QUERY_STRING": encode_args(args)}
    proc = subprocess.run([str(PHP), "-d", f"auto_prepend_file={probe.parent}/prepend.php",
                           str(probe)], capture_output=True, text=True, env=env, timeout=30,
                          check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = json.loads(proc.stdout)
    assert isinstance(data, dict)
    return data


def test_probe_lints(probe: Path) -> None:
    proc = subprocess.run([str(PHP), "-l", str(probe)], capture_output=True, text=True,
                          check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_unknown_test_is_reported(probe: Path) -> None:
    assert "unknown test" in run(probe, {"test": "nope"})["error"]


@pytest.mark.parametrize("check", ["tmp", "zoneinfo", "iconv", "locale", "shell"])
def test_host_answers_are_judged_ok(probe: Path, check: str) -> None:
    expect = J.Expect("tok")
    answer = run(probe, J.probe_args(check, ALL, expect))
    assert answer["test"] == J.TEST_OF[check]
    report = J.judge_pool(ALL, expect, J.Answers({check: answer}))
    row = next(r for r in report.rows if r.feature == check)
    assert row.verdict is Verdict.OK, (row, answer)


def test_errors_come_as_plain_text(probe: Path) -> None:
    answer = run(probe, {"test": "tls", "url": "https://127.0.0.1:1/"})
    assert answer["stream"]["ok"] is False
    assert "&quot;" not in json.dumps(answer) and "<a href" not in json.dumps(answer)
