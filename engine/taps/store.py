"""PostgreSQL side of the tap path: card state, tap records, deny list, alerts, devices.

Layer rule (Mojaloop style): the decision module decides, this module locks and writes.
One flush of the tap batcher runs :func:`lock_cards`, :func:`fetch_taps`, then
:func:`write_batch`, inside one transaction the caller holds. Cards are locked in token order so two
engine processes flushing overlapping cards cannot deadlock. SQL is plain (no advisory
locks, no session state) so it runs on any PostgreSQL-protocol database.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Iterable

import asyncpg
import msgspec

from engine.taps.decision import CardState, RaisedAlert
from engine.taps.reasons import Reason
from engine.taps.wire import Alert, CardTap, DenyEntry, TapAnswer
from terminal.gate import DenyList as GateDenyList

JOURNEYS_LISTED_MAX = 1000
ALERTS_LISTED_MAX = 1000
DENY_REASON_NAMES = ("lost", "closed", "unpaid_debt")


@dataclass(frozen=True)
class TapRecord:
    """One decided tap as written: its answer and the request it answered."""

    answer: TapAnswer
    request: dict[str, Any]
    device_id: str
    card_token: str | None
    station: str
    direction: str
    tapped_at: datetime
    transit_day: str | None
    transfer_id: int | None
    request_nonce: str | None = None  # of the signed request that brought it (replay check)


async def lock_cards(connection: asyncpg.Connection, tokens: Iterable[str]) -> dict[str, CardState]:
    """Lock (``FOR UPDATE``) and load the enrolled cards among ``tokens``, with deny reasons."""
    rows = await connection.fetch(
        """SELECT c.card_token, c.account_id, c.bank_code, c.rider_category, c.birth_date,
                  c.entitlements, c.atc_max, c.atcs_recent, c.arqcs_recent, c.fare_state,
                  c.alert_state,
                  ARRAY(SELECT d.reason FROM transit_deny_list d
                        WHERE d.card_token = c.card_token) AS deny_reasons
           FROM transit_cards c WHERE c.card_token = ANY($1::text[])
           ORDER BY c.card_token FOR UPDATE OF c""",
        sorted(set(tokens)),
    )
    return {row["card_token"]: _card(row) for row in rows}


def _card(row: asyncpg.Record) -> CardState:
    return CardState(
        card_token=row["card_token"], account_id=int(row["account_id"]),
        bank_code=row["bank_code"], rider_category=row["rider_category"],
        birth_date=row["birth_date"], entitlements=frozenset(row["entitlements"]),
        atc_max=row["atc_max"], atcs_recent=tuple(row["atcs_recent"]),
        arqcs_recent=tuple(bytes(a) for a in row["arqcs_recent"]),
        fare_state=None if row["fare_state"] is None else bytes(row["fare_state"]),
        alert_state=None if row["alert_state"] is None else bytes(row["alert_state"]),
        deny_reasons=frozenset(row["deny_reasons"]),
    )


async def fetch_taps(connection: asyncpg.Connection, tap_ids: Iterable[str]) -> dict[str, TapRecord]:
    """The already recorded taps among ``tap_ids``."""
    rows = await connection.fetch(
        "SELECT * FROM transit_taps WHERE tap_id = ANY($1::text[])", list(set(tap_ids)))
    return {row["tap_id"]: _record(row) for row in rows}


def _record(row: asyncpg.Record) -> TapRecord:
    reason = Reason(row["reason"])
    answer = TapAnswer(
        tap_id=row["tap_id"], decision=reason.decision, reason=reason.name,
        reason_code=int(reason), fare_minor=row["fare_minor"],
        rider_category=row["rider_category"], day_total_minor=row["day_total_minor"],
        day_cap_minor=row["day_cap_minor"], refund_minor=row["refund_minor"],
    )
    return TapRecord(
        answer=answer, request=msgspec.json.decode(row["request"]), device_id=row["device_id"],
        card_token=row["card_token"], station=row["station"], direction=row["direction"],
        tapped_at=row["tapped_at"],
        transit_day=None if row["transit_day"] is None else row["transit_day"].isoformat(),
        transfer_id=None if row["transfer_id"] is None else int(row["transfer_id"]),
        request_nonce=row["request_nonce"],
    )


_WRITE_BATCH = """
WITH taps AS (
    INSERT INTO transit_taps (tap_id, device_id, card_token, request, reason, fare_minor,
        rider_category, day_total_minor, day_cap_minor, transit_day, station, direction,
        tapped_at, transfer_id, request_nonce, refund_minor)
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::json[], $5::smallint[],
        $6::bigint[], $7::text[], $8::bigint[], $9::bigint[], $10::date[], $11::text[],
        $12::text[], $13::timestamptz[], $14::text[]::numeric[], $26::text[], $27::bigint[])
),
alerts AS (
    INSERT INTO transit_alerts (kind, card_token, tap_id, detail)
    SELECT * FROM unnest($15::text[], $16::text[], $17::text[], $18::text[])
)
UPDATE transit_cards c SET atc_max = u.atc_max, rider_category = u.rider_category,
       atcs_recent = u.atcs::integer[], arqcs_recent = u.arqcs::bytea[],
       fare_state = u.fare_state, alert_state = u.alert_state
FROM unnest($19::text[], $20::integer[], $21::text[], $22::text[], $23::text[], $24::bytea[],
            $25::bytea[]) AS u(card_token, atc_max, rider_category, atcs, arqcs, fare_state,
                               alert_state)
WHERE c.card_token = u.card_token"""


async def write_batch(connection: asyncpg.Connection, records: list[TapRecord],
                      cards: list[CardState], alerts: list[RaisedAlert]) -> None:
    """Write decided taps, the cards' new state (ATC memory, fare and alert state) and
    raised alerts in one statement.

    A tap_id already recorded is a programmer error here: the caller locked the cards and
    looked the ids up in the same transaction.
    """
    await connection.execute(
        _WRITE_BATCH,
        [r.answer.tap_id for r in records], [r.device_id for r in records],
        [r.card_token for r in records],
        [msgspec.json.encode(r.request).decode() for r in records],
        [r.answer.reason_code for r in records], [r.answer.fare_minor for r in records],
        [r.answer.rider_category for r in records],
        [r.answer.day_total_minor for r in records], [r.answer.day_cap_minor for r in records],
        [None if r.transit_day is None else date.fromisoformat(r.transit_day) for r in records],
        [r.station for r in records], [r.direction for r in records],
        [r.tapped_at for r in records],
        # As decimal text: asyncpg's binary numeric encoding costs microseconds per value.
        [None if r.transfer_id is None else str(r.transfer_id) for r in records],
        [a.kind for a in alerts], [a.card_token for a in alerts], [a.tap_id for a in alerts],
        [a.detail for a in alerts],
        [c.card_token for c in cards], [c.atc_max for c in cards],
        [c.rider_category for c in cards],
        # Arrays of arrays of different lengths cannot be unnested, so each card's travels
        # as its PostgreSQL array literal.
        ["{" + ",".join(map(str, c.atcs_recent)) + "}" for c in cards],
        ["{" + ",".join('"\\\\x' + a.hex() + '"' for a in c.arqcs_recent) + "}" for c in cards],
        [c.fare_state for c in cards], [c.alert_state for c in cards],
        [r.request_nonce for r in records], [r.answer.refund_minor for r in records],
    )


async def enrol_card(connection: asyncpg.Connection, card_token: str, *, account_id: int,
                     bank_code: str, pan_hash: str, birth_date: date | None = None,
                     entitlements: Iterable[str] = ()) -> None:
    """Enrol a card for transit: its ledger account, issuing bank and rider profile.

    Enrolling again updates the account, bank and profile and keeps the ATC memory, fare
    and alert state.
    """
    assert card_token and bank_code and account_id > 0
    await connection.execute(
        """INSERT INTO transit_cards (card_token, account_id, bank_code, birth_date, entitlements,
                                        pan_hash)
           VALUES ($1, $2, $3, $4, $5, $6)
           ON CONFLICT (card_token) DO UPDATE SET account_id = EXCLUDED.account_id,
               bank_code = EXCLUDED.bank_code, birth_date = EXCLUDED.birth_date,
               entitlements = EXCLUDED.entitlements, pan_hash = EXCLUDED.pan_hash""",
        card_token, account_id, bank_code, birth_date, sorted(entitlements), pan_hash,
    )


@dataclass(frozen=True)
class Issuer:
    """Cards whose PAN starts with ``pan_prefix`` are issued by ``bank_code`` and their
    cryptograms verify under the key service's ``imk-ac`` key ``key_label``."""

    pan_prefix: str
    bank_code: str
    key_label: str


async def add_issuer(connection: asyncpg.Connection, issuer: Issuer) -> None:
    """Register (or replace) the issuer of a PAN prefix."""
    await connection.execute(
        """INSERT INTO transit_issuers (pan_prefix, bank_code, key_label) VALUES ($1, $2, $3)
           ON CONFLICT (pan_prefix) DO UPDATE SET bank_code = EXCLUDED.bank_code,
               key_label = EXCLUDED.key_label""",
        issuer.pan_prefix, issuer.bank_code, issuer.key_label)


async def issuers(connection: asyncpg.Connection) -> list[Issuer]:
    """Every registered issuer, longest prefix first."""
    rows = await connection.fetch(
        "SELECT pan_prefix, bank_code, key_label FROM transit_issuers "
        "ORDER BY length(pan_prefix) DESC, pan_prefix")
    return [Issuer(r["pan_prefix"], r["bank_code"], r["key_label"]) for r in rows]


async def deny(connection: asyncpg.Connection, card_token: str, reason: str) -> bool:
    """List ``card_token`` for ``reason``; return whether it was not listed for it before."""
    assert reason in DENY_REASON_NAMES
    status = await connection.execute(
        """INSERT INTO transit_deny_list (card_token, reason) VALUES ($1, $2)
           ON CONFLICT DO NOTHING""", card_token, reason)
    changed = status.endswith(" 1")
    if changed:
        await _next_deny_list_version(connection)
    return changed


async def allow(connection: asyncpg.Connection, card_token: str, reason: str) -> bool:
    """Remove the listing of ``card_token`` for ``reason``; return whether it was listed."""
    status = await connection.execute(
        "DELETE FROM transit_deny_list WHERE card_token = $1 AND reason = $2",
        card_token, reason)
    changed = status != "DELETE 0"
    if changed:
        await _next_deny_list_version(connection)
    return changed


async def _next_deny_list_version(connection: asyncpg.Connection) -> None:
    await connection.execute("UPDATE transit_deny_list_state SET version = version + 1")


async def deny_list_salt(connection: asyncpg.Connection) -> bytes:
    """The salt of the gates' deny list (16 to 64 bytes, per deployment)."""
    return bytes(await connection.fetchval("SELECT salt FROM transit_deny_list_state"))


async def gate_deny_list(connection: asyncpg.Connection) -> GateDenyList:
    """The deny list as gates hold it: version, salt, salted PAN hashes of listed cards."""
    state = await connection.fetchrow("SELECT salt, version FROM transit_deny_list_state")
    hashes = await connection.fetch(
        """SELECT DISTINCT c.pan_hash FROM transit_deny_list d
           JOIN transit_cards c ON c.card_token = d.card_token
           WHERE c.pan_hash IS NOT NULL ORDER BY c.pan_hash""")
    return GateDenyList(version=state["version"], salt=bytes(state["salt"]).hex(),
                        cards=[row["pan_hash"] for row in hashes])


async def deny_entries(connection: asyncpg.Connection) -> list[DenyEntry]:
    """Every deny-list entry, by card token then reason."""
    rows = await connection.fetch(
        "SELECT card_token, reason FROM transit_deny_list ORDER BY card_token, reason")
    return [DenyEntry(card_token=r["card_token"], reason=r["reason"]) for r in rows]


async def card_taps(connection: asyncpg.Connection, card_token: str,
                    limit: int = JOURNEYS_LISTED_MAX) -> list[CardTap]:
    """The card's latest ``limit`` recorded taps, oldest first."""
    assert 1 <= limit <= JOURNEYS_LISTED_MAX
    rows = await connection.fetch(
        """SELECT * FROM (
               SELECT tap_id, tapped_at, station, direction, reason, fare_minor, day_total_minor,
                      refund_minor
               FROM transit_taps WHERE card_token = $1
               ORDER BY tapped_at DESC, tap_id DESC LIMIT $2) latest
           ORDER BY tapped_at, tap_id""",
        card_token, limit)
    return [
        CardTap(tap_id=r["tap_id"], tapped_at=r["tapped_at"].isoformat(), station=r["station"],
                direction=r["direction"], decision=Reason(r["reason"]).decision,
                reason=Reason(r["reason"]).name, fare_minor=r["fare_minor"],
                day_total_minor=r["day_total_minor"], refund_minor=r["refund_minor"])
        for r in rows
    ]


async def alerts(connection: asyncpg.Connection, *, after_id: int = 0,
                 limit: int = ALERTS_LISTED_MAX) -> list[Alert]:
    """Stored alerts with ``alert_id > after_id``, oldest first (at most ``limit``)."""
    assert 1 <= limit <= ALERTS_LISTED_MAX
    rows = await connection.fetch(
        """SELECT alert_id, kind, card_token, tap_id, detail, raised_at FROM transit_alerts
           WHERE alert_id > $1 ORDER BY alert_id LIMIT $2""", after_id, limit)
    return [Alert(alert_id=r["alert_id"], kind=r["kind"], card_token=r["card_token"],
                  tap_id=r["tap_id"], detail=r["detail"], raised_at=r["raised_at"].isoformat())
            for r in rows]
