"""Daily aggregation: after a transit day closes, one collection per card for its bank.

TfL's model: taps are approved against the card's standing, not a live balance; once the
transit day is over, each issuing bank is asked once per card for the day's total. A
bank that declines puts the card on the deny list (``unpaid_debt``) until the debt is
cleared; a collected amount is credited to the card's account from the bank's settlement
account (:mod:`engine.settlement.registry`), so the card account nets back to zero.

Collection state, per (card, transit day)::

    requested --collected--> collected
    requested --declined---> declined --cleared--> cleared

The sums come from :func:`engine.fares.aggregation.collections_by_bank` over the day's
recorded taps; closing a day twice creates nothing new (each collection is keyed by card
and day), and a day still open (its boundary not yet passed) is refused.
"""

from __future__ import annotations

import hashlib
from datetime import date, datetime

import asyncpg

from engine.errors import ConflictError, NotFoundError
from engine.fares.aggregation import Collection, PricedTap, collections_by_bank
from engine.fares.pricing import MISSING_EXIT_SUFFIX
from engine.settlement.registry import get_bank
from engine.taps import store
from engine.taps.posting import LEDGER_CNY, POSTED, TRANSFER_CODE_COLLECTION
from engine.taps.pricing import FarePricing
from engine.taps.reasons import Reason
from engine.taps.service import FarePosting, TapLedger, transfer_id_for
from engine.taps.store import TapRecord
from engine.taps.wire import TapAnswer
from msgspec.structs import replace
from ledger.service import Ledger
from ledger.types import Transfer

# Allowed transitions of a collection (from status -> to statuses).
TRANSITIONS = {"requested": {"collected", "declined"}, "declined": {"cleared"},
               "collected": set(), "cleared": set()}


async def charge_missing_exits(pool: asyncpg.Pool, posting: TapLedger, pricing: FarePricing,
                               now_utc: datetime) -> int:
    """Charge every open entry whose journey time is over at ``now_utc`` its network's
    maximum fare; return how many were charged.

    Each charge is recorded as a tap ``<entry tap_id>:missing-exit`` (approved, on the
    entry's transit day, at the entry's station) and posted card -> the entry gate's
    operator, with the card's new fare state, in one transaction per card. Running it
    again charges nothing twice (the record's id is derived from the entry).
    """
    async with pool.acquire() as connection:
        tokens = await connection.fetch(
            """SELECT card_token FROM transit_cards WHERE fare_state IS NOT NULL
               AND convert_from(fare_state, 'UTF8')::jsonb -> 'open_entry' <> 'null'::jsonb""")
    charged = 0
    for row in tokens:
        async with pool.acquire() as connection:
            async with connection.transaction():
                charged += await _charge_missing_exit(connection, posting, pricing,
                                                      row["card_token"], now_utc)
    return charged


async def _charge_missing_exit(connection: asyncpg.Connection, posting: TapLedger,
                               pricing: FarePricing, card_token: str, now_utc: datetime) -> int:
    card = (await store.lock_cards(connection, [card_token])).get(card_token)
    found = pricing.missing_exit(card, now_utc) if card is not None else None
    if found is None:
        return 0
    entry_tap_id, fare = found
    tap_id = entry_tap_id + MISSING_EXIT_SUFFIX
    entry = (await store.fetch_taps(connection, [entry_tap_id, tap_id]))
    if tap_id in entry or entry_tap_id not in entry:
        return 0
    entry_record = entry[entry_tap_id]
    operator_account_id = await connection.fetchval(
        "SELECT operator_account_id FROM transit_devices WHERE device_id = $1",
        entry_record.device_id)
    reason = Reason.approved
    transfer_id = transfer_id_for(tap_id) if fare.fare_minor > 0 else None
    record = TapRecord(
        answer=TapAnswer(tap_id=tap_id, decision=reason.decision, reason=reason.name,
                         reason_code=int(reason), fare_minor=fare.fare_minor,
                         rider_category=fare.rider_category,
                         day_total_minor=fare.day_total_minor, day_cap_minor=fare.day_cap_minor),
        request={"missing_exit_of": entry_tap_id}, device_id=entry_record.device_id,
        card_token=card_token, station=entry_record.station, direction="exit",
        tapped_at=entry_record.tapped_at, transit_day=fare.transit_day, transfer_id=transfer_id)
    await store.write_batch(connection, [record],
                            [replace(card, fare_state=fare.fare_state)], [])
    if transfer_id is not None:
        [posted] = await posting.post(connection, [FarePosting(
            transfer_id, card.account_id, int(operator_account_id), fare.fare_minor, tap_id)])
        if not posted:
            raise ConflictError(f"missing exit of {entry_tap_id}: the ledger refused the fare")
    return 1


async def close_day(pool: asyncpg.Pool, transit_day: date, *, current_day: date) -> dict[str, tuple[Collection, ...]]:
    """Record and return the day's collections per bank (see the module docstring).

    ``current_day`` is the transit day in progress now (the fare engine's day boundary
    applied); only days before it are closed. Run :func:`charge_missing_exits` first so
    the day's unfinished journeys are in its totals.

    Raises
    ------
    ConflictError
        ``transit_day`` is not over yet.
    engine.fares.aggregation.AggregationError
        The day's taps contradict each other.
    """
    if transit_day >= current_day:
        raise ConflictError(f"transit_day: {transit_day} is not closed yet (current {current_day})")
    async with pool.acquire() as connection:
        async with connection.transaction():
            rows = await connection.fetch(
                """SELECT t.tap_id, t.card_token, c.bank_code, t.transit_day, t.fare_minor,
                          t.refund_minor
                   FROM transit_taps t JOIN transit_cards c ON c.card_token = t.card_token
                   WHERE t.transit_day = $1 AND (t.fare_minor > 0 OR t.refund_minor > 0)""",
                transit_day)
            grouped = collections_by_bank(
                (PricedTap(r["tap_id"], r["card_token"], r["bank_code"], r["transit_day"],
                           r["fare_minor"], r["refund_minor"]) for r in rows), transit_day)
            items = [item for bank in grouped.values() for item in bank]
            await connection.execute(
                """INSERT INTO transit_collections (card_token, transit_day, bank_code, amount_minor)
                   SELECT * FROM unnest($1::text[], $2::date[], $3::text[], $4::bigint[])
                   ON CONFLICT DO NOTHING""",
                [c.card_token for c in items], [c.transit_date for c in items],
                [c.issuing_bank_id for c in items], [c.amount_minor for c in items])
    return grouped


def collection_transfer_id(card_token: str, transit_day: date) -> int:
    """The ledger id of the bank's payment of one collection (128 bits, derived).

    >>> collection_transfer_id("c", date(2026, 1, 1)) != collection_transfer_id("c", date(2026, 1, 2))
    True
    """
    key = f"onecard/transit/collection\x00{card_token}\x00{transit_day.isoformat()}".encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:16], "big") or 1


async def record_bank_answer(pool: asyncpg.Pool, ledger: Ledger, card_token: str,
                             transit_day: date, *, collected: bool) -> str:
    """Record the bank's answer to a collection; return the new status.

    ``collected``: the bank paid (its settlement account -> the card account). Otherwise
    the card goes on the deny list for ``unpaid_debt``.

    Raises
    ------
    NotFoundError
        No such collection.
    ConflictError
        The collection was answered already, or the ledger refused the payment.
    """
    to_status = "collected" if collected else "declined"
    return await _move(pool, ledger, card_token, transit_day, to_status)


async def clear_debt(pool: asyncpg.Pool, ledger: Ledger, card_token: str, transit_day: date) -> str:
    """A declined collection was paid after all: post it and lift ``unpaid_debt`` once the
    card has no other declined collection. Raises as :func:`record_bank_answer`."""
    return await _move(pool, ledger, card_token, transit_day, "cleared")


async def _move(pool: asyncpg.Pool, ledger: Ledger, card_token: str, transit_day: date,
                to_status: str) -> str:
    async with pool.acquire() as connection:
        async with connection.transaction():
            row = await connection.fetchrow(
                """SELECT o.status, o.amount_minor, o.bank_code, c.account_id
                   FROM transit_collections o
                   JOIN transit_cards c ON c.card_token = o.card_token
                   WHERE o.card_token = $1 AND o.transit_day = $2 FOR UPDATE OF o""",
                card_token, transit_day)
            if row is None:
                raise NotFoundError(f"collection: none for card {card_token} on {transit_day}")
            if to_status not in TRANSITIONS[row["status"]]:
                raise ConflictError(f"collection: is {row['status']}, cannot become {to_status}")
            await connection.execute(
                "UPDATE transit_collections SET status = $3 WHERE card_token = $1 AND transit_day = $2",
                card_token, transit_day, to_status)
            if to_status == "declined":
                await store.deny(connection, card_token, "unpaid_debt")
                return to_status
            if to_status == "cleared":
                still_owed = await connection.fetchval(
                    """SELECT count(*) FROM transit_collections
                       WHERE card_token = $1 AND status = 'declined'""", card_token)
                if not still_owed:
                    await store.allow(connection, card_token, "unpaid_debt")
            bank = await get_bank(connection, row["bank_code"])
            [result] = await ledger.create_transfers([Transfer(
                id=collection_transfer_id(card_token, transit_day),
                debit_account_id=bank.settlement_account_id, credit_account_id=int(row["account_id"]),
                amount=row["amount_minor"], ledger=LEDGER_CNY, code=TRANSFER_CODE_COLLECTION)],
                connection=connection)
            if result not in POSTED:
                raise ConflictError(f"collection: the ledger refused the payment ({result.name})")
    return to_status
