"""The verify layer's error: an attack or its setup could not run (the cell is then
reported as `error`, never as blocked)."""

from __future__ import annotations

from phphost.errors import PhphostError


class VerifyError(PhphostError):
    exit_code = 8
