"""root.probe-answers on the live demo host: blocked as phphost is, BREACHED when the
old code that trusted probe answers is put back (by monkeypatching this process's
verify: session paths taken from the answer, path-based cleanup, any component
carrying the mark, unbounded JSON)."""

from __future__ import annotations

import json
import os
import shutil
from typing import Any

import pytest

from phphost.jail.manifest import is_inside
from phphost.render.fpm import jail_root
from phphost.spec.model import Model, Pool
from phphost.verify import answers, attacks_answers, fixtures, probes, scratch
from phphost.verify.fixtures import SessionCanary
from phphost.verify.result import Verdict
from phphost.verify.runner import run_attacks

ATTACK = attacks_answers.ATTACKS


def _trusting_session_canary(sandbox: scratch.Scratch, pool: Pool, sid: str, token: str,
                             out: dict[str, Any]) -> SessionCanary | None:
    """What fixtures.Fixtures.session did before: paths straight from the answer."""
    del sid
    if out.get("handler") != "files" or not out.get("id"):
        return None
    # a writable dir is a same-path mount: its host path is its jail path
    seen_at_own_path = any(is_inside(str(out["dir"]), w) for w in pool.writable)
    top = jail_root(pool.name) if pool.jail.enabled and not seen_at_own_path else ""
    canary = SessionCanary(top + str(out["dir"]), top + str(out["file"]), token)
    sandbox.track(canary.file)
    return canary


def _trusting_remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.unlink(path)


def _trusting_parse(body: bytes, probe: str, pool: str) -> dict[str, Any]:
    """The old check: any JSON object (json.loads on whatever arrived)."""
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise answers.HostileAnswer(probe, pool, "not a JSON object")
    return data


def _trusting_ours(self: scratch.Scratch, path: str) -> bool:
    return any(self.mark in part for part in path.split("/"))


def _cells(model: Model) -> list[Any]:
    """The cells of pools that can plant somewhere root sees (a jailed pool's /tmp is a
    private tmpfs: a pool without sessions or writable dirs is n/a)."""
    report, problems = run_attacks(model, ATTACK)
    assert problems == []
    na = {c.attacker for c in report.cells if c.verdict == Verdict.NA}
    assert na == {f"pool:{p.name}" for p in model.pools
                  if attacks_answers.planting_dir(p) is None}
    return [c for c in report.cells if c.verdict != Verdict.NA]


def test_crafted_answers_are_blocked(demo: Model) -> None:
    cells = _cells(demo)
    assert cells and all(c.verdict == Verdict.BLOCKED for c in cells), \
        [(c.attacker, c.verdict, c.evidence) for c in cells]
    assert all("rejected" in c.evidence and "not removed" in c.evidence for c in cells)


def test_trusting_verify_lets_a_pool_make_root_delete_a_file(
        demo: Model, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fixtures, "session_canary", _trusting_session_canary)
    monkeypatch.setattr(scratch, "remove", _trusting_remove)
    monkeypatch.setattr(scratch.Scratch, "ours", _trusting_ours)
    monkeypatch.setattr(probes, "parse_answer", _trusting_parse)
    monkeypatch.setattr(probes, "MAX_ANSWER_BYTES", 1 << 30)
    cells = _cells(demo)
    assert cells and all(c.verdict == Verdict.BREACHED for c in cells), \
        [(c.attacker, c.verdict, c.evidence) for c in cells]
    for cell in cells:
        assert "session file through a planted symlink: root removed /run/phphost-verify-" \
            in cell.evidence
        assert "session file with '..': root removed" in cell.evidence
        assert "a 5 MiB answer: accepted" in cell.evidence
    assert not [n for n in os.listdir("/run") if n.startswith("phphost-verify-")]
