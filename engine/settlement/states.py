"""The settlement cycle state machine as data (Mojaloop settlement window, style rule 9).

``OPEN`` → ``CLOSED`` (cut taken, positions frozen) → ``PENDING_SETTLEMENT`` (settlement
transfers reserved, instructions issued) → ``SETTLED`` (every bank with a non-zero position
confirmed, reserved transfers posted). No other move exists; history is append-only.
"""

from __future__ import annotations

from enum import Enum

from engine.settlement.errors import CycleStateError


class CycleState(str, Enum):
    """States of a settlement cycle, in lifecycle order."""

    OPEN = "OPEN"
    CLOSED = "CLOSED"
    PENDING_SETTLEMENT = "PENDING_SETTLEMENT"
    SETTLED = "SETTLED"


TRANSITIONS: frozenset[tuple[CycleState, CycleState]] = frozenset({
    (CycleState.OPEN, CycleState.CLOSED),
    (CycleState.CLOSED, CycleState.PENDING_SETTLEMENT),
    (CycleState.PENDING_SETTLEMENT, CycleState.SETTLED),
})

assert all(a != b for a, b in TRANSITIONS)
assert not any(a is CycleState.SETTLED for a, _ in TRANSITIONS), "SETTLED is final"


def check_transition(cycle_id: int, current: str, wanted: CycleState) -> CycleState:
    """Return ``current`` as a :class:`CycleState` if ``current → wanted`` is allowed.

    >>> check_transition(1, "OPEN", CycleState.CLOSED).value
    'OPEN'
    >>> check_transition(1, "SETTLED", CycleState.CLOSED)
    Traceback (most recent call last):
    ...
    engine.settlement.errors.CycleStateError: cycle 1 is SETTLED; it cannot become CLOSED

    Raises
    ------
    CycleStateError
        The move is not in :data:`TRANSITIONS` (message names both states).
    """
    state = CycleState(current)
    if (state, wanted) not in TRANSITIONS:
        raise CycleStateError(f"cycle {cycle_id} is {state.value}; it cannot become {wanted.value}")
    return state
