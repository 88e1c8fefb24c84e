"""The one way phphost runs a command: argv lists only, never a shell."""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Mapping, Sequence

from phphost.errors import HostError

log = logging.getLogger("phphost.host")


def run(
    argv: Sequence[str],
    *,
    check: bool = True,
    input_text: str | None = None,
    timeout: float = 120.0,
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run argv, capture output. With check, a non-zero exit raises HostError
    naming the command and what it printed."""
    log.debug("run %s", argv)
    try:
        proc = subprocess.run(
            list(argv), input=input_text, capture_output=True, text=True,
            timeout=timeout, check=False, env=dict(env) if env is not None else None,
        )
    except FileNotFoundError as err:
        raise HostError(
            f"command not found: {argv[0]}. "
            "Install it (scripts/setup-demo installs what phphost needs)"
        ) from err
    except subprocess.TimeoutExpired as err:
        raise HostError(f"command timed out after {timeout:.0f}s: {' '.join(argv)}") from err
    if check and proc.returncode != 0:
        out = (proc.stderr.strip() or proc.stdout.strip())[-2000:]
        raise HostError(f"command failed (exit {proc.returncode}): {' '.join(argv)}\n{out}")
    return proc

