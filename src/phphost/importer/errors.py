"""The importer's error: the Apache or PHP configuration it reads is broken or cannot
be read (nothing is written)."""

from __future__ import annotations

from phphost.errors import PhphostError
from phphost.exitcodes import ExitCode


class SourceError(PhphostError):
    """The configuration `phphost import` reads is broken, unknown or unreadable.
    The message names the file (and line) and what to do."""

    exit_code: int = ExitCode.IMPORT
