"""The outbox: instructions to banks written in the same transaction as their postings,
delivered at least once, with an effect exactly once.

Writing: :func:`post_payouts` creates the payout transfers with
``Ledger.create_transfers(..., connection=)`` and, in the same transaction, one pacs.008
per (issuing bank, payer) in ``settlement_outbox`` and one ``settlement_payments`` row per
transaction. If the transaction rolls back, neither the money nor the message exists; if
it commits, both do, whatever happens to the process afterwards. The messages are written
before the ledger write, because from that write until the caller commits the ledger's
journal head stays locked and taps wait on it. A caller posting many payouts renders and
validates them before its transaction (:func:`prepare_payouts`) and then writes them
(:func:`write_instructions`, :func:`create_payout_transfers`), so no lock is held while
Python works.

Delivering: :class:`Dispatcher` claims due messages (``FOR UPDATE SKIP LOCKED``, a lease
of ``lease_s`` so a dispatcher that dies mid-delivery is taken over), sends each through
the bank's :class:`Transport` and records the outcome. A transient failure sets the next
attempt with exponential backoff and full jitter; a final refusal marks the message
``failed`` for an operator. The same bytes with the same MsgId are sent every time, and
the bank is idempotent on MsgId and EndToEndId, so a retry after a timeout or a lost
acknowledgement has no second effect.

Statuses (pacs.002, from the push answer or posted by the bank) and returns (pacs.004) are
applied by EndToEndId under the payment row's lock: the first final status wins
(:func:`adapters.iso20022.pacs002.resolve`), a rejection or a return posts exactly one
reversing transfer (card → payer, whose account every payout transfer carries in
``user_data_128``: the money may have left from an escrow), and repeats change nothing.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import random
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import asyncpg
import msgspec

from adapters import delivery, reconcile
from adapters.errors import DeliveryError, DeliveryRefusedError, FileDropConflictError, MessageError
from adapters.iso20022 import ids, pacs002, pacs004, pacs008
from adapters.iso20022.camt053 import CREDIT, DEBIT
from adapters.iso20022.reasons import FINAL_STATUSES
from engine.settlement.errors import PayoutRefusedError
from engine.settlement.registry import CURRENCY, LEDGER_CNY, TRANSFER_CODE_PAYOUT, TRANSFER_CODE_PAYOUT_REVERSAL
from ledger.ids import new_id
from ledger.results import CreateTransferResult
from ledger.service import Ledger, id_bytes
from ledger.types import Transfer

CLAIM_MAX = 64
LEASE_S = 60.0
BACKOFF_INITIAL_S = 1.0
BACKOFF_MAX_S = 600.0
PACS008_PATH = "/v1/pacs008"

assert 0 < BACKOFF_INITIAL_S <= BACKOFF_MAX_S and LEASE_S > 0


class Payout(msgspec.Struct, frozen=True, gc=False):
    """One payment to a cardholder: ``payer_account_id`` (funding or wage account) →
    ``card_account_id`` at ``bank_code``, the issuing bank that gets the pacs.008.

    ``creditor_account`` is the card or account number the bank credits (1-34 characters).
    ``escrow_account_id``: when not 0, the money leaves from this account instead (the
    payer's money in transit, moved there by the caller beforehand, as disbursement batches
    do); the payer stays the pacs.008 debtor and is what a rejection or return credits.
    ``end_to_end_id``: ``adapters.iso20022.ids.end_to_end_id(transfer_id)`` when the caller
    has it already (encoding costs microseconds, a million times per large batch), else
    ``""`` and it is encoded here. A msgspec Struct rather than a frozen dataclass: made a
    million times per large batch, it is built in a tenth of the time (measured), and its
    fields are ints and strings only, so the garbage collector need not track it.
    """

    transfer_id: int
    payer_account_id: int
    card_account_id: int
    amount_minor: int
    bank_code: str
    creditor_name: str
    creditor_account: str
    payer_name: str
    remittance_information: str = ""
    purpose: str = "GOVT"
    escrow_account_id: int = 0
    end_to_end_id: str = ""


@dataclass(frozen=True, slots=True)
class Applied:
    """What applying statuses or returns did: EndToEndIds ``accepted``, ``rejected``,
    ``returned``, ``unchanged`` (repeats, interim after final), ``unknown`` (not a payment
    of this bank), and ``conflicts`` (a second, different final status: nothing changed)."""

    accepted: tuple[str, ...] = ()
    rejected: tuple[str, ...] = ()
    returned: tuple[str, ...] = ()
    unchanged: tuple[str, ...] = ()
    unknown: tuple[str, ...] = ()
    conflicts: tuple[str, ...] = ()


async def post_payouts(connection: asyncpg.Connection, ledger: Ledger, payouts: Sequence[Payout], *,
                       engine_code: str = "ONECARD", new: bool = False) -> list[CreateTransferResult]:
    """Post ``payouts`` and write their pacs.008 instructions, in the caller's transaction.

    Returns one result per payout. Only payouts new to the ledger get an instruction: a
    payout resent after a crash answers ``exists`` and its instruction is already in the
    outbox. ``new``: the caller knows none of the transfer ids was ever posted (ids it just
    drew), so they are not looked up first; one that was is then refused like any other. The
    instructions are written first and the ledger last, so the ledger's journal head (locked
    from the ledger write until the caller commits) is held only for the postings; the
    caller should commit soon after. The same as :func:`prepare_payouts`, then
    :func:`write_instructions` and :func:`create_payout_transfers` (a caller with other work
    in the transaction, or one that prepares before its transaction starts, calls those).

    Raises
    ------
    adapters.errors.MessageError
        A payout's fields break the pacs.008 schema (the element is named); nothing written
        once the caller rolls back.
    engine.settlement.errors.PayoutRefusedError
        The ledger refused a new payout (e.g. ``exceeds_credits``), or another writer posted
        one meanwhile; the caller rolls back.
    """
    assert connection.is_in_transaction(), "post_payouts runs inside the caller's transaction"
    prepared = await prepare_payouts(connection, ledger, payouts, engine_code=engine_code, new=new)
    await write_instructions(connection, prepared)
    return await create_payout_transfers(connection, ledger, prepared)


@dataclass(frozen=True, slots=True)
class _Instruction:
    bank_code: str
    message: pacs008.Message
    payouts: list[Payout]
    end_to_end_ids: list[str]


@dataclass(frozen=True, slots=True)
class PreparedPayouts:
    """Payouts with the validated pacs.008 instructions of those new to the ledger
    (:func:`prepare_payouts`); ``known``: the transfer ids that were posted already."""

    payouts: Sequence[Payout]
    known: frozenset[int]
    instructions: list[_Instruction]


async def prepare_payouts(connection: asyncpg.Connection, ledger: Ledger, payouts: Sequence[Payout], *,
                          engine_code: str = "ONECARD", new: bool = False) -> PreparedPayouts:
    """Look up which ``payouts`` were posted already (unless ``new``, see
    :func:`post_payouts`) and render and validate the pacs.008 instructions of the others.

    Writes nothing and may run outside the transaction that posts them (before it, so no
    lock is held meanwhile): an id posted by another writer in between makes that
    transaction fail (:func:`write_instructions`) rather than pay twice.

    Raises ``adapters.errors.MessageError`` (a payout's fields break the pacs.008 schema).
    """
    known = frozenset() if new else frozenset(
        t.id for t in await ledger.lookup_transfers([p.transfer_id for p in payouts], connection=connection))
    # Rendering and XSD validation take a while for thousands of payouts: in a thread, so
    # the event loop goes on serving other work (e.g. another chunk's database round trips).
    instructions = await asyncio.to_thread(_instructions, [p for p in payouts if p.transfer_id not in known],
                                           engine_code, dt.datetime.now(dt.timezone.utc))
    return PreparedPayouts(payouts, known, instructions)


async def write_instructions(connection: asyncpg.Connection, prepared: PreparedPayouts) -> None:
    """Write the prepared pacs.008 messages to the outbox and their payment rows, in the
    caller's transaction (before :func:`create_payout_transfers`, in the same one).

    Raises ``engine.settlement.errors.PayoutRefusedError`` when a payment's EndToEndId is
    recorded already (another writer posted it since it was prepared): roll back.
    """
    assert connection.is_in_transaction(), "instructions are written in the postings' transaction"
    try:
        await _write_instructions(connection, prepared.instructions)
    except asyncpg.UniqueViolationError:
        raise PayoutRefusedError("a payout was posted by another writer meanwhile (its EndToEndId is recorded); "
                                 "roll back", []) from None


async def create_payout_transfers(connection: asyncpg.Connection, ledger: Ledger,
                                  prepared: PreparedPayouts) -> list[CreateTransferResult]:
    """Post the prepared payouts' transfers in the caller's transaction, after
    :func:`write_instructions`; one result per payout (those posted already answer
    ``exists``). From here until the caller commits, the ledger's journal head is locked.

    Raises ``engine.settlement.errors.PayoutRefusedError`` when the ledger refused a new
    payout: roll back (its instruction was written).
    """
    assert connection.is_in_transaction(), "the postings share their instructions' transaction"
    payouts, known = prepared.payouts, prepared.known
    transfers = [Transfer(id=p.transfer_id, debit_account_id=p.escrow_account_id or p.payer_account_id,
                          credit_account_id=p.card_account_id, amount=p.amount_minor, ledger=LEDGER_CNY,
                          code=TRANSFER_CODE_PAYOUT, user_data_128=p.payer_account_id) for p in payouts]
    results = await ledger.create_transfers(transfers, connection=connection)
    refused = {r.name for p, r in zip(payouts, results)
               if p.transfer_id not in known and r is not CreateTransferResult.ok}
    if refused:
        raise PayoutRefusedError(f"payouts refused by the ledger ({', '.join(sorted(refused))}); roll back: "
                                 "their instructions were written", results)
    return results


async def _write_instructions(connection: asyncpg.Connection, instructions: list[_Instruction]) -> None:
    """The messages and their payments, one statement each (unnest): chunks run to thousands."""
    if not instructions:
        return
    await connection.execute(
        "INSERT INTO settlement_outbox (message_id, bank_code, kind, xml)"
        " SELECT m, b, 'payout', x FROM unnest($1::text[], $2::text[], $3::bytea[]) AS u(m, b, x)",
        [i.message.message_id for i in instructions], [i.bank_code for i in instructions],
        [i.message.xml for i in instructions])
    await connection.execute(
        "INSERT INTO settlement_payments (end_to_end_id, message_id, bank_code, transfer_id, amount_minor,"
        " currency) SELECT e, m, b, t, a, $6 FROM unnest($1::text[], $2::text[], $3::text[], $4::bytea[],"
        " $5::bigint[]) AS u(e, m, b, t, a)",
        [e for i in instructions for e in i.end_to_end_ids],
        [i.message.message_id for i in instructions for _ in i.payouts],
        [i.bank_code for i in instructions for _ in i.payouts],
        [id_bytes(p.transfer_id) for i in instructions for p in i.payouts],
        [p.amount_minor for i in instructions for p in i.payouts], CURRENCY)


def _instructions(payouts: Sequence[Payout], engine_code: str, created_at: dt.datetime) -> list[_Instruction]:
    """One validated pacs.008 per (issuing bank, payer) and up to TRANSACTIONS_PER_MESSAGE_MAX payouts."""
    groups: dict[tuple[str, int, str, str], list[Payout]] = defaultdict(list)
    for payout in payouts:
        groups[(payout.bank_code, payout.payer_account_id, payout.payer_name, payout.purpose)].append(payout)
    instructions = []
    for (bank_code, payer_account_id, payer_name, purpose), group in groups.items():
        header = pacs008.GroupHeader(created_at=created_at, settlement_date=created_at.date(),
                                     instructing_agent=engine_code, instructed_agent=bank_code,
                                     debtor_name=payer_name, debtor_account=f"{payer_account_id:032X}",
                                     purpose=purpose)
        for start in range(0, len(group), pacs008.TRANSACTIONS_PER_MESSAGE_MAX):
            chunk = group[start:start + pacs008.TRANSACTIONS_PER_MESSAGE_MAX]
            end_to_end_ids = [p.end_to_end_id or ids.end_to_end_id(p.transfer_id) for p in chunk]
            credits = [pacs008.CreditTransfer(end_to_end_id, p.amount_minor, CURRENCY,
                                              p.creditor_name, p.creditor_account, p.remittance_information)
                       for end_to_end_id, p in zip(end_to_end_ids, chunk)]
            (message,) = pacs008.iter_messages(header, credits)
            instructions.append(_Instruction(bank_code, message, chunk, end_to_end_ids))
    return instructions


async def apply_statuses(connection: asyncpg.Connection, ledger: Ledger, bank_code: str,
                         statuses: Sequence[pacs002.TransactionStatus]) -> Applied:
    """Apply a bank's transaction statuses to its payments in the caller's transaction.

    Idempotent: duplicates and out-of-order statuses change nothing once a final status is
    recorded; ``RJCT`` posts one reversal (card → payer, code
    :data:`TRANSFER_CODE_PAYOUT_REVERSAL`). EndToEndIds that are not this bank's payments are
    reported ``unknown`` and change nothing.
    """
    standing, conflicts = pacs002.resolve(statuses)
    outcome: dict[str, list[str]] = defaultdict(list)
    outcome["conflicts"] = [item.original_end_to_end_id for item in conflicts]
    for end_to_end_id in sorted(standing):
        item = standing[end_to_end_id]
        row = await _lock_payment(connection, bank_code, end_to_end_id)
        if row is None:
            outcome["unknown"].append(end_to_end_id)
        elif row["status"] in FINAL_STATUSES:
            same = row["status"] == item.status or item.status not in FINAL_STATUSES
            outcome["unchanged" if same else "conflicts"].append(end_to_end_id)
        elif item.status == "RJCT":
            await _reverse(connection, ledger, row)
            await _set_status(connection, end_to_end_id, "RJCT", item.reason_code)
            outcome["rejected"].append(end_to_end_id)
        elif item.status == "ACSC":
            await _set_status(connection, end_to_end_id, "ACSC", "")
            outcome["accepted"].append(end_to_end_id)
        elif row["status"] != item.status:
            await _set_status(connection, end_to_end_id, item.status, item.reason_code)
            outcome["unchanged"].append(end_to_end_id)
        else:
            outcome["unchanged"].append(end_to_end_id)
    return Applied(**{key: tuple(value) for key, value in outcome.items()})


async def apply_returns(connection: asyncpg.Connection, ledger: Ledger, bank_code: str,
                        returns: Sequence[pacs004.PaymentReturn]) -> Applied:
    """Apply a bank's payment returns (pacs.004) in the caller's transaction: each returned
    payment is reversed once (card → payer); a repeat changes nothing.

    Raises
    ------
    MessageError
        A return names a payment of this bank that was not accepted, or with another
        amount or currency (element ``RtrdIntrBkSttlmAmt``/``OrgnlEndToEndId``); the caller
        rolls back, so nothing of the message takes effect.
    """
    outcome: dict[str, list[str]] = defaultdict(list)
    for item in returns:
        row = await _lock_payment(connection, bank_code, item.original_end_to_end_id)
        if row is None:
            outcome["unknown"].append(item.original_end_to_end_id)
            continue
        if row["returned"]:
            outcome["unchanged"].append(item.original_end_to_end_id)
            continue
        if row["status"] != "ACSC":
            raise MessageError(f"payment {item.original_end_to_end_id} is {row['status']}, not accepted: "
                               "it cannot be returned", element="OrgnlEndToEndId")
        if (item.amount_minor, item.currency) != (row["amount_minor"], row["currency"]):
            raise MessageError(f"returned {item.amount_minor} {item.currency} but the payment was "
                               f"{row['amount_minor']} {row['currency']}", element="RtrdIntrBkSttlmAmt")
        await _reverse(connection, ledger, row)
        await connection.execute(
            "UPDATE settlement_payments SET returned = true, reason_code = $2, returned_at = now(), updated_at = now()"
            " WHERE end_to_end_id = $1", item.original_end_to_end_id, item.reason_code)
        outcome["returned"].append(item.original_end_to_end_id)
    return Applied(**{key: tuple(value) for key, value in outcome.items()})


async def check_statement_account(connection: asyncpg.Connection, bank_code: str, account: str) -> None:
    """Refuse a statement of an account other than the one the engine holds with
    ``bank_code`` (when that account is recorded; see :class:`Bank`).

    Raises
    ------
    MessageError
        ``Stmt/Acct/Id`` names another account (e.g. another bank's statement).
    """
    recorded = await connection.fetchval(
        "SELECT statement_account FROM settlement_banks WHERE bank_code = $1", bank_code)
    if recorded and account != recorded:
        raise MessageError(f"statement of account {account!r}, but the engine's account with {bank_code} is "
                           f"{recorded!r}", element="Stmt/Acct/Id")


async def expected_statement(connection: asyncpg.Connection, bank_code: str, *,
                             booked_on: dt.date | None = None) -> list[reconcile.EngineTransfer]:
    """What the engine expects on ``bank_code``'s statement of the engine's account: a
    ``DBIT`` per accepted payout and a ``CRDT`` per return, by EndToEndId; with
    ``booked_on``, only those whose acceptance (return) was recorded on that UTC date."""
    rows = await connection.fetch(
        "SELECT end_to_end_id, amount_minor, currency, (accepted_at AT TIME ZONE 'UTC')::date AS accepted_on,"
        " (returned_at AT TIME ZONE 'UTC')::date AS returned_on FROM settlement_payments"
        " WHERE bank_code = $1 AND status = 'ACSC' ORDER BY end_to_end_id", bank_code)
    expected = []
    for row in rows:
        if booked_on is None or row["accepted_on"] == booked_on:
            expected.append(reconcile.EngineTransfer(row["end_to_end_id"], row["amount_minor"], row["currency"],
                                                     DEBIT))
        if row["returned_on"] is not None and (booked_on is None or row["returned_on"] == booked_on):
            expected.append(reconcile.EngineTransfer(row["end_to_end_id"], row["amount_minor"], row["currency"],
                                                     CREDIT))
    return expected


async def _lock_payment(connection: asyncpg.Connection, bank_code: str, end_to_end_id: str) -> asyncpg.Record | None:
    return await connection.fetchrow(
        "SELECT end_to_end_id, transfer_id, amount_minor, currency, status, reversal_id, returned"
        " FROM settlement_payments WHERE end_to_end_id = $1 AND bank_code = $2 FOR UPDATE", end_to_end_id, bank_code)


async def _set_status(connection: asyncpg.Connection, end_to_end_id: str, status: str, reason_code: str) -> None:
    await connection.execute(
        "UPDATE settlement_payments SET status = $2, reason_code = $3, updated_at = now(),"
        " accepted_at = CASE WHEN $2 = 'ACSC' THEN now() END WHERE end_to_end_id = $1",
        end_to_end_id, status, reason_code)


async def _reverse(connection: asyncpg.Connection, ledger: Ledger, row: asyncpg.Record) -> None:
    assert row["reversal_id"] is None, "a payment is reversed at most once"
    original = (await ledger.lookup_transfers([int.from_bytes(row["transfer_id"], "big")], connection=connection))[0]
    assert original.user_data_128, "a payout transfer carries its payer's account"
    reversal = Transfer(id=new_id(), debit_account_id=original.credit_account_id,
                        credit_account_id=original.user_data_128, amount=original.amount, ledger=original.ledger,
                        code=TRANSFER_CODE_PAYOUT_REVERSAL, user_data_128=original.id)
    (result,) = await ledger.create_transfers([reversal], connection=connection)
    assert result is CreateTransferResult.ok, f"reversal refused by the ledger: {result.name}"
    await connection.execute("UPDATE settlement_payments SET reversal_id = $2 WHERE end_to_end_id = $1",
                             row["end_to_end_id"], id_bytes(reversal.id))


class Transport(Protocol):
    """How messages reach one bank; ``send`` returns the bank's answer (a pacs.002 for
    pushes, ``b""`` for a file drop).

    Raises ``DeliveryError`` (transient: try later) or ``DeliveryRefusedError`` (final).
    """

    async def send(self, message_id: str, xml: bytes) -> bytes: ...

    async def close(self) -> None: ...


class HttpTransport:
    """Push to the bank's ``POST /v1/pacs008`` over signed HTTP(S) (:class:`adapters.delivery.HttpDelivery`)."""

    def __init__(self, client: delivery.HttpDelivery) -> None:
        self._client = client

    async def send(self, message_id: str, xml: bytes) -> bytes:
        return (await self._client.push(PACS008_PATH, message_id, xml)).body

    async def close(self) -> None:
        await self._client.close()


class FileTransport:
    """Drop ``<MsgId>.xml`` into the bank's gateway folder (atomic; a repeat is a no-op)."""

    def __init__(self, drop: delivery.FileDrop) -> None:
        self._drop = drop

    async def send(self, message_id: str, xml: bytes) -> bytes:
        try:
            await asyncio.to_thread(self._drop.drop, f"{message_id}.xml", xml)
        except FileDropConflictError as error:
            raise DeliveryRefusedError(str(error)) from None
        except OSError as error:
            raise DeliveryError(f"file drop {message_id}: {error.__class__.__name__}") from None
        return b""

    async def close(self) -> None:
        """Nothing to release (the protocol's ``close`` for connection-holding transports)."""


class Dispatcher:
    """Delivers due outbox messages of the banks in ``transports`` (see the module docstring).

    ``lease_s``: how long a claimed message is left to this dispatcher before another may
    take it over; ``rng`` seeds the backoff jitter (tests).
    """

    def __init__(self, pool: asyncpg.Pool, ledger: Ledger, transports: Mapping[str, Transport], *,
                 lease_s: float = LEASE_S, backoff_initial_s: float = BACKOFF_INITIAL_S,
                 backoff_max_s: float = BACKOFF_MAX_S, rng: random.Random | None = None) -> None:
        assert lease_s > 0 and 0 < backoff_initial_s <= backoff_max_s
        self._pool = pool
        self._ledger = ledger
        self._transports = dict(transports)
        self._lease_s = lease_s
        self._backoff_initial_s = backoff_initial_s
        self._backoff_max_s = backoff_max_s
        self._rng = rng or random.Random()

    async def run_once(self) -> int:
        """Deliver every message due now (at most :data:`CLAIM_MAX`); return how many were delivered."""
        claimed = await self._claim()
        delivered = 0
        for row in claimed:
            delivered += await self._deliver(row)
        return delivered

    async def run_forever(self, interval_s: float = 1.0) -> None:
        """Run :meth:`run_once` until cancelled, pausing ``interval_s`` when idle."""
        while True:
            try:
                if await self.run_once():
                    continue
            except (OSError, asyncpg.PostgresError):
                pass  # the database is away: try again after the pause
            await asyncio.sleep(interval_s)

    async def _claim(self) -> list[asyncpg.Record]:
        async with self._pool.acquire() as connection:
            return await connection.fetch(
                "UPDATE settlement_outbox o SET next_attempt_at = now() + make_interval(secs => $2)"
                " FROM (SELECT message_id FROM settlement_outbox WHERE state = 'pending' AND next_attempt_at <= now()"
                "       AND bank_code = ANY($1::text[]) ORDER BY next_attempt_at LIMIT $3 FOR UPDATE SKIP LOCKED) due"
                " WHERE o.message_id = due.message_id RETURNING o.message_id, o.bank_code, o.kind, o.xml, o.attempts",
                list(self._transports), self._lease_s, CLAIM_MAX)

    async def _deliver(self, row: asyncpg.Record) -> int:
        transport = self._transports[row["bank_code"]]
        try:
            answer = await transport.send(row["message_id"], row["xml"])
        except DeliveryRefusedError as error:
            await self._record(row["message_id"], "failed", row["attempts"] + 1, str(error)[:500], 0.0)
            return 0
        except DeliveryError as error:
            attempts = row["attempts"] + 1
            delay_s = self._rng.uniform(0, min(self._backoff_max_s, self._backoff_initial_s * 2 ** min(attempts, 30)))
            await self._record(row["message_id"], "pending", attempts, str(error)[:500], delay_s)
            return 0
        note = ""
        async with self._pool.acquire() as connection, connection.transaction():
            if answer and row["kind"] == "payout":
                try:
                    report = pacs002.parse(answer)
                except MessageError as error:
                    note = f"answer not applied: {error}"[:500]
                else:
                    await apply_statuses(connection, self._ledger, row["bank_code"], report.transactions)
            await connection.execute(
                "UPDATE settlement_outbox SET state = 'delivered', attempts = attempts + 1, delivered_at = now(),"
                " last_error = $2 WHERE message_id = $1", row["message_id"], note)
        return 1

    async def _record(self, message_id: str, state: str, attempts: int, error: str, delay_s: float) -> None:
        async with self._pool.acquire() as connection:
            await connection.execute(
                "UPDATE settlement_outbox SET state = $2, attempts = $3, last_error = $4,"
                " next_attempt_at = now() + make_interval(secs => $5) WHERE message_id = $1",
                message_id, state, attempts, error, delay_s)


async def transports_for_banks(pool: asyncpg.Pool, pki_store) -> dict[str, Transport]:
    """A transport for every ``push`` and ``file`` bank: HTTPS with the engine's client
    certificate when the endpoint is ``https``, signed with key id ``ONECARD`` and the
    engine's outbound key (``pki_store.engine_signing_key()``); a folder drop for ``file``."""
    from engine.settlement.registry import list_banks

    async with pool.acquire() as connection:
        banks = await list_banks(connection)
    transports: dict[str, Transport] = {}
    for bank in banks:
        if bank.delivery == "file":
            transports[bank.bank_code] = FileTransport(delivery.FileDrop(bank.endpoint))
        elif bank.delivery == "push":
            ssl_context = pki_store.engine_client_context() if bank.endpoint.startswith("https:") else None
            transports[bank.bank_code] = HttpTransport(delivery.HttpDelivery(
                bank.endpoint, key_id="ONECARD", key=pki_store.engine_signing_key(), ssl=ssl_context))
    return transports
