"""docs/audit.md lists exactly the registered rules."""

from __future__ import annotations

import re
from pathlib import Path

from phphost.audit.rules import RULES

DOC = Path(__file__).resolve().parents[2] / "docs" / "audit.md"


def test_rule_table_matches_registry() -> None:
    rows = re.findall(r"^\| (PHA\d{3}) \|", DOC.read_text(), re.M)
    assert rows == sorted(RULES)
