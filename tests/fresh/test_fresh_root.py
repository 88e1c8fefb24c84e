"""Fresh-host proof: the README's first command on a brand-new Debian 12 root.

scripts/fresh-root restores a pristine minbase root from its cache, clones this
repository's HEAD into it (PHPHOST_FRESH_SOURCE=worktree: the working tree) and runs
scripts/setup-demo there in namespaces of its own (PID, mount, UTS, IPC, and a network
namespace with only loopback), then `phphost plan` (no changes), a second `phphost apply`
(no changes) and scripts/demo_check.py. Design and wall times: docs/fresh-root.md.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "fresh-root"
LOG_DIR = Path("/var/log/phphost-fresh-root")
TIMEOUT = 30 * 60           # cold runs take a few minutes (docs/fresh-root.md)
CANNOT_RUN = 77


def run_fresh_root(log: Path, *extra: str) -> tuple[int, str, float]:
    argv = [str(SCRIPT), *extra]
    if os.environ.get("PHPHOST_FRESH_SOURCE") == "worktree":
        argv.append("--worktree")
    start = time.monotonic()
    with log.open("w") as fh:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=fh,
                                stderr=subprocess.STDOUT, start_new_session=True)
        try:
            rc = proc.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            # the session we started; unshare --kill-child then ends both namespaces
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            rc = -1
    return rc, log.read_text(errors="replace"), time.monotonic() - start


def test_setup_demo_on_a_fresh_debian_root() -> None:
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    log = LOG_DIR / "last.log"
    rc, text, wall = run_fresh_root(log)
    if rc == CANNOT_RUN:
        why = re.search(r"cannot run here: (.*)", text)
        pytest.skip(f"scripts/fresh-root: {why.group(1) if why else text[-500:]}")
    tail = "\n".join(text.splitlines()[-60:])
    assert rc == 0, f"scripts/fresh-root exited {rc} after {wall:.0f}s; {log}:\n{tail}"
    assert "fresh-root: PASS" in text, tail
    # the proof ran where it claims: PID 1 of its own namespace, only loopback
    assert re.search(r"^fresh-root: PID 1, network: lo $", text, re.MULTILINE), tail
    assert "fresh-root: second apply: no changes" in text, tail
    assert "All demo sites answer." in text, tail
    for line in text.splitlines():
        if line.startswith("fresh-root: "):
            print(line)
    print(f"fresh-root: pytest wall time {wall:.0f}s (log: {log})")
