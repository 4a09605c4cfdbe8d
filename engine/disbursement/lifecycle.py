"""The batch state machine as data: states, allowed transitions, append-only history,
and the maker-checker rule.

::

    RECEIVED -> VALIDATED -> APPROVED -> EXECUTING -> EXECUTED
        |            |           |
        +-> REJECTED +-> REJECTED, CANCELLED
                     +-> CANCELLED

A file refused as a whole (encoding, header, totals) goes RECEIVED -> REJECTED. Once
EXECUTING the ledger postings are made atomically, so a batch can no longer be cancelled;
EXECUTED, REJECTED and CANCELLED are final. Lines of an executed batch go ACCEPTED ->
PAID or RETURNED (a bank return), rejected lines stay REJECTED.

The store writes each transition as a new history row (never an update of an old one);
:func:`next_history` is the pure rule for that row.
"""

from __future__ import annotations

import re
from enum import StrEnum

import msgspec

from engine.disbursement.users import normalise_user
from engine.errors import ConflictError, FieldError

CONTENT_HASH_HEX_DIGITS = 64
# Enough of the hash to tell two batches apart by eye, short enough for one line.
CONTENT_HASH_SHOWN_DIGITS = 12
CONTENT_HASH_PATTERN = re.compile(f"[0-9A-Fa-f]{{{CONTENT_HASH_HEX_DIGITS}}}")


class BatchState(StrEnum):
    """State of a batch (stored as the lower-case value)."""

    received = "received"
    validated = "validated"
    approved = "approved"
    executing = "executing"
    executed = "executed"
    rejected = "rejected"
    cancelled = "cancelled"


class LineStatus(StrEnum):
    """Status of one line, as in the result file (``status`` column)."""

    accepted = "accepted"
    rejected = "rejected"
    paid = "paid"
    returned = "returned"


BATCH_TRANSITIONS: dict[BatchState, frozenset[BatchState]] = {
    BatchState.received: frozenset({BatchState.validated, BatchState.rejected}),
    BatchState.validated: frozenset({BatchState.approved, BatchState.rejected, BatchState.cancelled}),
    BatchState.approved: frozenset({BatchState.executing, BatchState.cancelled}),
    BatchState.executing: frozenset({BatchState.executed}),
    BatchState.executed: frozenset(),
    BatchState.rejected: frozenset(),
    BatchState.cancelled: frozenset(),
}

LINE_TRANSITIONS: dict[LineStatus, frozenset[LineStatus]] = {
    LineStatus.accepted: frozenset({LineStatus.paid, LineStatus.returned}),
    LineStatus.paid: frozenset({LineStatus.returned}),
    LineStatus.rejected: frozenset(),
    LineStatus.returned: frozenset(),
}

FINAL_STATES = frozenset(s for s, targets in BATCH_TRANSITIONS.items() if not targets)
# Batches that no longer stand: their content may be submitted again for the same period
# (the partial unique index of migration 0213 has the same list).
WITHDRAWN_STATES = frozenset({BatchState.rejected, BatchState.cancelled})

assert set(BATCH_TRANSITIONS) == set(BatchState) and set(LINE_TRANSITIONS) == set(LineStatus)
assert FINAL_STATES == {BatchState.executed, BatchState.rejected, BatchState.cancelled}
assert WITHDRAWN_STATES < FINAL_STATES


class HistoryEntry(msgspec.Struct, frozen=True):
    """One row of a batch's append-only history.

    ``sequence`` counts from 1; ``state`` is the state entered; ``actor`` the user (or
    ``"system"``); ``at_ms`` Unix time in milliseconds (UTC); ``content_sha256`` the
    batch content hash the transition applies to.
    """

    sequence: int
    state: BatchState
    actor: str
    at_ms: int
    content_sha256: str


def check_transition(current: BatchState, target: BatchState) -> None:
    """Refuse a transition the table does not allow.

    Raises
    ------
    ConflictError
        Naming both states, e.g. ``batch is executed; it cannot become cancelled``.

    >>> check_transition(BatchState.validated, BatchState.approved)
    >>> check_transition(BatchState.executed, BatchState.cancelled)
    Traceback (most recent call last):
    ...
    engine.errors.ConflictError: batch is executed; it cannot become cancelled
    """
    if target not in BATCH_TRANSITIONS[current]:
        raise ConflictError(f"batch is {current.value}; it cannot become {target.value}")


def check_line_transition(current: LineStatus, target: LineStatus) -> None:
    """Refuse a line status change the table does not allow (``ConflictError`` naming both)."""
    if target not in LINE_TRANSITIONS[current]:
        raise ConflictError(f"line is {current.value}; it cannot become {target.value}")


def check_content_hash(text: str, field: str = "content_sha256") -> str:
    """A batch content hash as stored: 64 lower-case hex digits (SHA-256), any case accepted.

    Raises
    ------
    FieldError
        Not 64 hex digits; the message names ``field`` (a malformed hash is a bad request,
        not a batch whose content changed).

    >>> check_content_hash("AB" * 32) == "ab" * 32
    True
    >>> check_content_hash("00", "--hash")
    Traceback (most recent call last):
    ...
    engine.errors.FieldError: --hash: must be 64 hex digits (the batch's SHA-256 content hash), got 2 characters
    """
    if not CONTENT_HASH_PATTERN.fullmatch(text):
        raise FieldError(field, f"must be {CONTENT_HASH_HEX_DIGITS} hex digits (the batch's SHA-256 content hash), "
                                f"got {len(text)} characters")
    return text.lower()


def check_approval(submitted_by: str, approver: str, validated_sha256: str, approved_sha256: str) -> None:
    """The maker-checker rule: a different user approves exactly the content validated.

    Both user names are compared in their normal form
    (:func:`engine.disbursement.users.normalise_user`: width, case and spaces do not make
    another user); ``approved_sha256`` must already be checked (:func:`check_content_hash`).

    Raises
    ------
    ConflictError
        The approver is the submitter, or the hash the approver reviewed is not the
        batch's content hash (the message shows the first
        :data:`CONTENT_HASH_SHOWN_DIGITS` hex digits of the batch's).

    >>> check_approval("alice", "ＡＬＩＣＥ ", "ab", "ab")
    Traceback (most recent call last):
    ...
    engine.errors.ConflictError: the approver must be a different user from the submitter (alice)
    >>> check_approval("alice", "bob", "0123456789abcdef", "fedcba9876543210")
    Traceback (most recent call last):
    ...
    engine.errors.ConflictError: content_sha256 does not match the batch's content hash (0123456789ab...); review it again
    """
    assert CONTENT_HASH_SHOWN_DIGITS < CONTENT_HASH_HEX_DIGITS
    if normalise_user(submitted_by, "submitted_by") == normalise_user(approver, "approver"):
        raise ConflictError(f"the approver must be a different user from the submitter ({submitted_by})")
    if validated_sha256 != approved_sha256:
        raise ConflictError(f"content_sha256 does not match the batch's content hash "
                            f"({validated_sha256[:CONTENT_HASH_SHOWN_DIGITS]}...); review it again")


def next_history(history: list[HistoryEntry], target: BatchState, actor: str, at_ms: int) -> HistoryEntry:
    """The history row that moves a batch to ``target`` (the batch's last row is its state).

    Raises
    ------
    ConflictError
        The transition is not allowed from the current state.

    >>> first = HistoryEntry(1, BatchState.received, "alice", 1000, "ab")
    >>> next_history([first], BatchState.validated, "system", 2000)
    HistoryEntry(sequence=2, state=<BatchState.validated: 'validated'>, actor='system', at_ms=2000, content_sha256='ab')
    """
    assert history, "a batch's history starts with its RECEIVED row"
    last = history[-1]
    check_transition(last.state, target)
    assert at_ms >= last.at_ms, "history is appended in time order"
    return HistoryEntry(last.sequence + 1, target, actor, at_ms, last.content_sha256)
