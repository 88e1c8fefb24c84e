"""The one way phphost runs a command: argv lists only, never a shell."""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
from collections.abc import Iterator, Mapping, Sequence

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


# Planning and validating run at this niceness: on a host whose tenants keep both cores
# busy, a one-pool apply's plan took 3-4 times as long as on a quiet one (scripts/
# bench_scale.py, docs/scale.md). Only the calling thread, and what it starts from then on.
PLANNING_NICENESS = -10
_NORMAL: dict[str, int] = {}


@contextlib.contextmanager
def planning_priority() -> Iterator[None]:
    """Within it this thread (and the threads and short-lived commands it starts:
    php-fpm -t, apache2ctl -t, useradd) runs ahead of the tenants' PHP; back to the
    niceness it had at the end. Call service_priority() before anything long-lived
    is started inside it."""
    with contextlib.suppress(OSError):
        _NORMAL.setdefault("nice", os.getpriority(os.PRIO_PROCESS, 0))
        os.setpriority(os.PRIO_PROCESS, 0, PLANNING_NICENESS)
    try:
        yield
    finally:
        service_priority()


def service_priority() -> None:
    """Back to the niceness phphost started with: Apache, supervisord and the FPM
    masters that apply starts or reloads inherit it, never the planning one."""
    if "nice" in _NORMAL:
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, 0, _NORMAL["nice"])
