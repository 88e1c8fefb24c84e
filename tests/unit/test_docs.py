"""Docs that mirror code stay in step with it."""

from __future__ import annotations

import glob
import re
from pathlib import Path

from phphost.exitcodes import ExitCode
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


DOCS = (ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")))
PACKAGES = "|".join(sorted(p.name for p in (ROOT / "src" / "phphost").iterdir()
                           if p.is_dir() and not p.name.startswith("_")))
REPO_PATH = re.compile(r"(?<![\w/.-])((?:src|tests|scripts|docs|examples)/[\w./*-]*[\w*/])")
MODULE_PATH = re.compile(rf"(?<![\w/.-])((?:{PACKAGES})/[\w/*-]*\.(?:py|php|c))\b")


def named_paths() -> list[tuple[str, str, str]]:
    """(doc, as written, repository path) of every path the docs name: repository
    paths and package-relative source paths (host/files.py = src/phphost/host/files.py)."""
    out = []
    for doc in DOCS:
        text = doc.read_text()
        out += [(doc.name, m[1], m[1].split("::")[0]) for m in REPO_PATH.finditer(text)]
        out += [(doc.name, m[1], f"src/phphost/{m[1]}") for m in MODULE_PATH.finditer(text)]
    return out


def test_every_path_the_docs_name_exists() -> None:
    paths = named_paths()
    assert len(paths) > 50
    missing = [f"{doc}: {shown}" for doc, shown, path in paths
               if not glob.glob(str(ROOT / path))]
    assert missing == []


# What README.md says each code means (its command table and its "Errors:" list).
README_CODES = {
    ExitCode.OK: "0 no changes",
    ExitCode.CHANGES: "10 changes pending",
    ExitCode.CHECK_FAILED: "30 otherwise",
    ExitCode.BREACHED: "20 breached",
    ExitCode.INCONCLUSIVE: "21 could not run",
    ExitCode.FINDINGS: "11 findings above the threshold",
    ExitCode.DIFFERS: "12 a stage changed what a visitor sees",
    ExitCode.NOT_RUNNING: "1 otherwise",
    ExitCode.SPEC: "2 invalid spec",
    ExitCode.FACTS: "3 reading host facts failed",
    ExitCode.PLAN: "4 the spec cannot be brought about",
    ExitCode.HOST: "5 a change failed",
    ExitCode.VALIDATION: "6 a validator rejected",
    ExitCode.FASTCGI: "7 FastCGI trouble",
    ExitCode.VERIFY: "8 verify could not run",
    ExitCode.IMPORT: "9 import found its source config broken",
    ExitCode.INTERRUPTED: "130 interrupted",
    ExitCode.BROKEN_PIPE: "141 standard output was closed",
    ExitCode.ERROR: "1 any other error",
}
# exit statuses the docs give for programs other than phphost
OTHER_PROGRAMS = {
    ("jails.md", 127): "the mailer standing in for /bin/sh",
    ("jails.md", 75): "the mailer (sysexits)",
    ("fresh-root.md", 77): "scripts/fresh-root cannot run here",
}
EXIT_MENTION = re.compile(r"\b[Ee]xit(?:s| status:?)? `?(\d+)`?")
STATUS_LINE = re.compile(r"Exit status:(.*?)\n\n", re.S)


def test_readme_names_every_exit_code_with_its_meaning() -> None:
    text = " ".join((ROOT / "README.md").read_text().split())
    wrong = [f"{code.name}: {phrase!r}" for code, phrase in README_CODES.items()
             if phrase not in text or not phrase.startswith(f"{int(code)} ")]
    assert wrong == []
    assert {int(c) for c in README_CODES} == {int(c) for c in ExitCode}


def test_every_exit_code_the_docs_name_is_in_the_table() -> None:
    codes = {int(c) for c in ExitCode}
    bad = []
    for doc in DOCS:
        text = doc.read_text()
        named = [int(m[1]) for m in EXIT_MENTION.finditer(text)]
        for block in STATUS_LINE.findall(text):
            named += [int(n) for n in re.findall(r"`(\d+)`", block)]
        bad += [f"{doc.name}: exit {n}" for n in named
                if n not in codes and (doc.name, n) not in OTHER_PROGRAMS]
    assert bad == []
