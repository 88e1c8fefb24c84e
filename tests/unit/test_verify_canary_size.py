"""apache.htaccess-read guesses the code canary's size: verify takes it from what it
wrote, never from a stat of a path in the target tenant's tree (which the tenant can
swap for a symlink to anything root can stat)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, cast

from phphost.spec.loader import load_spec
from phphost.verify.fixtures import Fixtures

ROOT = Path(__file__).resolve().parents[2]


class FakeScratch:
    run_id = "r1"

    def __init__(self) -> None:
        self.written: dict[str, bytes] = {}

    def name(self, what: str) -> str:
        return f"verify-r1-{what}"

    def write(self, _tenant: object, path: str, data: bytes) -> None:
        self.written[path] = data


def test_canary_sizes_come_from_what_verify_wrote(monkeypatch: Any) -> None:
    def no_stat(*_a: object, **_k: object) -> None:
        raise AssertionError("verify stat'ed a tenant path by name")

    monkeypatch.setattr(os.path, "getsize", no_stat)
    model = load_spec(str(ROOT / "examples" / "demo.toml"))
    scratch = FakeScratch()
    fx = Fixtures(model, cast(Any, scratch), cast(Any, None))
    tenant = model.tenant("ncs")
    canaries = [fx.code_canary(tenant), *fx.data_canaries(tenant)]
    for c in canaries:
        assert c.size == len(scratch.written[c.path]) and c.token.encode() in scratch.written[
            c.path]
