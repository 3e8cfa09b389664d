"""Errors that map to the documented exit codes (docs/architecture.md, Exit codes)."""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1  # a regression or a failed expectation / verification
EXIT_USAGE = 2  # bad flag, malformed scenario, unknown pair, unreadable results
EXIT_UNTRUSTED = 3  # measurement not trustworthy or infrastructure failed
EXIT_NOT_ATTEMPTED = 4  # `workshop check`: the exercise is still the stub, nothing was graded
EXIT_INTERRUPTED = 130


class PairbenchError(Exception):
    """Base class: the message is one line, shown to the user as is."""

    exit_code = EXIT_FAILED


class UsageError(PairbenchError):
    """The user's input is wrong: a flag, a scenario file, a pair name, a results folder."""

    exit_code = EXIT_USAGE


class InfrastructureError(PairbenchError):
    """A server failed to start or died, a database was unreachable."""

    exit_code = EXIT_UNTRUSTED


class VerificationError(PairbenchError):
    """A pair's variants are not equivalent, or the mechanism counters disagree."""

    exit_code = EXIT_FAILED


class Interrupted(BaseException):
    """SIGINT or SIGTERM arrived; unwinds like KeyboardInterrupt so `finally` blocks run."""
