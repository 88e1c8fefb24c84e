"""`phphost verify` on the intact demo host: every attack runs, nothing errors, and
every cell is blocked except the known holes listed below (each is a real finding
about the host phphost builds today; remove it here once fixed). Also the helpers
the weakened-host tests (test_verify_weakened.py) use."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from phphost.exitcodes import ExitCode
from phphost.layout import PROBE_ROOT
from phphost.spec.model import Model
from tests.integration import hostkit

DEMO = hostkit.ROOT / "examples" / "demo.toml"

# attack -> why it gets through on the intact demo host (see docs/verify.md, "Findings")
KNOWN_HOLES: dict[str, str] = {}   # none left: the four verify found are fixed


def verify(*only: str, spec: Path | str = DEMO) -> tuple[int, dict[str, Any]]:
    """Run `phphost verify SPEC --json [--only X ...]`: (exit status, report)."""
    argv = [hostkit.PYTHON, "-m", "phphost.cli.verify", str(spec), "--json"]
    for pattern in only:
        argv += ["--only", pattern]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False)
    assert proc.stdout, f"verify printed nothing (exit {proc.returncode}): {proc.stderr}"
    return proc.returncode, json.loads(proc.stdout)


def cells(data: dict[str, Any], attack: str, attacker: str | None = None,
          target: str | None = None) -> list[dict[str, Any]]:
    found = [c for c in data["cells"] if c["attack"] == attack
             and attacker in (None, c["attacker"]) and target in (None, c["target"])]
    assert found, f"no cell {attack} {attacker} -> {target}"
    return found


def breached(data: dict[str, Any], attack: str) -> set[tuple[str, str | None]]:
    """(attacker, target) of the BREACHED cells of one attack."""
    return {(c["attacker"], c["target"]) for c in cells(data, attack)
            if c["verdict"] == "BREACHED"}


def verdicts(data: dict[str, Any], attack: str, attacker: str | None = None,
             target: str | None = None) -> set[str]:
    return {c["verdict"] for c in cells(data, attack, attacker, target)}


@pytest.fixture(scope="module")
def intact(demo: Model) -> tuple[int, dict[str, Any]]:
    return verify()


def test_every_attack_runs_without_errors(intact: tuple[int, dict[str, Any]]) -> None:
    _, data = intact
    errors = [c for c in data["cells"] if c["verdict"] == "error"]
    assert not errors, errors
    assert {a["family"] for a in data["attacks"]} == {"files", "processes", "fpm", "apache",
                                                      "jail", "network", "root", "resources"}


def test_only_the_known_holes_get_through(intact: tuple[int, dict[str, Any]]) -> None:
    status, data = intact
    unexpected = [c for c in data["cells"]
                  if c["verdict"] == "BREACHED" and c["attack"] not in KNOWN_HOLES]
    assert not unexpected, unexpected
    assert status == (ExitCode.BREACHED if data["breached"] else ExitCode.OK)


def test_intact_host_blocks_every_cell(intact: tuple[int, dict[str, Any]]) -> None:
    status, data = intact
    assert {c["verdict"] for c in data["cells"]} <= {"blocked", "n/a"}
    assert status == ExitCode.OK


def test_writable_leak_is_blocked_not_skipped(intact: tuple[int, dict[str, Any]]) -> None:
    """blog's htdocs/cache is a writable dir in its docroot that is not public."""
    _, data = intact
    assert verdicts(data, "apache.writable-leak", "site:blog") == {"blocked"}


def test_jail_attacks_are_blocked_for_the_jailed_demo(intact: tuple[int, dict[str, Any]],
                                                      demo: Model) -> None:
    _, data = intact
    for pool in demo.pools:
        assert pool.jail.enabled
        for attack in ("jail.escape", "jail.host-mounts", "jail.devices"):
            [cell] = cells(data, attack, f"pool:{pool.name}")
            assert cell["verdict"] == "blocked", cell


def test_a_run_leaves_nothing_behind(intact: tuple[int, dict[str, Any]], demo: Model) -> None:
    _, data = intact
    mark = f"verify-{data['run']}"
    left = [os.path.join(d, n) for t in demo.tenants for d, dirs, files in os.walk(t.home)
            for n in dirs + files if mark in n]
    left += [n for n in os.listdir("/var/lib/php/sessions") if mark in n]
    assert not left
    assert not os.path.exists(os.path.join(PROBE_ROOT, data["run"]))


def test_text_matrix_and_exit_status(demo: Model) -> None:
    proc = subprocess.run([hostkit.PYTHON, "-m", "phphost.cli.verify", str(DEMO),
                           "--only", "files.read-code", "--only", "fpm.socket-*"],
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == ExitCode.OK, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[2].split() == ["attack", *sorted(t.name for t in demo.tenants)]
    assert lines[3].split() == ["files.read-code", *["blocked"] * len(demo.tenants)]
    assert "0 BREACHED" in lines[-1] and "0 error" in lines[-1]
