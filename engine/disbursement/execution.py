"""Funding programmes and executing approved batches: ledger postings and pacs.008 to banks.

Funding: a programme's payer account is registered in the settlement registry
(:func:`engine.settlement.registry.add_payer`: kind ``funding`` for a subsidy programme,
``wage`` for an employer's wage escrow), prefunded (``debits_must_not_exceed_credits``) and
attributed to its bank; funding moves money from that bank's settlement account into it.

Execution is all-or-nothing at the batch level but never holds the ledger's journal head
for long: one ``create_transfers`` inside a caller transaction holds the head until that
transaction commits and would stall every tap for the whole of a million-line batch. So
the batch total moves first, in one transfer, and the lines follow in short transactions
of :data:`POST_LINES` lines:

1. Commit the funds, in one transaction: record the batch's payments (the ``paid once per
   person, programme and period`` constraint), move the batch to EXECUTING and, last (the
   head is locked from there to the commit), move the batch's accepted total from the
   payer account to the batch's own escrow account (:func:`escrow_account_id`, at the
   payer's bank, prefunded). That transfer is the one funds check: ``exceeds_credits``
   rolls everything back and :class:`InsufficientFundsError` names the shortfall; nothing
   is posted and the batch stays APPROVED. Once it commits, the money is the batch's: no
   other spending from the payer account can take it away.
2. Post. First the card accounts not opened yet, found by one set-based query over the
   batch's accepted lines (an opened card account is attributed to its bank in
   ``settlement_accounts``; :data:`CARD_ACCOUNT_ID_SQL`), in short transactions of their
   own. Cards registered through ``onecard cardholders import`` have theirs already
   (:func:`open_registered_card_accounts`), so a batch of registered cards opens none.
   Then per stored chunk (:data:`engine.disbursement.store.CHUNK_LINES` lines, their own
   fields opened once) and per part of :data:`POST_LINES` accepted lines: the part's
   pacs.008.001.08, one per issuing bank, rendered and validated
   (:func:`engine.settlement.outbox.prepare_payouts`) before its transaction starts (the
   next part's while this one posts), then one transaction that checks the run still holds
   the lease (:func:`_hold`), writes them to the outbox with their payment rows and, last
   (so the journal head is held for the postings and the commit only), posts one transfer per line,
   escrow → card account (plain transfers: no pending or linked flags, so the ledger
   decides the part server-side in one statement, its fast path). A run that drew the
   transfer ids itself (step 1) knows they are new and looks nothing up; a resumed run
   looks each part's up and skips those posted. The payer stays the pacs.008 debtor and is
   what a rejection or return credits: a return reverses to the funding account. The last
   part's transaction also marks the chunk posted (``posted_messages``).
3. EXECUTED, once the escrow is back to zero (every line posted).

Per line that is one ledger transfer (it was a pending reservation and its post before):
half the ledger work, and a refused attempt leaves nothing to void. A part is one
``create_transfers`` call (at most ``BATCH_MAX`` = 8,189) and one pacs.008 per issuing
bank; :data:`CHUNKS_IN_FLIGHT` chunks run at once on their own connections, so Python
renders and validates one chunk's pacs.008 while PostgreSQL writes the other's.

One run at a time per batch: a lease row (``disbursement_execution_leases``, as the outbox
dispatcher leases its messages: an expiry pushed :data:`LEASE_S` ahead by the holder at
each step, in the step's transaction; while posting, each part's transaction share-locks
the row instead, so the chunks in flight do not queue on it and a run taking the lease
over waits for the part, and a part renews the lease after its commit once half of it is
gone). A second run is refused at once with
:class:`ConflictError`; a run that died is taken over when its lease expires; a run that
lost its lease stops at its next step.

Transfer ids are fixed at step 1 (:func:`line_transfer_id`), so running ``execute`` again
after a crash at any point resumes: posted chunks are skipped, and in a chunk cut short the parts
already posted are found by their transfer ids (``prepare_payouts`` leaves them out). An EXECUTED
batch is refused. Each line's bank outcome is the status of its payment
(``settlement_payments``, by the EndToEndId derived from the batch's transfer base id and
the line: :func:`line_end_to_end_id`), which the bank API moves with pacs.002 and pacs.004 (a
rejection or return reverses the posting to the funding account), so lines need no status
column of their own.

Throughput (``python -m benchmarks.batch``, README): per line about 28-31 us of Python (half
of it rendering, parsing and validating the pacs.008, the parsing and validating in
validator threads) and 28-31 us of PostgreSQL (the ledger's transfer and balances, the
payment row, the outbox, the period's payment record), for cards whose accounts were
opened at import; it was 38 + 47 us. 1,000,000 lines executed in 38.4 s on the quiet
machine (2026-12-01; the whole batch, submit included, 54.3 s), where 59 us of CPU per line on
two cores would allow about 30 s: the parts' postings are the critical path (one part
holds the journal head at a time; timed at 200,000 lines under load 1-6, the parts'
postings took 63-67% of the wall time, the ledger's server-side call alone about half of
it). Until the share lock (:func:`_hold`) the chunk in flight beside a posting part
waited on the lease row; it now waits at the journal head, which the ledger's call takes
first, so the share lock alone gained no wall time (paired runs at load 2-3, README).

What it does not do: card accounts are derived from the card's token
(:func:`card_account_id`); a card also enrolled for transit under another account id gets a
second ledger account.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import secrets
from collections.abc import AsyncIterator, Callable, Mapping
from typing import NoReturn
from dataclasses import dataclass

import asyncpg

from adapters.iso20022.ids import end_to_end_id
from adapters.iso20022.pacs008 import TRANSACTIONS_PER_MESSAGE_MAX
from engine.disbursement.amount import format_minor
from engine.disbursement.bank_card import compact_pan
from engine.disbursement.errors import InsufficientFundsError
from engine.disbursement.lifecycle import BatchState
from engine.disbursement.lines import open_fields
from engine.disbursement.store import CHUNK_LINES, DisbursementStore
from engine.errors import ConflictError, NotFoundError, UsageError
from engine.settlement.outbox import (LEASE_S, Payout, PreparedPayouts, create_payout_transfers, prepare_payouts,
                                      write_instructions)
from engine.settlement.registry import (ACCOUNT_CODE_FUNDING, ACCOUNT_CODE_WAGE, LEDGER_CNY, add_payer,
                                        attribute_accounts, get_bank)
from engine.taps.posting import card_account
from ledger.ids import new_id, new_id_run
from ledger.limits import BATCH_MAX
from ledger.results import CreateAccountResult, CreateTransferResult
from ledger.service import Ledger, id_bytes
from ledger.types import Account, AccountFlags, Transfer

TRANSFER_CODE_FUNDING = 240
# Payer account → a batch's escrow: the batch's accepted total, before its lines are posted.
TRANSFER_CODE_ESCROW = 241
PURPOSES = {"subsidy": "GOVT", "wage": "SALA"}
PAYER_KINDS = {"subsidy": ("funding", ACCOUNT_CODE_FUNDING), "wage": ("wage", ACCOUNT_CODE_WAGE)}
ENGINE_CODE = "ONECARD"
# Lines per batch the transfer ids leave room for above a base id (whose random low 79
# bits have room for counting up, ledger.ids).
LINES_MAX = 2**31 - 1
# Chunks posted at once, each on its own connection (the CLI's pool has two): Python
# renders one chunk's pacs.008 while PostgreSQL writes the other's.
CHUNKS_IN_FLIGHT = 2
# Lines posted per transaction: its ledger write holds the journal head, which every tap
# flush needs, until the commit, so this bounds how long a batch can stall the taps.
POST_LINES = 1_000
# Batches of at least this many accepted lines have the statistics of disbursement_lines
# refreshed (ANALYZE, about 0.1 s) before they execute: right after submit they often still
# describe the table without the batch, and the planner then joins the batch's lines to
# the cardholders and the settlement accounts by an index probe per line, which misses the
# cache at this size, instead of a hash join (measured at a million lines: the period's
# payment records 10.3 s -> 3.3 s, the unopened card accounts about 10 s -> 1.5 s).
ANALYZE_LINES_MIN = 50_000

assert set(PURPOSES) == set(PAYER_KINDS) and LEASE_S > 0 and CHUNKS_IN_FLIGHT >= 1
# A part's postings are one ledger call, and each bank's share of a part one pacs.008.
assert 1 <= POST_LINES <= min(CHUNK_LINES, BATCH_MAX, TRANSACTIONS_PER_MESSAGE_MAX)

_ACCOUNTS_DONE = (CreateAccountResult.ok, CreateAccountResult.exists)
# card_account_id as a PostgreSQL expression of a pan_token column (the 16 bytes of the id),
# so one query finds the cards whose account is not opened yet: an opened card account is
# attributed to its bank in settlement_accounts in the same transaction.
CARD_ACCOUNT_ID_SQL = "substr(sha256(convert_to('onecard card account:' || {pan_token}, 'UTF8')), 1, 16)"


@dataclass(frozen=True, slots=True)
class Funding:
    """A programme's payer account: ledger ``account_id`` at ``bank_code``;
    ``available_minor`` = credits posted - debits posted - debits pending (fen)."""

    programme_code: str
    account_id: int
    bank_code: str
    available_minor: int


@dataclass(frozen=True, slots=True)
class Execution:
    """What executing a batch did: ``lines`` posted, ``amount_minor`` in total (fen), and the
    batch's pacs.008 ``messages`` in the outbox."""

    batch_id: int
    lines: int
    amount_minor: int
    messages: int


def _derived_id(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode("ascii")).digest()[:16], "big") or 1


def card_account_id(pan_token: str) -> int:
    """The ledger account id (128 bits) of the card with this token (in SQL:
    :data:`CARD_ACCOUNT_ID_SQL`).

    >>> card_account_id("0" * 32) == card_account_id("0" * 32) != card_account_id("1" * 32)
    True
    """
    return int.from_bytes(hashlib.sha256(b"onecard card account:" + pan_token.encode("ascii")).digest()[:16], "big")


def escrow_account_id(batch_id: int) -> int:
    """The ledger account id (128 bits) of the batch's escrow: its money in transit between
    the payer account and the card accounts (zero once the batch is executed).

    >>> escrow_account_id(1) == escrow_account_id(1) != escrow_account_id(2)
    True
    """
    assert batch_id >= 1
    return _derived_id(f"onecard disbursement escrow {batch_id}")


def line_transfer_id(base_id: int, line: int) -> int:
    """The id of a line's payout transfer, escrow → card: the batch's transfer base id
    (:func:`transfer_base_id`, which is also the id of its escrow transfer) plus the line
    number. The base is drawn with :func:`ledger.ids.new_id_run` reserving the batch's
    lines, so no other id of the process (another batch's base drawn in the same
    millisecond) falls among them. Stable across retries, and time-ordered as the base is, so a
    million postings go in at the right edge of every index keyed by transfer id or
    EndToEndId (the base-36 EndToEndId sorts as the id does) instead of all over it.

    >>> line_transfer_id(2**100, 1), line_transfer_id(2**100, 2) - line_transfer_id(2**100, 1)
    (1267650600228229401496703205377, 1)
    """
    assert base_id > 0 and 1 <= line <= LINES_MAX
    return base_id + line


def line_end_to_end_id(base_id: int, line: int) -> str:
    """The pacs.008 EndToEndId (28 characters) of a line's payment, from its transfer id.

    >>> line_end_to_end_id(2**100, 1) == end_to_end_id(line_transfer_id(2**100, 1))
    True
    """
    return end_to_end_id(line_transfer_id(base_id, line))


async def transfer_base_id(connection: asyncpg.Connection, batch_id: int) -> int:
    """The batch's transfer base id (see :func:`line_transfer_id`), 0 until its funds were
    committed (step 1 of the module docstring)."""
    stored = await connection.fetchval("SELECT execution_base_id FROM disbursement_batches WHERE id = $1", batch_id)
    return int.from_bytes(stored, "big") if stored else 0


async def funding(connection: asyncpg.Connection, ledger: Ledger, programme_code: str) -> Funding | None:
    """The programme's payer account and what it has available, ``None`` before it is funded.

    Raises ``NotFoundError`` for an unknown programme.
    """
    row = await connection.fetchrow(
        "SELECT funding_account_id, payer_bank_code FROM disbursement_programmes WHERE code = $1", programme_code)
    if row is None:
        raise NotFoundError(f"no programme {programme_code}")
    if row["funding_account_id"] is None:
        return None
    account_id = int.from_bytes(row["funding_account_id"], "big")
    (account,) = await ledger.lookup_accounts([account_id], connection=connection)
    available = account.credits_posted - account.debits_posted - account.debits_pending
    return Funding(programme_code, account_id, row["payer_bank_code"], available)


async def fund_programme(store: DisbursementStore, ledger: Ledger, programme_code: str, amount_minor: int, *,
                         bank_code: str | None = None) -> Funding:
    """Credit ``amount_minor`` fen to the programme's payer account from its bank's
    settlement account; the first funding opens the account at ``bank_code``.

    Raises
    ------
    UsageError
        ``amount_minor`` is not positive, or the first funding names no bank (``--bank``),
        or a later one names another bank than the account's.
    NotFoundError
        No such programme.
    engine.settlement.errors.UnknownParticipantError
        No such bank.
    """
    if amount_minor <= 0:
        raise UsageError("funding amount must be more than 0")
    programme = await store.programme(programme_code)
    async with store.pool.acquire() as connection:
        current = await funding(connection, ledger, programme_code)
    if current is None:
        if not bank_code:
            raise UsageError(f"programme {programme_code} has no funding account yet: name its bank (--bank)")
        kind = "funding" if programme.kind == "subsidy" else "wage"
        account_id = await add_payer(store.pool, ledger, f"programme:{programme_code}", bank_code, kind)
        async with store.pool.acquire() as connection:
            await connection.execute(
                "UPDATE disbursement_programmes SET funding_account_id = $2, payer_bank_code = $3 WHERE code = $1",
                programme_code, id_bytes(account_id), bank_code)
    elif bank_code and bank_code != current.bank_code:
        raise UsageError(f"programme {programme_code} is funded at {current.bank_code}, not {bank_code}")
    async with store.pool.acquire() as connection, connection.transaction():
        payer = await funding(connection, ledger, programme_code)
        assert payer is not None
        bank = await get_bank(connection, payer.bank_code)
        (result,) = await ledger.create_transfers([Transfer(
            id=new_id(), debit_account_id=bank.settlement_account_id, credit_account_id=payer.account_id,
            amount=amount_minor, ledger=LEDGER_CNY, code=TRANSFER_CODE_FUNDING)], connection=connection)
        if result is not CreateTransferResult.ok:
            raise ConflictError(f"funding {programme_code} refused by the ledger: {result.name}")
    async with store.pool.acquire() as connection:
        funded = await funding(connection, ledger, programme_code)
    assert funded is not None
    return funded


@dataclass(frozen=True, slots=True)
class _Context:
    batch_id: int
    holder: str
    content_sha256: str
    programme_code: str
    programme_name: str
    purpose: str
    period: str
    accepted_count: int
    accepted_minor: int
    payer: Funding
    payer_kind: str
    payer_code: int
    base_id: int
    # The transfer ids were drawn by this run (it committed the funds): none can be posted yet.
    fresh: bool = False


async def execute_batch(store: DisbursementStore, ledger: Ledger, batch_id: int, actor: str, at_ms: int, *,
                        on_lines: Callable[[int], None] | None = None) -> Execution:
    """Execute an APPROVED batch (or resume an EXECUTING one); see the module docstring.

    ``on_lines`` is called with the number of lines after each chunk (progress; the lines
    of a batch are counted once).

    Raises
    ------
    InsufficientFundsError
        The funding account cannot cover the batch; nothing posted, the batch stays APPROVED.
    ConflictError
        The batch is not APPROVED or EXECUTING (e.g. already executed: nothing is paid
        twice), another run is executing it (its lease has not expired), this run lost its
        lease to another, its programme has no funding account, or a person of the batch
        was paid in the period by another batch since validation (nothing posted).
    """
    holder = secrets.token_hex(8)
    async with _lease(store.pool, batch_id, holder):
        return await _execute(store, ledger, batch_id, holder, actor, at_ms, on_lines)


@contextlib.asynccontextmanager
async def _lease(pool: asyncpg.Pool, batch_id: int, holder: str) -> AsyncIterator[None]:
    """Hold the batch's execution lease for the block (see the module docstring); a second
    run is refused at once rather than racing the first."""
    async with pool.acquire() as connection:
        taken = await connection.fetchval(
            "INSERT INTO disbursement_execution_leases (batch_id, holder, expires_at)"
            " VALUES ($1, $2, now() + make_interval(secs => $3))"
            " ON CONFLICT (batch_id) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at"
            " WHERE disbursement_execution_leases.expires_at <= now() RETURNING holder", batch_id, holder, LEASE_S)
    if taken is None:
        raise ConflictError(f"batch {batch_id} is being executed by another run; try again when it ends "
                            f"(a run that died is taken over {LEASE_S:.0f} s after its last step)")
    try:
        yield
    finally:
        async with pool.acquire() as connection:
            await connection.execute("DELETE FROM disbursement_execution_leases WHERE batch_id = $1 AND holder = $2",
                                     batch_id, holder)


async def _renew(connection: asyncpg.Connection, context: _Context) -> None:
    """Push the lease :data:`LEASE_S` ahead, in the caller's transaction if it has one (the
    row stays locked until the commit, so a run that took the lease over waits for this
    step to end; the renewal itself waits for the parts of this run holding the lease,
    :func:`_hold`).

    Raises ``ConflictError`` if another run took the lease over."""
    renewed = await connection.fetchval(
        "UPDATE disbursement_execution_leases SET expires_at = now() + make_interval(secs => $3)"
        " WHERE batch_id = $1 AND holder = $2 RETURNING batch_id", context.batch_id, context.holder, LEASE_S)
    if renewed is None:
        _lost(context)


async def _hold(connection: asyncpg.Connection, context: _Context) -> float:
    """Check in the caller's transaction that this run still holds the lease, and share-lock
    its row until the commit: a run taking the lease over waits for this step to end, but
    the two chunks of this run in flight do not wait for each other (as they did on the row
    lock of :func:`_renew`, for the whole of each other's postings). Returns the seconds
    the lease has left: the caller renews it after its commit once less than half of
    :data:`LEASE_S` is left (a renewal waits for the other chunk's part, so not every time).

    Raises ``ConflictError`` if another run took the lease over."""
    assert connection.is_in_transaction()
    left_s = await connection.fetchval(
        "SELECT extract(epoch FROM expires_at - now())::float8 FROM disbursement_execution_leases"
        " WHERE batch_id = $1 AND holder = $2 FOR SHARE", context.batch_id, context.holder)
    if left_s is None:
        _lost(context)
    return left_s


def _lost(context: _Context) -> NoReturn:
    raise ConflictError(f"batch {context.batch_id}: this run's execution lease expired and another run took "
                        "it over; that run goes on from here")


async def _execute(store: DisbursementStore, ledger: Ledger, batch_id: int, holder: str, actor: str, at_ms: int,
                   on_lines: Callable[[int], None] | None) -> Execution:
    context, state = await _start(store, ledger, batch_id, holder)
    chunks = await _chunks(store.pool, batch_id)
    if context.accepted_count >= ANALYZE_LINES_MIN:
        async with store.pool.acquire() as connection:
            await connection.execute("ANALYZE disbursement_lines (batch_id, result, pan_token)")
    opening = _open_missing_card_accounts(store.pool, ledger, context)
    if state is BatchState.approved:
        # Both are server work with Python idle: on two connections they use both cores.
        # Both end before an error is raised (opening card accounts is harmless if the
        # funds are refused: an opened account is empty, and opening it again is a no-op).
        opened, committed = await asyncio.gather(opening, _commit_funds(store, ledger, context, actor, at_ms),
                                                 return_exceptions=True)
        for outcome in (committed, opened):
            if isinstance(outcome, BaseException):
                raise outcome
        context = dataclasses.replace(context, base_id=committed, fresh=True)
    else:
        await opening
    await _post_chunks(store, ledger, context, chunks, on_lines)
    async with store.pool.acquire() as connection, connection.transaction():
        await _renew(connection, context)
        if context.accepted_minor:
            (escrow,) = await ledger.lookup_accounts([escrow_account_id(batch_id)], connection=connection)
            assert escrow.credits_posted == context.accepted_minor and escrow.debits_posted == escrow.credits_posted, \
                "every line of the batch was posted from its escrow"
        await store.transition_in(connection, batch_id, BatchState.executed, actor, at_ms)
        messages = await connection.fetchval(
            "SELECT coalesce(sum(posted_messages), 0) FROM disbursement_line_fields WHERE batch_id = $1", batch_id)
    return Execution(batch_id, context.accepted_count, context.accepted_minor, messages)


async def _post_chunks(store: DisbursementStore, ledger: Ledger, context: _Context,
                       chunks: list[tuple[int, int, int]], on_lines: Callable[[int], None] | None) -> None:
    """Post every chunk, :data:`CHUNKS_IN_FLIGHT` at a time: one prepares its payouts and
    pacs.008 (Python) while the database writes another's. After a failure no new chunk
    starts, those in flight finish (each is its own transaction), then the error is raised."""
    waiting = iter(chunks)
    in_flight: dict[asyncio.Task, int] = {}
    failure: BaseException | None = None
    while True:
        while failure is None and len(in_flight) < CHUNKS_IN_FLIGHT:
            chunk = next(waiting, None)
            if chunk is None:
                break
            task = asyncio.ensure_future(_post_chunk(store, ledger, context, *chunk))
            in_flight[task] = chunk[2] - chunk[1]
        if not in_flight:
            break
        done, _ = await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            lines = in_flight.pop(task)
            if task.exception() is not None:
                failure = failure or task.exception()
            elif on_lines:
                on_lines(lines)
    if failure is not None:
        raise failure


async def _start(store: DisbursementStore, ledger: Ledger, batch_id: int,
                 holder: str) -> tuple[_Context, BatchState]:
    batch = await store.batch(batch_id)
    if batch.state not in (BatchState.approved, BatchState.executing):
        raise ConflictError(f"batch {batch_id} is {batch.state.value}; only an approved batch is executed")
    programme = await store.programme(batch.programme_code)
    async with store.pool.acquire() as connection:
        payer = await funding(connection, ledger, programme.code)
        base_id = await transfer_base_id(connection, batch_id)
    if payer is None:
        raise ConflictError(f"programme {programme.code} has no funding account: fund it first "
                            "(onecard programme fund)")
    payer_kind, payer_code = PAYER_KINDS[programme.kind]
    context = _Context(batch_id, holder, batch.content_sha256, programme.code, programme.name,
                       PURPOSES[programme.kind], batch.period, batch.accepted_count, batch.accepted_minor, payer,
                       payer_kind, payer_code, base_id)
    return context, batch.state


async def _chunks(pool: asyncpg.Pool, batch_id: int) -> list[tuple[int, int, int]]:
    """(chunk, first line, end line exclusive) of each stored chunk not posted yet, in order
    (the sealed fields are read chunk by chunk: a million lines of them do not fit the
    memory target)."""
    async with pool.acquire() as connection:
        rows = await connection.fetch(
            "SELECT chunk, first_line, posted_messages FROM disbursement_line_fields WHERE batch_id = $1"
            " ORDER BY chunk", batch_id)
        lines_count = await connection.fetchval("SELECT lines_count FROM disbursement_batches WHERE id = $1",
                                                batch_id)
    if lines_count and not rows:
        raise ConflictError(f"batch {batch_id} was stored without its lines; submit the file again")
    ends = [row["first_line"] for row in rows[1:]] + [lines_count + 1]
    return [(row["chunk"], row["first_line"], end) for row, end in zip(rows, ends) if row["posted_messages"] is None]


async def _commit_funds(store: DisbursementStore, ledger: Ledger, context: _Context, actor: str,
                        at_ms: int) -> int:
    """Step 1 of the module docstring: payments recorded, EXECUTING, total into escrow;
    return the batch's transfer base id (fixed here, with the rest)."""
    async with store.pool.acquire() as connection:
        try:
            return await _commit_funds_in(connection, store, ledger, context, actor, at_ms)
        except asyncpg.UniqueViolationError as error:
            if error.constraint_name != "disbursement_payments_pkey":
                raise
            # Rolled back; counted afterwards, as the error path can afford.
            paid = await connection.fetchval(
                "SELECT count(*) FROM disbursement_lines l JOIN disbursement_cardholders c USING (pan_token)"
                " JOIN disbursement_payments p ON p.programme_code = $2 AND p.period = $3 AND p.id_hash = c.id_hash"
                " WHERE l.batch_id = $1 AND l.result = 0", context.batch_id, context.programme_code, context.period)
            raise ConflictError(f"batch {context.batch_id}: {paid} person(s) were paid in the period by another "
                                "batch since validation; nothing was posted, submit a corrected file") from None


async def _commit_funds_in(connection: asyncpg.Connection, store: DisbursementStore, ledger: Ledger,
                           context: _Context, actor: str, at_ms: int) -> int:
    escrow_id = escrow_account_id(context.batch_id)
    async with connection.transaction():
        await _renew(connection, context)
        batch = await store.locked_batch(connection, context.batch_id)
        # Reserved: the escrow transfer's id and one per line number after it.
        base_id = new_id_run(batch.lines_count + 1)
        await _require_issuing_banks(connection, context.batch_id)
        # A person paid in the period meanwhile is a unique violation (the caller reports
        # it). A plain insert costs a third less than ON CONFLICT's speculative one, and in
        # key order it appends to the primary key's pages instead of touching them at random.
        recorded = await connection.execute(
            "INSERT INTO disbursement_payments (programme_code, period, id_hash, batch_id, line, amount_minor)"
            " SELECT $2, $3, c.id_hash, l.batch_id, l.line, l.amount_minor FROM disbursement_lines l"
            " JOIN disbursement_cardholders c USING (pan_token) WHERE l.batch_id = $1 AND l.result = 0"
            " ORDER BY c.id_hash", context.batch_id, context.programme_code, context.period)
        unmatched = batch.accepted_count - int(recorded.rsplit(" ", 1)[1])
        if unmatched:
            # A card replaced or removed in the registry since validation (its token no
            # longer joins); raising rolls the transaction back.
            raise ConflictError(f"batch {context.batch_id}: {unmatched} accepted line(s) no longer match a registered "
                                "card (the cardholder registry changed since validation); nothing was posted, "
                                "submit a corrected file")
        await store.transition_in(connection, context.batch_id, BatchState.executing, actor, at_ms)
        await connection.execute("UPDATE disbursement_batches SET execution_base_id = $2 WHERE id = $1",
                                 context.batch_id, id_bytes(base_id))
        if not context.accepted_minor:
            return base_id
        await attribute_accounts(connection, [(escrow_id, context.payer.bank_code, context.payer_kind)])
        # The ledger last: from its first write the journal head is locked until the commit.
        (opened,) = await ledger.create_accounts([Account(
            id=escrow_id, ledger=LEDGER_CNY, code=context.payer_code,
            flags=int(AccountFlags.debits_must_not_exceed_credits))], connection=connection)
        assert opened in _ACCOUNTS_DONE, f"escrow account refused: {opened.name}"
        (result,) = await ledger.create_transfers([Transfer(
            id=base_id, debit_account_id=context.payer.account_id,
            credit_account_id=escrow_id, amount=context.accepted_minor, ledger=LEDGER_CNY,
            code=TRANSFER_CODE_ESCROW)], connection=connection)
        if result is CreateTransferResult.exceeds_credits:
            payer = await funding(connection, ledger, context.programme_code)
            assert payer is not None
            shortfall = context.accepted_minor - payer.available_minor
            raise InsufficientFundsError(
                f"programme {context.programme_code} has {format_minor(payer.available_minor)} yuan available but "
                f"batch {context.batch_id} needs {format_minor(context.accepted_minor)} yuan: short by "
                f"{format_minor(shortfall)} yuan; nothing was posted", shortfall)
        if result is not CreateTransferResult.ok:
            raise ConflictError(f"batch {context.batch_id}: moving its total to escrow was refused by the ledger "
                                f"({result.name}); nothing was posted")
    return base_id


async def _require_issuing_banks(connection: asyncpg.Connection, batch_id: int) -> None:
    """Refuse, before anything is posted, a batch paying cards of banks the engine does not
    settle with (each issuing bank receives its lines' pacs.008)."""
    missing = await connection.fetch(
        # The lines' own bank codes (those their pacs.008 go to), without joining a million
        # lines to the registry.
        "SELECT DISTINCT l.bank_code FROM disbursement_lines l WHERE l.batch_id = $1 AND l.result = 0"
        " AND NOT EXISTS (SELECT 1 FROM settlement_banks b WHERE b.bank_code = l.bank_code) ORDER BY 1", batch_id)
    if missing:
        codes = ", ".join(row["bank_code"] for row in missing)
        raise ConflictError(f"batch {batch_id}: the cards' issuing banks {codes} are not registered "
                            "(onecard banks add); nothing was posted")


async def _post_chunk(store: DisbursementStore, ledger: Ledger, context: _Context, chunk: int, first_line: int,
                      end_line: int) -> None:
    """Post the chunk's accepted lines, escrow → card, with their pacs.008 (step 2), in parts
    of :data:`POST_LINES`, each its own transaction; the last part's marks the chunk posted."""
    async with store.pool.acquire() as connection:
        rows = await connection.fetch(
            "SELECT l.line, l.amount_minor, l.bank_code, l.name,"
            f" {CARD_ACCOUNT_ID_SQL.format(pan_token='l.pan_token')} AS card_account FROM disbursement_lines l"
            " WHERE l.batch_id = $1 AND l.result = 0 AND l.line >= $2 AND l.line < $3 ORDER BY l.line",
            context.batch_id, first_line, end_line)
        payouts = await _payouts(store, connection, context, chunk, first_line, rows) if rows else []
        parts = [payouts[start:start + POST_LINES] for start in range(0, len(payouts), POST_LINES)]
        # One pacs.008 per issuing bank and part (module assertions).
        messages = sum(len({p.bank_code for p in part}) for part in parts)

        async def prepare(part: list[Payout]) -> PreparedPayouts:
            # Parts posted by an interrupted run are looked up and skipped (a run that drew
            # the ids itself need not look).
            return await prepare_payouts(connection, ledger, part, engine_code=ENGINE_CODE, new=context.fresh)

        upcoming: asyncio.Future | None = None
        try:
            for number, part in enumerate(parts or [[]], 1):
                prepared = await (upcoming or prepare(part)) if part else None
                upcoming = None
                if context.fresh and number < len(parts):
                    # The next part's pacs.008 are rendered and validated (in a thread; new ids
                    # need no lookup, so the connection stays free) while this part posts.
                    upcoming = asyncio.ensure_future(prepare(parts[number]))
                async with connection.transaction():
                    lease_left_s = await _hold(connection, context)
                    if number == max(len(parts), 1):
                        marked = await connection.execute(
                            "UPDATE disbursement_line_fields SET posted_messages = $3"
                            " WHERE batch_id = $1 AND chunk = $2 AND posted_messages IS NULL",
                            context.batch_id, chunk, messages)
                        assert marked == "UPDATE 1", "the lease keeps other runs off this chunk"
                    if prepared is not None:
                        await write_instructions(connection, prepared)
                        # The journal head stays locked until the commit: last, so the chunk
                        # in flight beside this one waits for it only while this part posts.
                        await create_payout_transfers(connection, ledger, prepared)
                if lease_left_s < LEASE_S / 2:
                    # Autocommitted, holding nothing: it waits for the other chunk's part
                    # holding the row shared, never the other way round.
                    await _renew(connection, context)
        finally:
            if upcoming is not None:
                upcoming.cancel()


async def _payouts(store: DisbursementStore, connection: asyncpg.Connection, context: _Context, chunk: int,
                   first_line: int, rows: list[asyncpg.Record]) -> list[Payout]:
    """The chunk's accepted lines as payouts from the batch's escrow (their own fields opened)."""
    sealed = await connection.fetchval(
        "SELECT sealed FROM disbursement_line_fields WHERE batch_id = $1 AND chunk = $2", context.batch_id, chunk)
    fields = await open_fields(store.keys, context.content_sha256, first_line, sealed)
    escrow_id = escrow_account_id(context.batch_id)
    payouts = []
    for r in rows:
        transfer_id = line_transfer_id(context.base_id, r["line"])
        payouts.append(Payout(
            transfer_id=transfer_id, payer_account_id=context.payer.account_id,
            card_account_id=int.from_bytes(r["card_account"], "big"), amount_minor=r["amount_minor"],
            bank_code=r["bank_code"], creditor_name=r["name"],
            creditor_account=compact_pan(fields[r["line"] - first_line][3]), payer_name=context.programme_name,
            remittance_information=f"{context.programme_code} {context.period} line {r['line']}",
            purpose=context.purpose, escrow_account_id=escrow_id, end_to_end_id=end_to_end_id(transfer_id)))
    return payouts


async def _open_missing_card_accounts(pool: asyncpg.Pool, ledger: Ledger, context: _Context) -> None:
    """Open the card accounts the batch's accepted lines need and that are not opened yet
    (cards whose bank was registered after their import), before any line is posted.

    One set-based query per run: probing ``settlement_accounts`` once per line, as each
    chunk's query did, cost about 10 us of PostgreSQL per line at a million lines (the
    probes miss the buffer cache the ledger's writes churn) against 1.5 us for the hash
    anti-join the planner picks once it knows the batch's size (:data:`ANALYZE_LINES_MIN`).
    Needs one connection of ``pool``, and a second one only if some account is missing.
    """
    async with pool.acquire() as reader, reader.transaction():
        card_account = CARD_ACCOUNT_ID_SQL.format(pan_token="l.pan_token")
        cursor = await reader.cursor(
            f"SELECT {card_account} AS account_id, l.bank_code FROM disbursement_lines l"
            " WHERE l.batch_id = $1 AND l.result = 0 AND NOT EXISTS"
            f" (SELECT 1 FROM settlement_accounts a WHERE a.account_id = {card_account})", context.batch_id)
        rows = await cursor.fetch(POST_LINES)
        if not rows:
            return  # the common case needs no second connection
        async with pool.acquire() as writer:
            while rows:
                await open_card_accounts(writer, ledger, {int.from_bytes(r["account_id"], "big"): r["bank_code"]
                                                          for r in rows})
                rows = await cursor.fetch(POST_LINES)


async def open_card_accounts(connection: asyncpg.Connection, ledger: Ledger, cards: Mapping[int, str]) -> None:
    """Open the card accounts ``cards`` (ledger account id → issuing bank code), attributed
    to their banks, in transactions of :data:`POST_LINES` accounts (the ledger write holds
    the journal head); opening one again changes nothing.

    Raises ``engine.settlement.errors.UnknownParticipantError`` for a bank not registered.
    """
    assert not connection.is_in_transaction(), "each part is its own short transaction"
    items = list(cards.items())
    for start in range(0, len(items), POST_LINES):
        part = items[start:start + POST_LINES]
        async with connection.transaction():
            await attribute_accounts(connection, [(account_id, bank, "card") for account_id, bank in part])
            results = await ledger.create_accounts([card_account(account_id) for account_id, _ in part],
                                                   connection=connection)
        assert all(r in _ACCOUNTS_DONE for r in results), f"card accounts refused: {set(results)}"


async def open_registered_card_accounts(pool: asyncpg.Pool, ledger: Ledger) -> int:
    """Open the card account of every active cardholder that has none yet and whose issuing
    bank is registered (``onecard cardholders import`` calls this, so executing a batch
    later need not); return how many were opened. Needs two connections of ``pool``."""
    opened = 0
    async with pool.acquire() as reader, reader.transaction():
        cursor = await reader.cursor(
            f"SELECT {CARD_ACCOUNT_ID_SQL.format(pan_token='c.pan_token')} AS account_id, c.bank_code"
            " FROM disbursement_cardholders c JOIN settlement_banks USING (bank_code)"
            f" WHERE c.status = 'active' AND NOT EXISTS (SELECT 1 FROM settlement_accounts a"
            f" WHERE a.account_id = {CARD_ACCOUNT_ID_SQL.format(pan_token='c.pan_token')})")
        async with pool.acquire() as writer:
            while rows := await cursor.fetch(POST_LINES):
                await open_card_accounts(writer, ledger, {int.from_bytes(r["account_id"], "big"): r["bank_code"]
                                                          for r in rows})
                opened += len(rows)
    return opened
