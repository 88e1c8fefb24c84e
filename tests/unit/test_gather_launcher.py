"""plan rebuilds the launcher unless its binary is the one apply built: the sha256 apply
records beside it (host/launcher.py) must match (facts.gather)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from phphost import layout
from phphost.facts import gather
from phphost.files import sha256_file
from phphost.host.launcher import build_launcher


@pytest.fixture
def root_dir() -> Iterator[Path]:
    d = tempfile.mkdtemp(prefix="phphost-launch-", dir="/var/lib" if os.geteuid() == 0 else None)
    yield Path(d)
    shutil.rmtree(d)


def test_matching_record_means_as_built(root_dir: Path) -> None:
    binary, record = root_dir / "launch", root_dir / "launch.sha256"
    binary.write_bytes(b"\x7fELF built by apply")
    record.write_text(sha256_file(str(binary)) + "\n")
    assert gather.launcher_as_built(str(binary), str(record))


@pytest.mark.parametrize("case", ["no record", "other binary", "empty record", "no binary",
                                  "garbage record"])
def test_anything_else_means_rebuild(root_dir: Path, case: str) -> None:
    binary, record = root_dir / "launch", root_dir / "launch.sha256"
    binary.write_bytes(b"\x7fELF built by apply")
    record.write_text(sha256_file(str(binary)) + "\n")
    if case == "no record":
        record.unlink()
    elif case == "other binary":
        binary.write_bytes(b"\x7fELF weakened by an interrupted test")
    elif case == "empty record":
        record.write_text("")
    elif case == "no binary":
        binary.unlink()
    else:
        record.write_bytes(b"\xff\xfe")
    assert not gather.launcher_as_built(str(binary), str(record))


def test_source_reads_as_absent_unless_as_built(root_dir: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    source = root_dir / "launch.c"
    source.write_text("int main(void) { return 0; }\n")
    monkeypatch.setattr(layout, "LAUNCHER_SOURCE", str(source))
    monkeypatch.setattr(gather, "launcher_as_built", lambda: False)
    assert gather._read_file(str(source)) is None          # plan writes it and rebuilds
    monkeypatch.setattr(gather, "launcher_as_built", lambda: True)
    assert gather._read_file(str(source)) == source.read_text()


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("gcc") is None,
                    reason="a root-owned directory and gcc")
def test_build_records_and_an_unrecorded_build_does_not_match(root_dir: Path) -> None:
    """apply's build records the digest; a different build without record (as the
    weakened-launcher tests make) leaves the old record, so plan sees the mismatch."""
    binary = str(root_dir / "launch")
    record = binary + ".sha256"
    build_launcher(binary)
    assert gather.launcher_as_built(binary, record)
    assert os.stat(record).st_mode & 0o777 == 0o600 and os.stat(record).st_uid == 0
    weak = root_dir / "weak.c"
    text = Path(os.path.dirname(gather.__file__), "..", "launcher", "launch.c").read_text()
    weak.write_text(text.replace("#define JOIN_CGROUPS 1", "#define JOIN_CGROUPS 0"))
    build_launcher(binary, str(weak), record=False)
    assert not gather.launcher_as_built(binary, record)
    build_launcher(binary)                                # restore_launcher
    assert gather.launcher_as_built(binary, record)
