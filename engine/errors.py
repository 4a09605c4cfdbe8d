"""Errors of the engine package, and the set of error classes the CLI shows to users.

Every package has one root error class (``LedgerError``, ``HsmError``, ...). An error of
one of those roots is a refusal with a message written for the user; anything else that
reaches the CLI is an internal error.
"""

from __future__ import annotations

import importlib


class EngineError(Exception):
    """Root of every error the engine package raises."""


class UsageError(EngineError, ValueError):
    """A command's arguments are wrong (exit code 2); the message names the argument."""


class FieldError(UsageError):
    """One value is refused: ``field`` names it (a parameter, JSON field or option) and
    ``reason`` says why; the message is ``field: reason``. The CLI's argument types show
    the reason alone, since argparse names the argument itself."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class NotFoundError(EngineError, LookupError):
    """A named object (batch, programme, cycle, key) does not exist."""


class ConflictError(EngineError, ValueError):
    """The request contradicts the object's state (e.g. approving an executed batch)."""


class ReaderProcessError(EngineError, RuntimeError):
    """The child process reading a large batch file ended without its result (killed, out
    of memory, crashed); nothing of the file was stored. The message names the file and
    the child's exit code."""


class AddressInUseError(EngineError, OSError):
    """The address the server was asked to listen on is taken (by another server)."""


class ForbiddenError(EngineError, PermissionError):
    """The signing device may not act for what the request names (a tap of another gate)."""


# Root error classes of every package, as "module:Class"; the CLI shows their messages.
USER_ERROR_ROOTS = (
    "engine.errors:EngineError",
    "ledger.errors:LedgerError",
    "hsm.errors:HsmError",
    "terminal.errors:TerminalError",
    "adapters.errors:AdapterError",
)


def user_errors() -> tuple[type[BaseException], ...]:
    """The root error classes that exist in this installation (missing modules skipped)."""
    roots: list[type[BaseException]] = []
    for spec in USER_ERROR_ROOTS:
        module_name, class_name = spec.split(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError:
            continue
        roots.append(getattr(module, class_name))
    return tuple(roots)


class ReferenceDataError(EngineError, FileNotFoundError):
    """The reference data folder (``ONECARD_REFERENCE_DATA``) or a file in it is missing."""
