"""The posting rules: what one batch of accounts or transfers does, decided in memory.

Pure domain code (no I/O): the store layer (:mod:`ledger.service`) locks and loads the
accounts and transfers a batch touches, hands them to :class:`AccountBatch` or
:class:`TransferBatch`, and writes back what they decided. The rules and the priority
order of the results follow TigerBeetle 0.16 (docs.tigerbeetle.com, reference/requests/
create_accounts and create_transfers); see :mod:`ledger.results`.

Rules onecard documents where TigerBeetle leaves a choice:

- Zero amounts (TigerBeetle 0.16+): a transfer of 0 is accepted and changes no balance;
  posting a pending transfer with amount 0 releases it (posts nothing); posting more than
  the pending amount is ``exceeds_pending_transfer_amount``; a second post or void is
  ``pending_transfer_already_posted`` / ``_voided``. ``AMOUNT_MAX`` posts the whole amount.
- A void's amount must be 0 or the pending amount.
- A pending transfer whose timeout has passed answers ``pending_transfer_expired`` to a
  post or void; its amount is released by :meth:`TransferBatch.expire` (run by
  ``Ledger.expire_pending_transfers``), not by the post attempt.
- Linked chains: if any item fails, every other item of the chain is
  ``linked_event_failed`` and nothing of the chain takes effect; ``linked`` on the last
  item of a batch makes that item ``linked_event_chain_open`` and fails its chain. Any
  result other than ``ok`` (``exists`` too) fails a chain, as in TigerBeetle.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Callable, Sequence, TypeVar

import msgspec

from ledger.limits import AMOUNT_MAX, ID_MAX, NANOSECONDS_PER_SECOND, TIMESTAMP_MAX
from ledger.results import CreateAccountResult, CreateTransferResult
from ledger.types import Account, AccountFlags, Transfer, TransferFlags

A = CreateAccountResult
R = CreateTransferResult

_LINKED = int(TransferFlags.linked)
_PENDING = int(TransferFlags.pending)
_POST = int(TransferFlags.post_pending_transfer)
_VOID = int(TransferFlags.void_pending_transfer)
_BALANCING_DEBIT = int(TransferFlags.balancing_debit)
_BALANCING_CREDIT = int(TransferFlags.balancing_credit)
_CLOSING_DEBIT = int(TransferFlags.closing_debit)
_CLOSING_CREDIT = int(TransferFlags.closing_credit)
_CLOSED = int(AccountFlags.closed)
_HISTORY = int(AccountFlags.history)
_DEBITS_LIMITED = int(AccountFlags.debits_must_not_exceed_credits)
_CREDITS_LIMITED = int(AccountFlags.credits_must_not_exceed_debits)


class PendingStatus(IntEnum):
    """State of a pending transfer; ``pending`` is the only state with a way out."""

    pending = 1
    posted = 2
    voided = 3
    expired = 4


class AccountState:
    """The mutable balances and flags of one locked account while a batch runs."""

    __slots__ = ("id", "ledger", "flags", "debits_pending", "debits_posted", "credits_pending", "credits_posted")

    def __init__(self, id: int, ledger: int, flags: int, debits_pending: int = 0, debits_posted: int = 0,
                 credits_pending: int = 0, credits_posted: int = 0) -> None:
        self.id = id
        self.ledger = ledger
        self.flags = flags
        self.debits_pending = debits_pending
        self.debits_posted = debits_posted
        self.credits_pending = credits_pending
        self.credits_posted = credits_posted

    def snapshot(self) -> tuple[int, int, int, int, int]:
        return (self.flags, self.debits_pending, self.debits_posted, self.credits_pending, self.credits_posted)

    def restore(self, saved: tuple[int, int, int, int, int]) -> None:
        (self.flags, self.debits_pending, self.debits_posted, self.credits_pending, self.credits_posted) = saved


Item = TypeVar("Item", Account, Transfer)
Result = TypeVar("Result", CreateAccountResult, CreateTransferResult)


def run_linked(items: Sequence[Item], create_one: Callable[[Item], Result], mark: Callable[[], object],
               rollback: Callable[[object | None], None], ok: Result, failed: Result,
               chain_open: Result) -> list[Result]:
    """Apply ``create_one`` to each item, treating ``linked`` runs as all-or-nothing chains.

    ``mark()`` returns a checkpoint taken at the start of a chain; at its end
    ``rollback(checkpoint)`` undoes everything since if the chain failed, and
    ``rollback(None)`` just forgets the checkpoint if it succeeded. Returns one result
    per item.
    """
    count = len(items)
    results: list[Result] = [ok] * count
    chain_start = -1
    chain_checkpoint: object = None
    chain_failed = False
    for index, item in enumerate(items):
        linked = item.flags & _LINKED
        if linked and chain_start < 0:
            chain_start, chain_checkpoint, chain_failed = index, mark(), False
        if chain_start >= 0 and chain_failed:
            results[index] = failed
        elif linked and index == count - 1:
            results[index] = chain_open
            chain_failed = True
        else:
            results[index] = create_one(item)
            chain_failed = chain_start >= 0 and results[index] != ok
        if chain_start >= 0 and (not linked or index == count - 1):
            if chain_failed:
                rollback(chain_checkpoint)
                for member in range(chain_start, index + 1):
                    if results[member] == ok:
                        results[member] = failed
            else:
                rollback(None)
            chain_start = -1
    assert len(results) == count
    return results


class AccountBatch:
    """Decides a ``create_accounts`` batch against the existing accounts with those ids."""

    def __init__(self, existing: dict[int, Account]) -> None:
        self.existing = existing
        self.created: list[Account] = []

    def run(self, accounts: Sequence[Account]) -> list[CreateAccountResult]:
        """One result per account; :attr:`created` lists the new accounts (timestamp 0)."""
        return run_linked(accounts, self._create, lambda: len(self.created), self._rollback,
                          A.ok, A.linked_event_failed, A.linked_event_chain_open)

    def _rollback(self, created_count: object | None) -> None:
        if created_count is None:
            return
        assert isinstance(created_count, int)
        for account in self.created[created_count:]:
            del self.existing[account.id]
        del self.created[created_count:]

    def _create(self, a: Account) -> CreateAccountResult:
        if a.timestamp != 0:
            return A.timestamp_must_be_zero
        if a.id == 0:
            return A.id_must_not_be_zero
        if a.id == ID_MAX:
            return A.id_must_not_be_int_max
        existing = self.existing.get(a.id)
        if existing is not None:
            return _account_exists(a, existing)
        if a.flags & _DEBITS_LIMITED and a.flags & _CREDITS_LIMITED:
            return A.flags_are_mutually_exclusive
        if a.debits_pending:
            return A.debits_pending_must_be_zero
        if a.debits_posted:
            return A.debits_posted_must_be_zero
        if a.credits_pending:
            return A.credits_pending_must_be_zero
        if a.credits_posted:
            return A.credits_posted_must_be_zero
        if a.ledger == 0:
            return A.ledger_must_not_be_zero
        if a.code == 0:
            return A.code_must_not_be_zero
        self.existing[a.id] = a
        self.created.append(a)
        return A.ok


def _account_exists(a: Account, e: Account) -> CreateAccountResult:
    # The linked bit only shapes the batch it came in, so it is not part of the identity.
    if (a.flags & ~_LINKED) != (e.flags & ~_LINKED):
        return A.exists_with_different_flags
    if a.user_data_128 != e.user_data_128:
        return A.exists_with_different_user_data_128
    if a.user_data_64 != e.user_data_64:
        return A.exists_with_different_user_data_64
    if a.user_data_32 != e.user_data_32:
        return A.exists_with_different_user_data_32
    if a.ledger != e.ledger:
        return A.exists_with_different_ledger
    if a.code != e.code:
        return A.exists_with_different_code
    return A.exists


class TransferBatch:
    """Decides a ``create_transfers`` batch against locked accounts and known transfers.

    Parameters
    ----------
    accounts : dict[int, AccountState]
        Every existing account the batch names (and those of the pending transfers it
        names), locked by the caller; changed in place.
    transfers : dict[int, Transfer]
        Existing transfers whose id the batch uses as ``id`` or ``pending_id``.
    pending : dict[int, tuple[PendingStatus, int]]
        For each pending transfer in ``transfers``: its status and expiry (ns, 0 = never).
    now_ns : int
        The ledger clock for timeouts, nanoseconds since the epoch.

    After :meth:`run`: :attr:`created` lists the stored form of each new transfer (post
    and void resolved against their pending transfer; timestamp 0 until commit),
    :attr:`pending_changes` the new status of each pending transfer created or resolved,
    :attr:`history` the balances after each transfer of each ``history`` account as
    ``(account_id, index into created, debits_pending, debits_posted, credits_pending,
    credits_posted)``, and :attr:`touched` the accounts whose balances or flags changed.
    """

    def __init__(self, accounts: dict[int, AccountState], transfers: dict[int, Transfer],
                 pending: dict[int, tuple[PendingStatus, int]], now_ns: int) -> None:
        assert 0 < now_ns <= TIMESTAMP_MAX
        self.accounts = accounts
        self.transfers = transfers
        self.pending = pending
        self.now_ns = now_ns
        self.created: list[Transfer] = []
        self.pending_changes: dict[int, PendingStatus] = {}
        self.history: list[tuple[int, int, int, int, int, int]] = []
        self.touched: dict[int, AccountState] = {}
        self._undo: list[tuple[AccountState, tuple[int, int, int, int, int]]] | None = None
        self._undo_pending: list[tuple[int, tuple[PendingStatus, int] | None, PendingStatus | None]] = []

    def run(self, transfers: Sequence[Transfer]) -> list[CreateTransferResult]:
        """One result per transfer, in the order given."""
        return run_linked(transfers, self._create, self._mark, self._rollback,
                          R.ok, R.linked_event_failed, R.linked_event_chain_open)

    def expire(self, pending_id: int) -> bool:
        """Release an unresolved pending transfer whose timeout has passed; True if done."""
        status = self.pending.get(pending_id)
        if status is None or status[0] != PendingStatus.pending or not 0 < status[1] <= self.now_ns:
            return False
        p = self.transfers[pending_id]
        debit, credit = self.accounts[p.debit_account_id], self.accounts[p.credit_account_id]
        self._release(p, debit, credit)
        self._set_status(p.id, PendingStatus.expired)
        return True

    # Chain bookkeeping: accounts are snapshotted before their first change in a chain.
    def _mark(self) -> object:
        self._undo = []
        self._undo_pending = []
        return (len(self.created), len(self.history))

    def _rollback(self, checkpoint: object | None) -> None:
        assert self._undo is not None
        if checkpoint is None:
            self._undo = None
            return
        assert isinstance(checkpoint, tuple)
        created_count, history_count = checkpoint
        for account, saved in reversed(self._undo):
            account.restore(saved)
        for pending_id, old_pending, old_change in reversed(self._undo_pending):
            if old_pending is None:
                del self.pending[pending_id]
            else:
                self.pending[pending_id] = old_pending
            if old_change is None:
                self.pending_changes.pop(pending_id, None)
            else:
                self.pending_changes[pending_id] = old_change
        for transfer in self.created[created_count:]:
            del self.transfers[transfer.id]
        del self.created[created_count:]
        del self.history[history_count:]
        self._undo = None

    def _save(self, account: AccountState) -> None:
        if self._undo is not None:
            self._undo.append((account, account.snapshot()))
        self.touched[account.id] = account

    def _set_status(self, pending_id: int, status: PendingStatus, expires_ns: int = 0) -> None:
        if self._undo is not None:
            self._undo_pending.append((pending_id, self.pending.get(pending_id), self.pending_changes.get(pending_id)))
        old = self.pending.get(pending_id)
        self.pending[pending_id] = (status, old[1] if old else expires_ns)
        self.pending_changes[pending_id] = status

    def _create(self, t: Transfer) -> CreateTransferResult:
        if t.timestamp != 0:
            return R.timestamp_must_be_zero
        if t.id == 0:
            return R.id_must_not_be_zero
        if t.id == ID_MAX:
            return R.id_must_not_be_int_max
        existing = self.transfers.get(t.id)
        if existing is not None:
            return _transfer_exists(t, existing)
        flags = t.flags
        resolving = flags & (_POST | _VOID)
        phases = bool(flags & _PENDING) + bool(flags & _POST) + bool(flags & _VOID)
        if phases > 1 or (resolving and flags & (_BALANCING_DEBIT | _BALANCING_CREDIT | _CLOSING_DEBIT | _CLOSING_CREDIT)):
            return R.flags_are_mutually_exclusive
        if resolving:
            return self._resolve(t)
        return self._post_new(t)

    def _post_new(self, t: Transfer) -> CreateTransferResult:
        flags = t.flags
        pending = flags & _PENDING
        if t.debit_account_id == 0:
            return R.debit_account_id_must_not_be_zero
        if t.debit_account_id == ID_MAX:
            return R.debit_account_id_must_not_be_int_max
        if t.credit_account_id == 0:
            return R.credit_account_id_must_not_be_zero
        if t.credit_account_id == ID_MAX:
            return R.credit_account_id_must_not_be_int_max
        if t.debit_account_id == t.credit_account_id:
            return R.accounts_must_be_different
        if t.pending_id != 0:
            return R.pending_id_must_be_zero
        if not pending and t.timeout_s != 0:
            return R.timeout_reserved_for_pending_transfer
        if not pending and flags & (_CLOSING_DEBIT | _CLOSING_CREDIT):
            return R.closing_transfer_must_be_pending
        if t.ledger == 0:
            return R.ledger_must_not_be_zero
        if t.code == 0:
            return R.code_must_not_be_zero
        debit = self.accounts.get(t.debit_account_id)
        if debit is None:
            return R.debit_account_not_found
        credit = self.accounts.get(t.credit_account_id)
        if credit is None:
            return R.credit_account_not_found
        if debit.ledger != credit.ledger:
            return R.accounts_must_have_the_same_ledger
        if t.ledger != debit.ledger:
            return R.transfer_must_have_the_same_ledger_as_accounts
        if debit.flags & _CLOSED:
            return R.debit_account_already_closed
        if credit.flags & _CLOSED:
            return R.credit_account_already_closed
        amount = t.amount
        if flags & _BALANCING_DEBIT:
            amount = min(amount, max(0, debit.credits_posted - debit.debits_posted - debit.debits_pending))
        if flags & _BALANCING_CREDIT:
            amount = min(amount, max(0, credit.debits_posted - credit.credits_posted - credit.credits_pending))
        if pending:
            if debit.debits_pending + amount > AMOUNT_MAX:
                return R.overflows_debits_pending
            if credit.credits_pending + amount > AMOUNT_MAX:
                return R.overflows_credits_pending
        else:
            if debit.debits_posted + amount > AMOUNT_MAX:
                return R.overflows_debits_posted
            if credit.credits_posted + amount > AMOUNT_MAX:
                return R.overflows_credits_posted
        debits = debit.debits_pending + debit.debits_posted + amount
        credits = credit.credits_pending + credit.credits_posted + amount
        if debits > AMOUNT_MAX:
            return R.overflows_debits
        if credits > AMOUNT_MAX:
            return R.overflows_credits
        if pending and self.now_ns + t.timeout_s * NANOSECONDS_PER_SECOND > TIMESTAMP_MAX:
            return R.overflows_timeout
        if debit.flags & _DEBITS_LIMITED and debits > debit.credits_posted:
            return R.exceeds_credits
        if credit.flags & _CREDITS_LIMITED and credits > credit.debits_posted:
            return R.exceeds_debits
        self._save(debit)
        self._save(credit)
        if pending:
            debit.debits_pending += amount
            credit.credits_pending += amount
            if flags & _CLOSING_DEBIT:
                debit.flags |= _CLOSED
            if flags & _CLOSING_CREDIT:
                credit.flags |= _CLOSED
            self._set_status(t.id, PendingStatus.pending)
        else:
            debit.debits_posted += amount
            credit.credits_posted += amount
        stored = t if amount == t.amount else _replace_amount(t, amount)
        self._record(stored, debit, credit)
        return R.ok

    def _resolve(self, t: Transfer) -> CreateTransferResult:
        if t.pending_id == 0:
            return R.pending_id_must_not_be_zero
        if t.pending_id == ID_MAX:
            return R.pending_id_must_not_be_int_max
        if t.pending_id == t.id:
            return R.pending_id_must_be_different
        if t.timeout_s != 0:
            return R.timeout_reserved_for_pending_transfer
        p = self.transfers.get(t.pending_id)
        if p is None:
            return R.pending_transfer_not_found
        if not p.flags & _PENDING:
            return R.pending_transfer_not_pending
        if t.debit_account_id and t.debit_account_id != p.debit_account_id:
            return R.pending_transfer_has_different_debit_account_id
        if t.credit_account_id and t.credit_account_id != p.credit_account_id:
            return R.pending_transfer_has_different_credit_account_id
        if t.ledger and t.ledger != p.ledger:
            return R.pending_transfer_has_different_ledger
        if t.code and t.code != p.code:
            return R.pending_transfer_has_different_code
        post = t.flags & _POST
        if post:
            amount = p.amount if t.amount == AMOUNT_MAX else t.amount
            if amount > p.amount:
                return R.exceeds_pending_transfer_amount
        else:
            if t.amount not in (0, p.amount):
                return R.pending_transfer_has_different_amount
            amount = p.amount
        status, expires_ns = self.pending[p.id]
        if status == PendingStatus.posted:
            return R.pending_transfer_already_posted
        if status == PendingStatus.voided:
            return R.pending_transfer_already_voided
        if status == PendingStatus.expired or 0 < expires_ns <= self.now_ns:
            return R.pending_transfer_expired
        debit, credit = self.accounts[p.debit_account_id], self.accounts[p.credit_account_id]
        if debit.flags & _CLOSED and not p.flags & _CLOSING_DEBIT:
            return R.debit_account_already_closed
        if credit.flags & _CLOSED and not p.flags & _CLOSING_CREDIT:
            return R.credit_account_already_closed
        if post:
            if debit.debits_posted + amount > AMOUNT_MAX:
                return R.overflows_debits_posted
            if credit.credits_posted + amount > AMOUNT_MAX:
                return R.overflows_credits_posted
        self._release(p, debit, credit)
        if post:
            debit.debits_posted += amount
            credit.credits_posted += amount
            # The closing pending transfer is final once posted: the accounts stay closed.
            if p.flags & _CLOSING_DEBIT:
                debit.flags |= _CLOSED
            if p.flags & _CLOSING_CREDIT:
                credit.flags |= _CLOSED
        self._set_status(p.id, PendingStatus.posted if post else PendingStatus.voided)
        stored = Transfer(
            id=t.id, debit_account_id=p.debit_account_id, credit_account_id=p.credit_account_id,
            amount=amount, pending_id=p.id, user_data_128=t.user_data_128 or p.user_data_128,
            user_data_64=t.user_data_64 or p.user_data_64, user_data_32=t.user_data_32 or p.user_data_32,
            timeout_s=0, ledger=p.ledger, code=p.code, flags=t.flags,
        )
        self._record(stored, debit, credit)
        return R.ok

    def _release(self, p: Transfer, debit: AccountState, credit: AccountState) -> None:
        """Take a pending amount off both accounts and reopen accounts it closed."""
        self._save(debit)
        self._save(credit)
        debit.debits_pending -= p.amount
        credit.credits_pending -= p.amount
        assert debit.debits_pending >= 0 and credit.credits_pending >= 0
        if p.flags & _CLOSING_DEBIT:
            debit.flags &= ~_CLOSED
        if p.flags & _CLOSING_CREDIT:
            credit.flags &= ~_CLOSED

    def _record(self, stored: Transfer, debit: AccountState, credit: AccountState) -> None:
        index = len(self.created)
        self.created.append(stored)
        self.transfers[stored.id] = stored
        for account in (debit, credit):
            if account.flags & _HISTORY:
                self.history.append((account.id, index, account.debits_pending, account.debits_posted,
                                     account.credits_pending, account.credits_posted))


def _replace_amount(t: Transfer, amount: int) -> Transfer:
    return msgspec.structs.replace(t, amount=amount)


def _transfer_exists(t: Transfer, e: Transfer) -> CreateTransferResult:
    """Compare a resent transfer with the stored one (post/void fields may be inherited)."""
    if (t.flags & ~_LINKED) != (e.flags & ~_LINKED):
        return R.exists_with_different_flags
    if t.pending_id != e.pending_id:
        return R.exists_with_different_pending_id
    if t.timeout_s != e.timeout_s:
        return R.exists_with_different_timeout
    resolving = e.flags & (_POST | _VOID)
    if t.debit_account_id != e.debit_account_id and not (resolving and t.debit_account_id == 0):
        return R.exists_with_different_debit_account_id
    if t.credit_account_id != e.credit_account_id and not (resolving and t.credit_account_id == 0):
        return R.exists_with_different_credit_account_id
    if t.amount != e.amount:
        balanced = e.flags & (_BALANCING_DEBIT | _BALANCING_CREDIT) and t.amount > e.amount
        inherited = resolving and (t.amount == AMOUNT_MAX or (e.flags & _VOID and t.amount == 0))
        if not (balanced or inherited):
            return R.exists_with_different_amount
    if t.user_data_128 != e.user_data_128 and not (resolving and t.user_data_128 == 0):
        return R.exists_with_different_user_data_128
    if t.user_data_64 != e.user_data_64 and not (resolving and t.user_data_64 == 0):
        return R.exists_with_different_user_data_64
    if t.user_data_32 != e.user_data_32 and not (resolving and t.user_data_32 == 0):
        return R.exists_with_different_user_data_32
    if t.ledger != e.ledger and not (resolving and t.ledger == 0):
        return R.exists_with_different_ledger
    if t.code != e.code and not (resolving and t.code == 0):
        return R.exists_with_different_code
    return R.exists
