"""Errors of clearing and settlement (all under :class:`engine.errors.EngineError`)."""

from __future__ import annotations

from engine.errors import ConflictError, EngineError, NotFoundError


class SettlementError(EngineError):
    """Root of the errors of :mod:`engine.settlement`."""


class CycleStateError(SettlementError, ConflictError):
    """A cycle transition the state table does not allow (the message names both states)."""


class UnknownParticipantError(SettlementError, NotFoundError):
    """A bank, operator, payer or cycle that does not exist (or is not the caller's)."""


class ParticipantError(SettlementError, ValueError):
    """A participant's fields are invalid or contradict an existing one (field named)."""


class InboundConflictError(SettlementError, ConflictError):
    """A bank reused a MsgId for a message with different content (a modified request)."""


class PayoutRefusedError(SettlementError, ConflictError):
    """The ledger refused a new payout (its result is named) after its instruction was
    written, or another writer posted one meanwhile: the caller must roll back. ``results``
    has one result per payout (empty when the ledger was not asked)."""

    def __init__(self, message: str, results: list) -> None:
        super().__init__(message)
        self.results = results
