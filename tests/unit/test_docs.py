"""Docs that mirror code stay in step with it."""

from __future__ import annotations

from pathlib import Path

from phphost.spec import loader

ROOT = Path(__file__).resolve().parents[2]


def test_spec_doc_mirrors_loader_docstring() -> None:
    schema = (loader.__doc__ or "").split("Schema\n======\n", 1)[1].strip()
    assert schema in (ROOT / "docs" / "spec.md").read_text()


def test_readme_starts_with_the_two_commands() -> None:
    lines = (ROOT / "README.md").read_text().splitlines()
    block = lines[lines.index("```sh") + 1: lines.index("```sh") + 3]
    assert block[0].startswith("scripts/setup-demo")
    assert block[1].startswith("scripts/test")
    assert "scripts/test" in (ROOT / ".ci" / "run").read_text()


def test_verify_doc_lists_every_attack() -> None:
    from phphost.verify.catalog import ALL
    text = (Path(__file__).resolve().parents[2] / "docs" / "verify.md").read_text()
    missing = [a.id for a in ALL if f"| {a.id} |" not in text]
    assert not missing, f"docs/verify.md has no row for {missing}"
