"""Every exit status `phphost` can end with, in one table. Commands return these,
errors carry them (errors.py, verify/errors.py), and README.md and docs/*.md name
them; tests/unit/test_docs.py checks that every code the docs name is here."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    ERROR = 1             # an error with no class of its own, or a phphost bug
    NOT_RUNNING = 1       # status: some pool is not running
    SPEC = 2              # the spec is invalid (SpecError); nothing touched
    USAGE = 2             # a command line phphost cannot act on
    FACTS = 3             # reading the host's state failed (FactError)
    PLAN = 4              # the spec cannot be brought about on this host (PlanError)
    HOST = 5              # a change failed, rolled back (HostError)
    VALIDATION = 6        # a validator rejected rendered config, rolled back (ValidationFailed)
    FASTCGI = 7           # talking FastCGI to a pool failed (FastCGIError)
    VERIFY = 8            # verify could not run (VerifyError)
    IMPORT = 9            # import: the Apache/PHP config it reads is broken or unreadable
    CHANGES = 10          # plan: changes pending
    FINDINGS = 11         # audit: findings above --fail-above
    DIFFERS = 12          # migrate: a stage changed what a visitor sees; taken back
    BREACHED = 20         # verify: at least one attack got through
    INCONCLUSIVE = 21     # verify: nothing got through, but some attacks could not run
    CHECK_FAILED = 30     # check: a declared feature failed or an undeclared one is present
    INTERRUPTED = 130     # Ctrl-C (128 + SIGINT)
    BROKEN_PIPE = 141     # stdout's reader went away (128 + SIGPIPE), e.g. `top --json | head`
