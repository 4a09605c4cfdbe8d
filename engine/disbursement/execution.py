"""Funding programmes and executing approved batches: ledger postings and pacs.008 to banks.

Funding: a programme's payer account is registered in the settlement registry
(:func:`engine.settlement.registry.add_payer`: kind ``funding`` for a subsidy programme,
``wage`` for an employer's wage escrow), prefunded (``debits_must_not_exceed_credits``) and
attributed to its bank; funding moves money from that bank's settlement account into it.

Execution is all-or-nothing at the batch level but never holds the ledger's journal head
for long: one ``create_transfers`` inside a caller transaction holds the head until that
transaction commits and would stall every tap for the whole of a million-line batch.
So it is two-phase, in chunks of :data:`engine.disbursement.store.CHUNK_LINES` lines, each
its own short transaction:

1. Reserve: one *pending* transfer per accepted line, funding account → the cardholder's
   card account. Pending debits count against the prefunded account, so the ledger itself
   refuses the chunk that would overdraw it (``exceeds_credits``). Then every reservation of
   this attempt is voided, the batch's ``execution_attempt`` is counted up (so a later
   attempt uses new transfer ids) and :class:`InsufficientFundsError` names the shortfall:
   nothing is posted and the batch stays APPROVED.
2. With every line reserved, one transaction records the batch's payments (the
   ``paid once per person, programme and period`` constraint) and moves it to EXECUTING.
3. Post: per chunk, :func:`engine.settlement.outbox.post_payouts` posts the reservations and
   writes the pacs.008.001.08 of each issuing bank to the outbox in the same transaction.
4. EXECUTED.

One run at a time per batch: a session advisory lock on the batch id (a second run is
refused at once), so the connection pool needs two connections (the lock's and the work's).

Transfer ids are derived from (batch, attempt, line), so running ``execute`` again after a
crash at any point resumes: created reservations answer ``exists``, posted ones
``exists`` again and get no second instruction. An EXECUTED batch is refused. Each line's
bank outcome is the status of its payment (``settlement_payments``, by EndToEndId), which
the bank API moves with pacs.002 and pacs.004 (a rejection or return reverses the posting
to the funding account), so lines need no status column of their own.

What it does not do: card accounts are derived from the card's token
(:func:`card_account_id`); a card also enrolled for transit under another account id gets a
second ledger account.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import asyncpg

from engine.disbursement.amount import format_minor
from engine.disbursement.bank_card import compact_pan
from engine.disbursement.errors import InsufficientFundsError
from engine.disbursement.lifecycle import BatchState
from engine.disbursement.lines import open_fields
from engine.disbursement.store import DisbursementStore
from engine.errors import ConflictError, NotFoundError, UsageError
from engine.settlement.outbox import Payout, post_payouts
from engine.settlement.registry import LEDGER_CNY, TRANSFER_CODE_PAYOUT, add_payer, attribute_accounts, get_bank
from engine.taps.posting import card_account
from ledger.ids import new_id
from ledger.results import CreateAccountResult, CreateTransferResult
from ledger.service import Ledger, id_bytes
from ledger.types import Transfer, TransferFlags

TRANSFER_CODE_FUNDING = 240
# The advisory lock class of batch executions (any int4 no other part of onecard uses).
ADVISORY_LOCK_CLASS = 6_100_240
INT4_MAX = 2**31 - 1
PURPOSES = {"subsidy": "GOVT", "wage": "SALA"}
ENGINE_CODE = "ONECARD"

_DONE = (CreateTransferResult.ok, CreateTransferResult.exists)
_ACCOUNTS_DONE = (CreateAccountResult.ok, CreateAccountResult.exists)
# Voiding a reservation that was never made (or already voided) is not a failure.
_VOIDED = (CreateTransferResult.ok, CreateTransferResult.exists, CreateTransferResult.pending_transfer_not_found,
           CreateTransferResult.pending_transfer_already_voided)


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


def card_account_id(pan_token: str) -> int:
    """The ledger account id (128 bits) of the card with this token.

    >>> card_account_id("0" * 32) == card_account_id("0" * 32) != card_account_id("1" * 32)
    True
    """
    return int.from_bytes(hashlib.sha256(b"onecard card account:" + pan_token.encode("ascii")).digest()[:16], "big")


def line_transfer_id(kind: str, batch_id: int, attempt: int, line: int) -> int:
    """The id of a line's ``reserve``, ``post`` or ``void`` transfer (stable across retries).

    >>> line_transfer_id("reserve", 1, 0, 1) != line_transfer_id("post", 1, 0, 1)
    True
    """
    assert kind in ("reserve", "post", "void") and line >= 1 and attempt >= 0
    digest = hashlib.sha256(f"onecard disbursement {kind} {batch_id} {attempt} {line}".encode("ascii")).digest()
    return int.from_bytes(digest[:16], "big") or 1


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
    attempt: int
    content_sha256: str
    programme_code: str
    programme_name: str
    purpose: str
    period: str
    payer: Funding


async def execute_batch(store: DisbursementStore, ledger: Ledger, batch_id: int, actor: str, at_ms: int, *,
                        on_lines: Callable[[int], None] | None = None) -> Execution:
    """Execute an APPROVED batch (or resume an EXECUTING one); see the module docstring.

    ``on_lines`` is called with the number of lines after each chunk of each phase (progress).

    Raises
    ------
    InsufficientFundsError
        The funding account cannot cover the batch; nothing posted, the batch stays APPROVED.
    ConflictError
        The batch is not APPROVED or EXECUTING (e.g. already executed: nothing is paid
        twice), its programme has no funding account, or a person of the batch was paid in
        the period by another batch since validation (nothing posted).
    """
    async with _exclusive(store.pool, batch_id):
        return await _execute(store, ledger, batch_id, actor, at_ms, on_lines)


@contextlib.asynccontextmanager
async def _exclusive(pool: asyncpg.Pool, batch_id: int) -> AsyncIterator[None]:
    """One execution of a batch at a time, across processes: a session advisory lock held
    on its own connection (a second run is refused at once rather than racing the first,
    e.g. voiding reservations the first still needs after a refusal)."""
    assert 0 < batch_id <= INT4_MAX, "batch ids fit the advisory lock's int4 key"
    async with pool.acquire() as connection:
        if not await connection.fetchval("SELECT pg_try_advisory_lock($1, $2)", ADVISORY_LOCK_CLASS, batch_id):
            raise ConflictError(f"batch {batch_id} is being executed by another run; try again when it ends")
        try:
            yield
        finally:
            await connection.execute("SELECT pg_advisory_unlock($1, $2)", ADVISORY_LOCK_CLASS, batch_id)


async def _execute(store: DisbursementStore, ledger: Ledger, batch_id: int, actor: str, at_ms: int,
                   on_lines: Callable[[int], None] | None) -> Execution:
    context, state = await _start(store, ledger, batch_id)
    chunks = await _chunks(store.pool, batch_id)
    if state is BatchState.approved:
        await _reserve(store, ledger, context, chunks, on_lines)
        await _mark_executing(store, ledger, context, chunks, actor, at_ms)
    lines, amount_minor = 0, 0
    for first_line, end_line, sealed in chunks:
        posted = await _post_chunk(store, ledger, context, first_line, end_line, sealed)
        lines, amount_minor = lines + posted[0], amount_minor + posted[1]
        if on_lines:
            on_lines(end_line - first_line)
    async with store.pool.acquire() as connection, connection.transaction():
        await store.transition_in(connection, batch_id, BatchState.executed, actor, at_ms)
        messages = await connection.fetchval(
            "SELECT count(DISTINCT p.message_id) FROM disbursement_lines l JOIN settlement_payments p"
            " USING (end_to_end_id) WHERE l.batch_id = $1", batch_id)
    return Execution(batch_id, lines, amount_minor, messages)


async def _start(store: DisbursementStore, ledger: Ledger, batch_id: int) -> tuple[_Context, BatchState]:
    # One connection at a time (the execution lock holds another): store reads first.
    batch = await store.batch(batch_id)
    if batch.state not in (BatchState.approved, BatchState.executing):
        raise ConflictError(f"batch {batch_id} is {batch.state.value}; only an approved batch is executed")
    programme = await store.programme(batch.programme_code)
    async with store.pool.acquire() as connection:
        payer = await funding(connection, ledger, programme.code)
        if payer is None:
            raise ConflictError(f"programme {programme.code} has no funding account: fund it first "
                                "(onecard programme fund)")
        attempt = await connection.fetchval("SELECT execution_attempt FROM disbursement_batches WHERE id = $1",
                                            batch_id)
    context = _Context(batch_id, attempt, batch.content_sha256, programme.code, programme.name,
                       PURPOSES[programme.kind], batch.period, payer)
    return context, batch.state


async def _chunks(pool: asyncpg.Pool, batch_id: int) -> list[tuple[int, int, bytes]]:
    """(first line, end line exclusive, sealed fields) of each stored chunk, in order."""
    async with pool.acquire() as connection:
        rows = await connection.fetch(
            "SELECT first_line, sealed FROM disbursement_line_fields WHERE batch_id = $1 ORDER BY chunk", batch_id)
        lines_count = await connection.fetchval("SELECT lines_count FROM disbursement_batches WHERE id = $1",
                                                batch_id)
    if lines_count and not rows:
        raise ConflictError(f"batch {batch_id} was stored without its lines; submit the file again")
    ends = [row["first_line"] for row in rows[1:]] + [lines_count + 1]
    return [(row["first_line"], end, row["sealed"]) for row, end in zip(rows, ends)]


async def _accepted(connection: asyncpg.Connection, batch_id: int, first_line: int,
                    end_line: int) -> list[asyncpg.Record]:
    return await connection.fetch(
        "SELECT line, amount_minor, pan_token, bank_code, name FROM disbursement_lines"
        " WHERE batch_id = $1 AND result = 0 AND line >= $2 AND line < $3 ORDER BY line",
        batch_id, first_line, end_line)


async def _reserve(store: DisbursementStore, ledger: Ledger, context: _Context,
                   chunks: list[tuple[int, int, bytes]], on_lines: Callable[[int], None] | None) -> None:
    for first_line, end_line, _ in chunks:
        async with store.pool.acquire() as connection, connection.transaction():
            rows = await _accepted(connection, context.batch_id, first_line, end_line)
            failed = await _reserve_rows(connection, ledger, context, rows)
        if failed is not None:
            await _release(store, ledger, context, chunks)
            await _refuse(store, ledger, context, failed)
        if on_lines:
            on_lines(end_line - first_line)


async def _refuse(store: DisbursementStore, ledger: Ledger, context: _Context, failed: CreateTransferResult) -> None:
    """Raise the error for a refused reservation (after every reservation was voided)."""
    async with store.pool.acquire() as connection:
        payer = await funding(connection, ledger, context.programme_code)
        total = await connection.fetchval("SELECT accepted_minor FROM disbursement_batches WHERE id = $1",
                                          context.batch_id)
    assert payer is not None
    if failed is CreateTransferResult.exceeds_credits:
        shortfall = total - payer.available_minor
        raise InsufficientFundsError(
            f"programme {context.programme_code} has {format_minor(payer.available_minor)} yuan available but "
            f"batch {context.batch_id} needs {format_minor(total)} yuan: short by {format_minor(shortfall)} yuan; "
            "nothing was posted", shortfall)
    raise ConflictError(f"batch {context.batch_id}: a reservation was refused by the ledger ({failed.name}); "
                        "nothing was posted")


async def _reserve_rows(connection: asyncpg.Connection, ledger: Ledger, context: _Context,
                        rows: list[asyncpg.Record]) -> CreateTransferResult | None:
    """Create the chunk's card accounts and reservations; the first refusal, or ``None``."""
    if not rows:
        return None
    cards = {card_account_id(r["pan_token"]): r["bank_code"] for r in rows}
    results = await ledger.create_accounts([card_account(a) for a in cards], connection=connection)
    assert all(r in _ACCOUNTS_DONE for r in results), f"card accounts refused: {set(results)}"
    await attribute_accounts(connection, [(a, bank, "card") for a, bank in cards.items()])
    transfers = [Transfer(id=line_transfer_id("reserve", context.batch_id, context.attempt, r["line"]),
                          debit_account_id=context.payer.account_id, credit_account_id=card_account_id(r["pan_token"]),
                          amount=r["amount_minor"], ledger=LEDGER_CNY, code=TRANSFER_CODE_PAYOUT,
                          flags=int(TransferFlags.pending)) for r in rows]
    results = await ledger.create_transfers(transfers, connection=connection)
    return next((r for r in results if r not in _DONE), None)


async def _release(store: DisbursementStore, ledger: Ledger, context: _Context,
                   chunks: list[tuple[int, int, bytes]]) -> None:
    """Void every reservation of this attempt and count the attempt up."""
    for first_line, end_line, _ in chunks:
        async with store.pool.acquire() as connection, connection.transaction():
            rows = await _accepted(connection, context.batch_id, first_line, end_line)
            if not rows:
                continue
            voids = [Transfer(id=line_transfer_id("void", context.batch_id, context.attempt, r["line"]),
                              pending_id=line_transfer_id("reserve", context.batch_id, context.attempt, r["line"]),
                              flags=int(TransferFlags.void_pending_transfer)) for r in rows]
            results = await ledger.create_transfers(voids, connection=connection)
            assert all(r in _VOIDED for r in results), f"voids refused: {set(results) - set(_VOIDED)}"
    async with store.pool.acquire() as connection:
        await connection.execute(
            "UPDATE disbursement_batches SET execution_attempt = execution_attempt + 1 WHERE id = $1"
            " AND execution_attempt = $2", context.batch_id, context.attempt)


async def _mark_executing(store: DisbursementStore, ledger: Ledger, context: _Context,
                          chunks: list[tuple[int, int, bytes]], actor: str, at_ms: int) -> None:
    try:
        async with store.pool.acquire() as connection, connection.transaction():
            batch = await store.locked_batch(connection, context.batch_id)
            recorded = await connection.fetch(
                "INSERT INTO disbursement_payments (programme_code, period, id_hash, batch_id, line, amount_minor)"
                " SELECT $2, $3, c.id_hash, l.batch_id, l.line, l.amount_minor FROM disbursement_lines l"
                " JOIN disbursement_cardholders c USING (pan_token) WHERE l.batch_id = $1 AND l.result = 0"
                " ON CONFLICT DO NOTHING RETURNING line",
                context.batch_id, context.programme_code, context.period)
            if len(recorded) != batch.accepted_count:
                raise ConflictError(f"batch {context.batch_id}: {batch.accepted_count - len(recorded)} person(s) "
                                    "were paid in the period by another batch since validation; nothing was posted, "
                                    "submit a corrected file")
            await store.transition_in(connection, context.batch_id, BatchState.executing, actor, at_ms)
    except ConflictError:
        await _release(store, ledger, context, chunks)
        raise


async def _post_chunk(store: DisbursementStore, ledger: Ledger, context: _Context, first_line: int, end_line: int,
                      sealed: bytes) -> tuple[int, int]:
    """Post one chunk's reservations with their pacs.008; (lines, fen)."""
    fields = await open_fields(store.keys, context.content_sha256, first_line, sealed)
    async with store.pool.acquire() as connection, connection.transaction():
        rows = await _accepted(connection, context.batch_id, first_line, end_line)
        if not rows:
            return 0, 0
        payouts = [Payout(
            transfer_id=line_transfer_id("post", context.batch_id, context.attempt, r["line"]),
            payer_account_id=context.payer.account_id, card_account_id=card_account_id(r["pan_token"]),
            amount_minor=r["amount_minor"], bank_code=r["bank_code"], creditor_name=r["name"],
            creditor_account=compact_pan(fields[r["line"] - first_line][3]), payer_name=context.programme_name,
            remittance_information=f"{context.programme_code} {context.period} line {r['line']}",
            purpose=context.purpose,
            pending_id=line_transfer_id("reserve", context.batch_id, context.attempt, r["line"])) for r in rows]
        results = await post_payouts(connection, ledger, payouts, engine_code=ENGINE_CODE)
        refused = {r.name for r in results if r not in _DONE}
        if refused:
            raise ConflictError(f"batch {context.batch_id}: posting refused by the ledger ({', '.join(refused)})")
        # The EndToEndIds post_payouts recorded, by transfer id (not encoded a second time).
        await connection.execute(
            "UPDATE disbursement_lines l SET end_to_end_id = p.end_to_end_id"
            " FROM unnest($2::integer[], $3::bytea[]) AS u(line, transfer_id)"
            " JOIN settlement_payments p ON p.transfer_id = u.transfer_id"
            " WHERE l.batch_id = $1 AND l.line = u.line",
            context.batch_id, [r["line"] for r in rows], [id_bytes(p.transfer_id) for p in payouts])
    return len(rows), sum(p.amount_minor for p in payouts)
