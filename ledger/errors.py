"""Errors of the ledger package: one root class, subclasses that also inherit a built-in.

Business rejections of single accounts or transfers are not exceptions: they are the
per-item result codes in :mod:`ledger.results`. These classes are for calls that cannot be
carried out at all (bad input shapes, an unreachable database).
"""


class LedgerError(Exception):
    """Root of every error the ledger package raises."""


class DatabaseError(LedgerError, ConnectionError):
    """The database could not be started, reached or migrated."""


class InvalidRequestError(LedgerError, ValueError):
    """A call's input is malformed (wrong type, out of range, unknown flag); nothing changed.

    The message names the item index and field, e.g. ``transfers[3].amount: must be ...``.
    """


class ConflictError(LedgerError, RuntimeError):
    """A write kept colliding with concurrent writers (deadlock, serialization, id race).

    Transient: the whole call changed nothing and may be sent again unchanged.
    """
