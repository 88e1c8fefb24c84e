"""One exception root, one subclass per layer; each carries its exit status
(exitcodes.ExitCode).

Every message says what went wrong, where (spec file + key path, or host file)
and what to do about it.
"""

from __future__ import annotations

from phphost.exitcodes import ExitCode


class PhphostError(Exception):
    """Root of every error phphost raises on purpose."""

    exit_code: int = ExitCode.ERROR


class SpecError(PhphostError):
    """The spec is invalid. Raised before anything touches the host."""

    exit_code: int = ExitCode.SPEC

    def __init__(self, file: str, key: str, problem: str, remedy: str) -> None:
        self.file = file
        self.key = key
        self.problem = problem
        self.remedy = remedy
        where = f"{file}: {key}" if key else file
        super().__init__(f"{where}: {problem}. {remedy}")


class FactError(PhphostError):
    """Reading the host's state failed."""

    exit_code: int = ExitCode.FACTS


class PlanError(PhphostError):
    """The spec cannot be brought about on this host as it is."""

    exit_code: int = ExitCode.PLAN


class HostError(PhphostError):
    """A change on the host failed (after rollback where possible)."""

    exit_code: int = ExitCode.HOST


class ValidationFailed(HostError):
    """A real validator (php-fpm -t, apache2ctl configtest) rejected rendered config."""

    exit_code: int = ExitCode.VALIDATION


class FastCGIError(PhphostError):
    """Talking FastCGI to a pool failed."""

    exit_code: int = ExitCode.FASTCGI
