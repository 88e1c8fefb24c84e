"""Pure parts of the resources attacks: IPC keys, judging answers, the tiny ELF."""

from __future__ import annotations

import os
import struct
import subprocess
from pathlib import Path

from phphost.verify.attacks_resources import EXEC_MARK, exec_hits, ipc_hits, ipc_key, tiny_elf


def test_ipc_keys_are_distinct_and_leave_room() -> None:
    a, b = ipc_key("r1", "blog"), ipc_key("r1", "search")
    assert a != b and a % 4 == 0 and 0 < a < 2**31 - 3
    assert ipc_key("r1", "blog") == a


def test_ipc_hits() -> None:
    canary = "verify-r1-ipc-blog"
    found = {"shm 1": canary.encode().hex() + "00", "shm 2": None, "msg 3": canary}
    assert ipc_hits(found, canary) == ["msg 3: holds the canary", "shm 1: holds the canary"]
    assert ipc_hits({"shm 1": None, "msg 3": None}, canary) == []
    assert ipc_hits({"msg 3": ""}, canary) == ["msg 3: exists ('')"]
    assert ipc_hits(["not", "a", "dict"], canary) == []


def test_exec_hits() -> None:
    rows = [{"dir": "/tmp", "output": EXEC_MARK.decode()}, {"dir": "/data", "output": ""}, 7]
    assert exec_hits(rows) == ["/tmp: ran it ('phphost-verify-exec\\n')"]
    assert exec_hits("x") == []


def test_tiny_elf_runs(tmp_path: Path) -> None:
    elf = tiny_elf()
    assert elf[:4] == b"\x7fELF" and struct.unpack("<H", elf[18:20])[0] == 0x3E
    prog = tmp_path / "elf"
    prog.write_bytes(elf)
    os.chmod(prog, 0o700)
    if os.uname().machine == "x86_64":
        assert subprocess.run([str(prog)], capture_output=True, check=True,
                              timeout=10).stdout == EXEC_MARK
