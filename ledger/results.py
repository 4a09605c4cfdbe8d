"""Per-item results of ``create_accounts`` and ``create_transfers`` (TigerBeetle 0.16 codes).

Each item of a batch gets exactly one result. The members are listed in their priority
order: when several apply, the first listed is returned. The numbers are TigerBeetle's,
so they are not in priority order and have gaps (codes for features onecard does not have,
such as imported events, are absent; input that TigerBeetle would answer with
``reserved_flag`` is refused whole with :class:`ledger.errors.InvalidRequestError`).

Transient results depend on the state of other objects and may succeed if the same
transfer is sent again later (an account created, funds arrived, a pending transfer
created): ``debit_account_not_found``, ``credit_account_not_found``,
``pending_transfer_not_found``, ``exceeds_credits``, ``exceeds_debits``,
``debit_account_already_closed``, ``credit_account_already_closed`` and the
``overflows_*`` balance results. All others are permanent for that input.
"""

from enum import IntEnum


class CreateAccountResult(IntEnum):
    """Outcome of one account of a ``create_accounts`` batch, in priority order."""

    ok = 0
    linked_event_failed = 1
    linked_event_chain_open = 2
    timestamp_must_be_zero = 3
    id_must_not_be_zero = 6
    id_must_not_be_int_max = 7
    exists_with_different_flags = 15
    exists_with_different_user_data_128 = 16
    exists_with_different_user_data_64 = 17
    exists_with_different_user_data_32 = 18
    exists_with_different_ledger = 19
    exists_with_different_code = 20
    exists = 21
    flags_are_mutually_exclusive = 8
    debits_pending_must_be_zero = 9
    debits_posted_must_be_zero = 10
    credits_pending_must_be_zero = 11
    credits_posted_must_be_zero = 12
    ledger_must_not_be_zero = 13
    code_must_not_be_zero = 14


class CreateTransferResult(IntEnum):
    """Outcome of one transfer of a ``create_transfers`` batch, in priority order."""

    ok = 0
    linked_event_failed = 1
    linked_event_chain_open = 2
    timestamp_must_be_zero = 3
    id_must_not_be_zero = 5
    id_must_not_be_int_max = 6
    exists_with_different_flags = 36
    exists_with_different_pending_id = 40
    exists_with_different_timeout = 44
    exists_with_different_debit_account_id = 37
    exists_with_different_credit_account_id = 38
    exists_with_different_amount = 39
    exists_with_different_user_data_128 = 41
    exists_with_different_user_data_64 = 42
    exists_with_different_user_data_32 = 43
    exists_with_different_ledger = 67
    exists_with_different_code = 45
    exists = 46
    flags_are_mutually_exclusive = 7
    debit_account_id_must_not_be_zero = 8
    debit_account_id_must_not_be_int_max = 9
    credit_account_id_must_not_be_zero = 10
    credit_account_id_must_not_be_int_max = 11
    accounts_must_be_different = 12
    pending_id_must_be_zero = 13
    pending_id_must_not_be_zero = 14
    pending_id_must_not_be_int_max = 15
    pending_id_must_be_different = 16
    timeout_reserved_for_pending_transfer = 17
    closing_transfer_must_be_pending = 64
    ledger_must_not_be_zero = 19
    code_must_not_be_zero = 20
    debit_account_not_found = 21
    credit_account_not_found = 22
    accounts_must_have_the_same_ledger = 23
    transfer_must_have_the_same_ledger_as_accounts = 24
    pending_transfer_not_found = 25
    pending_transfer_not_pending = 26
    pending_transfer_has_different_debit_account_id = 27
    pending_transfer_has_different_credit_account_id = 28
    pending_transfer_has_different_ledger = 29
    pending_transfer_has_different_code = 30
    exceeds_pending_transfer_amount = 31
    pending_transfer_has_different_amount = 32
    pending_transfer_already_posted = 33
    pending_transfer_already_voided = 34
    pending_transfer_expired = 35
    debit_account_already_closed = 65
    credit_account_already_closed = 66
    overflows_debits_pending = 47
    overflows_credits_pending = 48
    overflows_debits_posted = 49
    overflows_credits_posted = 50
    overflows_debits = 51
    overflows_credits = 52
    overflows_timeout = 53
    exceeds_credits = 54
    exceeds_debits = 55
