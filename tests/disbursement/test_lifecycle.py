import pytest

from engine.disbursement.lifecycle import (BATCH_TRANSITIONS, BatchState, HistoryEntry, LineStatus,
                                           check_approval, check_line_transition, check_transition,
                                           next_history)
from engine.errors import ConflictError

ALLOWED = {
    (BatchState.received, BatchState.validated), (BatchState.received, BatchState.rejected),
    (BatchState.validated, BatchState.approved), (BatchState.validated, BatchState.rejected),
    (BatchState.validated, BatchState.cancelled), (BatchState.approved, BatchState.executing),
    (BatchState.approved, BatchState.cancelled), (BatchState.executing, BatchState.executed),
}


@pytest.mark.parametrize("current", list(BatchState))
@pytest.mark.parametrize("target", list(BatchState))
def test_every_transition_against_the_table(current, target):
    if (current, target) in ALLOWED:
        check_transition(current, target)
    else:
        with pytest.raises(ConflictError, match=f"batch is {current.value}; it cannot become {target.value}"):
            check_transition(current, target)


def test_table_has_exactly_the_documented_transitions():
    assert {(s, t) for s, ts in BATCH_TRANSITIONS.items() for t in ts} == ALLOWED


def test_line_status_transitions():
    check_line_transition(LineStatus.accepted, LineStatus.paid)
    check_line_transition(LineStatus.paid, LineStatus.returned)
    for current, target in [(LineStatus.rejected, LineStatus.paid), (LineStatus.returned, LineStatus.paid)]:
        with pytest.raises(ConflictError):
            check_line_transition(current, target)


def test_history_is_appended_and_keeps_the_hash():
    history = [HistoryEntry(1, BatchState.received, "maker", 10, "h1")]
    for target, actor, at_ms in [(BatchState.validated, "system", 20), (BatchState.approved, "checker", 30),
                                 (BatchState.executing, "system", 40), (BatchState.executed, "system", 50)]:
        history.append(next_history(history, target, actor, at_ms))
    assert [h.sequence for h in history] == [1, 2, 3, 4, 5]
    assert {h.content_sha256 for h in history} == {"h1"}
    with pytest.raises(ConflictError, match="batch is executed"):
        next_history(history, BatchState.cancelled, "maker", 60)


def test_maker_checker():
    check_approval("maker", "checker", "h1", "h1")
    with pytest.raises(ConflictError, match="different user"):
        check_approval("maker", " MAKER", "h1", "h1")
    with pytest.raises(ConflictError, match=r"does not match the batch's content hash \(h1\.\.\.\)"):
        check_approval("maker", "checker", "h1", "h2")
