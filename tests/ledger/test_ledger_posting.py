"""The posting rules without a database: one table row per result code, chains, zero amounts."""

import msgspec
import pytest

from ledger.limits import AMOUNT_MAX, ID_MAX
from ledger.posting import AccountBatch, AccountState, PendingStatus, TransferBatch
from ledger.results import CreateAccountResult as A
from ledger.results import CreateTransferResult as R
from ledger.types import Account, AccountFlags as AF, Transfer, TransferFlags as F

NOW_NS = 1_700_000_000 * 10**9
LIMITED_DEBITS, LIMITED_CREDITS = AF.debits_must_not_exceed_credits, AF.credits_must_not_exceed_debits


def accounts() -> dict[int, AccountState]:
    return {
        1: AccountState(1, 1, 0),
        2: AccountState(2, 1, 0),
        3: AccountState(3, 1, LIMITED_DEBITS, credits_posted=100),
        4: AccountState(4, 1, LIMITED_CREDITS, debits_posted=100),
        5: AccountState(5, 2, 0),
        6: AccountState(6, 1, AF.closed),
        7: AccountState(7, 1, 0, debits_posted=AMOUNT_MAX - 5, credits_posted=AMOUNT_MAX - 5),
        8: AccountState(8, 1, 0, debits_pending=AMOUNT_MAX - 5, credits_pending=AMOUNT_MAX - 5),
    }


def pending(id: int, amount: int = 50, **fields) -> Transfer:
    return Transfer(id=id, debit_account_id=1, credit_account_id=2, amount=amount, ledger=1, code=1,
                    flags=F.pending, **fields)


EXISTING = {
    100: Transfer(id=100, debit_account_id=1, credit_account_id=2, amount=10, ledger=1, code=1, user_data_64=9),
    200: pending(200), 201: pending(201), 202: pending(202), 203: pending(203), 204: pending(204, timeout_s=1),
    300: Transfer(id=300, debit_account_id=3, credit_account_id=1, amount=40, ledger=1, code=1,
                  flags=F.balancing_debit),
}
STATUS = {
    200: (PendingStatus.pending, 0), 201: (PendingStatus.posted, 0), 202: (PendingStatus.voided, 0),
    203: (PendingStatus.expired, 0), 204: (PendingStatus.pending, NOW_NS - 1),
}


def batch() -> TransferBatch:
    # Account 1 and 2 carry the pending amounts of 200 and 204 (50 each).
    state = accounts()
    state[1].debits_pending = state[2].credits_pending = 100
    return TransferBatch(state, dict(EXISTING), dict(STATUS), NOW_NS)


def t(**fields) -> Transfer:
    base = dict(id=1000, debit_account_id=1, credit_account_id=2, amount=1, ledger=1, code=1)
    return Transfer(**{**base, **fields})


POST, VOID = F.post_pending_transfer, F.void_pending_transfer

TRANSFER_CASES = [
    (t(), R.ok),
    (t(timestamp=1), R.timestamp_must_be_zero),
    (t(id=0), R.id_must_not_be_zero),
    (t(id=ID_MAX), R.id_must_not_be_int_max),
    (t(id=100, flags=F.pending), R.exists_with_different_flags),
    (t(id=200, amount=50, flags=F.pending, pending_id=7), R.exists_with_different_pending_id),
    (t(id=200, amount=50, flags=F.pending, timeout_s=5), R.exists_with_different_timeout),
    (t(id=100, amount=10, debit_account_id=3), R.exists_with_different_debit_account_id),
    (t(id=100, amount=10, credit_account_id=3), R.exists_with_different_credit_account_id),
    (t(id=100, amount=11), R.exists_with_different_amount),
    (t(id=100, amount=10, user_data_128=1), R.exists_with_different_user_data_128),
    (t(id=100, amount=10, user_data_64=1), R.exists_with_different_user_data_64),
    (t(id=100, amount=10, user_data_64=9, user_data_32=1), R.exists_with_different_user_data_32),
    (t(id=100, amount=10, user_data_64=9, ledger=2), R.exists_with_different_ledger),
    (t(id=100, amount=10, user_data_64=9, code=2), R.exists_with_different_code),
    (t(id=100, amount=10, user_data_64=9), R.exists),
    (t(id=300, debit_account_id=3, credit_account_id=1, amount=500, flags=F.balancing_debit), R.exists),
    (t(flags=F.pending | POST), R.flags_are_mutually_exclusive),
    (t(flags=POST | VOID), R.flags_are_mutually_exclusive),
    (t(flags=POST | F.balancing_debit, pending_id=200), R.flags_are_mutually_exclusive),
    (t(debit_account_id=0), R.debit_account_id_must_not_be_zero),
    (t(debit_account_id=ID_MAX), R.debit_account_id_must_not_be_int_max),
    (t(credit_account_id=0), R.credit_account_id_must_not_be_zero),
    (t(credit_account_id=ID_MAX), R.credit_account_id_must_not_be_int_max),
    (t(credit_account_id=1), R.accounts_must_be_different),
    (t(pending_id=200), R.pending_id_must_be_zero),
    (t(flags=POST), R.pending_id_must_not_be_zero),
    (t(flags=POST, pending_id=ID_MAX), R.pending_id_must_not_be_int_max),
    (t(flags=POST, pending_id=1000), R.pending_id_must_be_different),
    (t(timeout_s=1), R.timeout_reserved_for_pending_transfer),
    (t(flags=POST, pending_id=200, timeout_s=1), R.timeout_reserved_for_pending_transfer),
    (t(flags=F.closing_debit), R.closing_transfer_must_be_pending),
    (t(ledger=0), R.ledger_must_not_be_zero),
    (t(code=0), R.code_must_not_be_zero),
    (t(debit_account_id=99), R.debit_account_not_found),
    (t(credit_account_id=99), R.credit_account_not_found),
    (t(credit_account_id=5), R.accounts_must_have_the_same_ledger),
    (t(ledger=2), R.transfer_must_have_the_same_ledger_as_accounts),
    (t(flags=POST, pending_id=99), R.pending_transfer_not_found),
    (t(flags=POST, pending_id=100), R.pending_transfer_not_pending),
    (t(flags=POST, pending_id=200, debit_account_id=3, credit_account_id=0), R.pending_transfer_has_different_debit_account_id),
    (t(flags=POST, pending_id=200, debit_account_id=0, credit_account_id=3), R.pending_transfer_has_different_credit_account_id),
    (t(flags=POST, pending_id=200, ledger=2), R.pending_transfer_has_different_ledger),
    (t(flags=POST, pending_id=200, code=2), R.pending_transfer_has_different_code),
    (t(flags=POST, pending_id=200, amount=51), R.exceeds_pending_transfer_amount),
    (t(flags=VOID, pending_id=200, amount=49), R.pending_transfer_has_different_amount),
    (t(flags=POST, pending_id=201, amount=1), R.pending_transfer_already_posted),
    (t(flags=VOID, pending_id=202, amount=0), R.pending_transfer_already_voided),
    (t(flags=POST, pending_id=203, amount=1), R.pending_transfer_expired),
    (t(flags=VOID, pending_id=204, amount=0), R.pending_transfer_expired),
    (t(debit_account_id=6), R.debit_account_already_closed),
    (t(credit_account_id=6), R.credit_account_already_closed),
    (t(debit_account_id=8, credit_account_id=2, amount=6, flags=F.pending), R.overflows_debits_pending),
    (t(debit_account_id=1, credit_account_id=8, amount=6, flags=F.pending), R.overflows_credits_pending),
    (t(debit_account_id=7, amount=6), R.overflows_debits_posted),
    (t(credit_account_id=7, amount=6), R.overflows_credits_posted),
    (t(debit_account_id=8, amount=6), R.overflows_debits),
    (t(credit_account_id=8, amount=6), R.overflows_credits),
    (t(flags=F.pending, timeout_s=2**32 - 1, amount=1), R.ok),
    (t(debit_account_id=3, amount=101), R.exceeds_credits),
    (t(credit_account_id=4, amount=101), R.exceeds_debits),
]


@pytest.mark.parametrize(("transfer", "expected"), TRANSFER_CASES)
def test_transfer_result_table(transfer, expected):
    assert batch().run([transfer]) == [expected]


def test_table_covers_every_transfer_result():
    covered = {expected for _, expected in TRANSFER_CASES}
    covered |= {R.linked_event_failed, R.linked_event_chain_open, R.overflows_timeout}  # tested below
    assert covered >= set(R)


def test_overflows_timeout_near_the_end_of_time():
    late = TransferBatch(accounts(), {}, {}, 2**63 - 10)
    assert late.run([t(flags=F.pending, timeout_s=1)]) == [R.overflows_timeout]


def test_priority_first_listed_wins():
    # Zero id and zero ledger and unknown account all apply: the id rule comes first.
    assert batch().run([t(id=0, ledger=0, debit_account_id=99)]) == [R.id_must_not_be_zero]
    assert batch().run([t(ledger=0, debit_account_id=99)]) == [R.ledger_must_not_be_zero]


def test_linked_chain_fails_as_a_whole_and_leaves_no_trace():
    b = batch()
    results = b.run([
        t(id=1, amount=5, flags=F.linked),
        t(id=2, debit_account_id=3, amount=500, flags=F.linked),  # exceeds_credits
        t(id=3, amount=7),
        t(id=4, amount=9),
    ])
    assert results == [R.linked_event_failed, R.exceeds_credits, R.linked_event_failed, R.ok]
    assert [x.id for x in b.created] == [4]
    assert (b.accounts[1].debits_posted, b.accounts[2].credits_posted) == (9, 9)


def test_open_chain_at_end_of_batch_fails_only_that_chain():
    b = batch()
    results = b.run([t(id=1, amount=5), t(id=2, amount=6, flags=F.linked), t(id=3, amount=7, flags=F.linked)])
    assert results == [R.ok, R.linked_event_failed, R.linked_event_chain_open]
    assert [x.id for x in b.created] == [1]
    assert b.run([t(id=9, flags=F.linked)]) == [R.linked_event_chain_open]


def test_chain_rollback_restores_pending_state():
    b = batch()
    results = b.run([t(id=1, flags=POST | F.linked, pending_id=200, amount=AMOUNT_MAX), t(id=2, code=0)])
    assert results == [R.linked_event_failed, R.code_must_not_be_zero]
    assert b.pending[200] == (PendingStatus.pending, 0) and 200 not in b.pending_changes
    assert (b.accounts[1].debits_pending, b.accounts[1].debits_posted) == (100, 0)


def test_zero_amount_rules():
    b = batch()
    assert b.run([t(id=1, amount=0)]) == [R.ok]
    assert (b.accounts[1].debits_posted, b.accounts[2].credits_posted) == (0, 0)
    # Posting 0 releases the pending amount and posts nothing; a second post is refused.
    assert b.run([t(id=2, flags=POST, pending_id=200, amount=0)]) == [R.ok]
    assert (b.accounts[1].debits_pending, b.accounts[1].debits_posted) == (50, 0)
    assert b.run([t(id=3, flags=POST, pending_id=200, amount=0)]) == [R.pending_transfer_already_posted]


def test_partial_and_full_post_and_void():
    b = batch()
    assert b.run([t(id=1, flags=POST, pending_id=200, amount=20)]) == [R.ok]
    assert (b.accounts[1].debits_pending, b.accounts[1].debits_posted, b.accounts[2].credits_posted) == (50, 20, 20)
    stored = b.created[0]
    assert (stored.debit_account_id, stored.credit_account_id, stored.amount, stored.ledger) == (1, 2, 20, 1)
    b = batch()
    assert b.run([t(id=1, flags=POST, pending_id=200, amount=AMOUNT_MAX, debit_account_id=0, credit_account_id=0)]) == [R.ok]
    assert b.created[0].amount == 50
    b = batch()
    assert b.run([t(id=1, flags=VOID, pending_id=200, amount=0)]) == [R.ok]
    assert (b.accounts[1].debits_pending, b.accounts[1].debits_posted) == (50, 0)
    assert b.pending_changes == {200: PendingStatus.voided}


def test_resend_rules_of_the_field():
    b = batch()
    hold = t(id=1, flags=F.pending, amount=30)
    assert b.run([hold]) == [R.ok]
    assert b.run([hold]) == [R.exists]  # unchanged while pending: the original state
    assert b.run([msgspec.structs.replace(hold, amount=31)]) == [R.exists_with_different_amount]
    post = t(id=2, flags=POST, pending_id=1, amount=AMOUNT_MAX, debit_account_id=0, credit_account_id=0)
    assert b.run([post]) == [R.ok]
    assert b.run([post, hold]) == [R.exists, R.exists]  # after the post: replay
    assert len(b.created) == 2


def test_balancing_moves_at_most_the_balance():
    b = batch()
    assert b.run([t(id=1, debit_account_id=3, amount=AMOUNT_MAX, flags=F.balancing_debit)]) == [R.ok]
    assert b.created[0].amount == 100 and b.accounts[3].debits_posted == 100
    assert b.run([t(id=2, debit_account_id=3, amount=5, flags=F.balancing_debit)]) == [R.ok]
    assert b.created[1].amount == 0


def test_closing_pending_closes_and_void_reopens():
    b = batch()
    assert b.run([t(id=1, flags=F.pending | F.closing_debit, amount=0)]) == [R.ok]
    assert b.accounts[1].flags & AF.closed
    assert b.run([t(id=2)]) == [R.debit_account_already_closed]
    assert b.run([t(id=3, flags=VOID, pending_id=1, amount=0)]) == [R.ok]
    assert not b.accounts[1].flags & AF.closed
    assert b.run([t(id=2)]) == [R.ok]


def test_expire_releases_the_pending_amount():
    b = batch()
    assert b.expire(204) and not b.expire(200) and not b.expire(203)
    assert (b.accounts[1].debits_pending, b.accounts[2].credits_pending) == (50, 50)
    assert b.pending_changes == {204: PendingStatus.expired}


def test_history_rows_follow_each_transfer():
    state = accounts()
    state[1].flags = AF.history
    b = TransferBatch(state, {}, {}, NOW_NS)
    b.run([t(id=1, amount=5), t(id=2, credit_account_id=1, debit_account_id=2, amount=2)])
    assert b.history == [(1, 0, 0, 5, 0, 0), (1, 1, 0, 5, 0, 2)]


def a(**fields) -> Account:
    return Account(**{**dict(id=10, ledger=1, code=1), **fields})


EXISTING_ACCOUNT = a(id=1, user_data_64=5)

ACCOUNT_CASES = [
    (a(), A.ok),
    (a(timestamp=1), A.timestamp_must_be_zero),
    (a(id=0), A.id_must_not_be_zero),
    (a(id=ID_MAX), A.id_must_not_be_int_max),
    (a(id=1, flags=AF.history), A.exists_with_different_flags),
    (a(id=1, user_data_128=1), A.exists_with_different_user_data_128),
    (a(id=1), A.exists_with_different_user_data_64),
    (a(id=1, user_data_64=5, user_data_32=1), A.exists_with_different_user_data_32),
    (a(id=1, user_data_64=5, ledger=2), A.exists_with_different_ledger),
    (a(id=1, user_data_64=5, code=2), A.exists_with_different_code),
    (a(id=1, user_data_64=5), A.exists),
    (a(flags=LIMITED_DEBITS | LIMITED_CREDITS), A.flags_are_mutually_exclusive),
    (a(debits_pending=1), A.debits_pending_must_be_zero),
    (a(debits_posted=1), A.debits_posted_must_be_zero),
    (a(credits_pending=1), A.credits_pending_must_be_zero),
    (a(credits_posted=1), A.credits_posted_must_be_zero),
    (a(ledger=0), A.ledger_must_not_be_zero),
    (a(code=0), A.code_must_not_be_zero),
]


@pytest.mark.parametrize(("account", "expected"), ACCOUNT_CASES)
def test_account_result_table(account, expected):
    assert AccountBatch({1: EXISTING_ACCOUNT}).run([account]) == [expected]


def test_account_table_covers_every_result():
    assert {e for _, e in ACCOUNT_CASES} | {A.linked_event_failed, A.linked_event_chain_open} == set(A)


def test_linked_accounts():
    b = AccountBatch({})
    assert b.run([a(id=1, flags=AF.linked), a(id=2, code=0), a(id=3), a(id=4, flags=AF.linked)]) == [
        A.linked_event_failed, A.code_must_not_be_zero, A.ok, A.linked_event_chain_open]
    assert [x.id for x in b.created] == [3]
