"""The verify layer's error: an attack or its setup could not run (the cell is then
reported as `error`, never as blocked)."""

from __future__ import annotations

from phphost.errors import PhphostError
from phphost.exitcodes import ExitCode


class VerifyError(PhphostError):
    exit_code: int = ExitCode.VERIFY
