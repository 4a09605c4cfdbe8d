"""The tap service: the hot path from a decoded tap to a durable answer.

One batch of the micro-batcher (:mod:`engine.taps.batcher`):

1. is prepared: PANs tokenized, every ARQC verified through the key service's batch form
   (while the previous batch is still committing);
2. is flushed in one transaction: locks the cards, looks the taps up by gate and ``tap_id`` (a repeat gets its
   first answer; a repeat with a different body is a conflict naming the field), decides
   each new tap (:func:`engine.taps.decision.decide`), posts the fares card -> operator
   through the ledger on the same connection, and writes the tap records, the cards' new
   state and the alerts;
3. answers only after that transaction committed: acknowledged means durable.

Tap identity. A gate numbers its own taps, so a tap is identified by its gate and its
``tap_id`` together (as fare collection systems key a transaction by device and sequence
number): idempotency, the recorded tap and its ledger transfer id are per
``(gate_id, tap_id)``, and two gates may use the same ``tap_id``. Only the gate a tap
names may send it: :meth:`TapService.submit` refuses a tap whose ``gate_id`` is not the
signing device with :class:`engine.errors.ForbiddenError` (403) before anything is
recorded, and an upload holding one such tap is refused whole. So no device can take,
answer or spoil another gate's tap id; a gate's own retry still gets its first answer.

Replayed signatures across workers: each worker's :class:`adapters.signing.Verifier`
remembers nonces in its own memory, so a signed request replayed to another worker passes
its signature check. Each tap record keeps the nonce of the request that brought it
(``request_nonce``); when a ``tap_id`` comes again from the same device under the same
nonce, it is that request replayed (a gate's own retry is signed anew), and
:meth:`TapService.submit` raises :class:`adapters.errors.SignatureError` (401) instead of
answering. This costs nothing per tap: the flush already looks every ``tap_id`` up. Limit:
a replay that reaches a worker before the original request's taps are recorded is decided
as the original (they are the same request: its taps are charged once, whichever copy
comes first gets the answers, the other is refused).

The ledger posting shares the flush's transaction (``Ledger.create_transfers(...,
connection=)``), so a tap record and its transfer commit together or not at all. That is
why the ledger's own :class:`ledger.batcher.GroupCommitBatcher` is not used here: this
micro-batcher already is the group commit for taps, and a second batcher would commit the
transfers in a separate transaction from the tap records; the transfer id is derived from
the tap's ``(gate_id, tap_id)`` so even a retry
after a lost commit acknowledgement cannot post twice. If the ledger refuses any posting
of a batch, the batch is rolled back and its taps are retried one per transaction so
only the refused tap is declined (``ledger_rejected``).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Protocol, Sequence

import asyncpg

from adapters.errors import SignatureError
from adapters.signing import HEADER_NONCE
from engine.errors import ForbiddenError
from engine.taps import store
from engine.taps.batcher import MicroBatcher
from engine.taps.decision import CardState, Detector, Pricer, TapFacts, decide, no_alerts
from engine.taps.devices import Device
from engine.taps.reasons import Reason
from engine.taps.store import TapRecord
from engine.taps.wire import TapAnswer, TapConflict


# How far ahead of the server clock a gate's clock may run before its taps are declined
# ``tap_in_future`` (gates keep time by NTP; minutes of drift is a broken gate). At most 15
# minutes: a tap accepted that far ahead moves the card into its next transit day when it
# is dated past the day boundary, and the card's real taps of the day ending are then
# declined ``fare_unavailable`` until the boundary passes.
CLOCK_SKEW_MS_DEFAULT = 5 * 60 * 1000
CLOCK_SKEW_MS_MAX = 15 * 60 * 1000
assert 0 <= CLOCK_SKEW_MS_DEFAULT <= CLOCK_SKEW_MS_MAX


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class FarePosting:
    """One fare to post: ``amount`` minor units from the card's to the operator's account,
    or, for a ``refund`` (a late tap that lowered the card's day), from the operator's to
    the card's."""

    transfer_id: int
    dr_account_id: int
    cr_account_id: int
    amount: int
    tap_id: str
    refund: bool = False


class TapKeys(Protocol):
    """What the tap path needs from the key service (batch forms, one result per tap)."""

    async def card_tokens(self, taps: Sequence[Any]) -> list[str]: ...
    async def arqc_checks(self, taps: Sequence[Any]) -> list[Reason | None]: ...


class TapLedger(Protocol):
    """Posting fares on the caller's connection; one ``True`` (posted or already posted)
    per posting, ``False`` when the ledger refused it."""

    async def post(self, connection: asyncpg.Connection, postings: list[FarePosting]) -> list[bool]: ...


class TapIntake(Protocol):
    """Reading the wire tap (:class:`terminal.tap.Tap`)."""

    def facts(self, tap: Any, card_token: str, device: Device) -> TapFacts: ...
    def request_fields(self, tap: Any, card_token: str) -> dict[str, Any]: ...


class TapMetrics(Protocol):
    def flushed(self, size: int, commit_s: float) -> None: ...
    def decided(self, answer: TapAnswer | TapConflict, latency_s: float) -> None: ...
    def alerted(self, kind: str) -> None: ...


@dataclass(frozen=True)
class Submitted:
    device: Device
    tap: Any
    nonce: str | None = None  # of the signed request that brought the tap


@dataclass(frozen=True)
class Replayed:
    """The flush's finding that a tap came again in the very request that first brought it."""

    tap_id: str


class _PostingRefused(Exception):
    """A posting of a multi-tap batch was refused: roll back, retry one by one."""


class _LoneRefusal(Exception):
    """The posting of a one-tap batch was refused: roll back, record it declined."""


def transfer_id_for(device_id: str, tap_id: str) -> int:
    """The ledger transfer id of a tap's fare: 128 bits derived from the tap's identity,
    its gate (``device_id``) and ``tap_id``.

    >>> transfer_id_for("G1", "t1") == transfer_id_for("G1", "t1") != transfer_id_for("G1", "t2")
    True
    >>> transfer_id_for("G1", "t1") != transfer_id_for("G2", "t1")
    True
    """
    # Neither part may contain a NUL (both are printable), so the join is unambiguous.
    digest = hashlib.sha256(b"onecard/transit/fare\x00" + device_id.encode() + b"\x00"
                            + tap_id.encode()).digest()
    return int.from_bytes(digest[:16], "big") or 1


class TapService:
    """Decide and record taps; ``submit`` is what the HTTP handler calls.

    A tap dated more than ``clock_skew_ms_max`` after ``clock()`` (read once per flush) is
    declined ``tap_in_future`` (:func:`engine.taps.decision.decide`, "Clock rule").
    """

    def __init__(self, pool: asyncpg.Pool, *, keys: TapKeys, ledger: TapLedger,
                 intake: TapIntake, price: Pricer, metrics: TapMetrics,
                 flush_size_max: int, flush_delay_ms: float, detect: Detector = no_alerts,
                 clock_skew_ms_max: int = CLOCK_SKEW_MS_DEFAULT,
                 clock: Callable[[], datetime] = utc_now):
        assert 0 <= clock_skew_ms_max <= CLOCK_SKEW_MS_MAX
        self._pool = pool
        self._clock_skew = timedelta(milliseconds=clock_skew_ms_max)
        self._clock = clock
        self._keys = keys
        self._ledger = ledger
        self._intake = intake
        self._price = price
        self._detect = detect
        self._metrics = metrics
        self.batcher: MicroBatcher[Submitted, TapAnswer | TapConflict] = MicroBatcher(
            self._flush, prepare=self._prepare, flush_size_max=flush_size_max,
            flush_delay_ms=flush_delay_ms)

    async def submit(self, device: Device, tap: Any, *,
                     nonce: str | None = None) -> TapAnswer | TapConflict:
        """Decide one tap; return its answer after it is durable.

        ``nonce`` is the signed request's (recorded with the tap; see the module docstring).

        Raises
        ------
        ForbiddenError
            The tap names another gate than the signing ``device`` (nothing recorded).
        SignatureError
            The tap was recorded before from this device under this ``nonce``: a replayed
            request (nothing changed).
        asyncpg.PostgresError, OSError, QueueFullError
            Transient: nothing was recorded, the gate may retry with the same ``tap_id``.
        """
        started_s = time.perf_counter()
        _check_gate(device, tap, "")
        answer = await self.batcher.submit(Submitted(device, tap, nonce))
        if isinstance(answer, Replayed):
            raise SignatureError(f"{HEADER_NONCE}: replayed request")
        self._metrics.decided(answer, time.perf_counter() - started_s)
        return answer

    async def submit_many(self, device: Device, taps: Sequence[Any], *,
                          nonce: str | None = None) -> list[TapAnswer | TapConflict]:
        """Decide an offline upload, in upload order (the gate sends them as they happened).

        With batching on, the taps queue in order and flushes run one after another, so they
        are decided in order while sharing flushes; with batching off they go one by one.

        Raises
        ------
        ForbiddenError
            A tap names another gate than ``device``: the upload is refused whole.
        """
        for index, tap in enumerate(taps):
            _check_gate(device, tap, f"taps[{index}].")
        # A tap_id repeated within the upload is a repeat, not a replay: only its first
        # occurrence carries the request's nonce.
        first_seen: set[str] = set()
        nonces = []
        for tap in taps:
            nonces.append(nonce if tap.tap_id not in first_seen else None)
            first_seen.add(tap.tap_id)
        if self.batcher.flush_size_max == 1:
            return [await self.submit(device, tap, nonce=tap_nonce)
                    for tap, tap_nonce in zip(taps, nonces)]
        return list(await asyncio.gather(*(self.submit(device, tap, nonce=tap_nonce)
                                           for tap, tap_nonce in zip(taps, nonces))))

    async def close(self) -> None:
        await self.batcher.close()

    async def _prepare(self, items: list[Submitted]) -> list:
        """Stage 1 (no database): PAN tokens, ARQC checks, the decision's view of each tap."""
        taps = [item.tap for item in items]
        tokens = await self._keys.card_tokens(taps)
        arqc_checks = await self._keys.arqc_checks(taps)
        assert len(tokens) == len(arqc_checks) == len(items)
        return [
            (item, self._intake.facts(item.tap, token, item.device),
             self._intake.request_fields(item.tap, token), check)
            for item, token, check in zip(items, tokens, arqc_checks)
        ]

    async def _flush(self, prepared: list) -> list[TapAnswer | TapConflict]:
        """Stage 2: one transaction for the batch (see the module docstring)."""
        try:
            return await self._commit(prepared)
        except _LoneRefusal:
            return [await self._record_refusal(*prepared[0])]
        except _PostingRefused:
            answers = []
            for one in prepared:
                try:
                    answers.extend(await self._commit([one]))
                except _LoneRefusal:
                    answers.append(await self._record_refusal(*one))
            return answers

    async def _commit(self, prepared: list) -> list[TapAnswer | TapConflict]:
        try:
            return await self._commit_once(prepared)
        except asyncpg.UniqueViolationError:
            # Taps of cards that lock no row (not enrolled) can race on the same tap_id
            # from two processes; the second attempt sees the first one's record.
            return await self._commit_once(prepared)

    async def _commit_once(self, prepared: list) -> list[TapAnswer | TapConflict]:
        started_s = time.perf_counter()
        tapped_at_max = self._clock() + self._clock_skew
        async with self._pool.acquire() as connection:
            async with connection.transaction():
                cards = await store.lock_cards(connection, (f.card_token for _, f, _, _ in prepared))
                known = await store.fetch_taps(
                    connection, ((f.device_id, f.tap_id) for _, f, _, _ in prepared))
                answers, records, postings, alerts = [], [], [], []
                for item, facts, request, arqc_failure in prepared:
                    prior = known.get((facts.device_id, facts.tap_id))
                    if prior is not None:
                        answers.append(_repeat(prior, request, item))
                        continue
                    record, posting, raised, card = self._decide(
                        cards.get(facts.card_token), item.device, facts, request, arqc_failure,
                        item.nonce, tapped_at_max)
                    if card is not None:
                        cards[card.card_token] = card
                    known[facts.device_id, facts.tap_id] = record
                    records.append(record)
                    answers.append(record.answer)
                    postings.extend(posting)
                    alerts.extend(raised)
                # The ledger write goes last: from it to the commit the transaction holds
                # the ledger's journal head, which every writer needs.
                changed = [cards[token] for token in {r.card_token for r in records}
                           if token in cards]
                await store.write_batch(connection, records, changed, alerts)
                posted = await self._ledger.post(connection, postings)
                if not all(posted):
                    if len(prepared) > 1:
                        raise _PostingRefused()
                    raise _LoneRefusal()
        self._metrics.flushed(len(prepared), time.perf_counter() - started_s)
        for alert in alerts:
            self._metrics.alerted(alert.kind)
        return answers

    def _decide(self, card: CardState | None, device: Device, facts: TapFacts,
                request: dict, arqc_failure: Reason | None, nonce: str | None,
                tapped_at_max: datetime):
        decision = decide(card, facts, arqc_failure=arqc_failure, price=self._price,
                          detect=self._detect, tapped_at_max=tapped_at_max)
        fare = decision.fare
        postings: list[FarePosting] = []
        transfer_id = None
        if fare is not None and fare.fare_minor != 0:
            assert card is not None and device.operator_account_id is not None
            transfer_id = transfer_id_for(device.device_id, facts.tap_id)
            if fare.fare_minor > 0:
                postings.append(FarePosting(transfer_id, card.account_id,
                                            device.operator_account_id, fare.fare_minor,
                                            facts.tap_id))
            else:
                # A late tap lowered the card's day: the late tap's operator refunds it.
                postings.append(FarePosting(transfer_id, device.operator_account_id,
                                            card.account_id, -fare.fare_minor, facts.tap_id,
                                            refund=True))
        fare_minor = fare.fare_minor if fare else 0
        answer = TapAnswer(
            tap_id=facts.tap_id, decision=decision.reason.decision, reason=decision.reason.name,
            reason_code=int(decision.reason), fare_minor=max(fare_minor, 0),
            rider_category=fare.rider_category if fare else (card.rider_category if card else ""),
            day_total_minor=fare.day_total_minor if fare else 0,
            day_cap_minor=fare.day_cap_minor if fare else 0, refund_minor=max(-fare_minor, 0),
        )
        record = TapRecord(
            answer=answer, request=request, device_id=device.device_id,
            card_token=facts.card_token if card is not None else None, station=facts.station,
            direction=facts.direction, tapped_at=facts.tapped_at,
            transit_day=fare.transit_day if fare else None, transfer_id=transfer_id,
            request_nonce=nonce)
        return record, postings, decision.alerts, decision.card

    async def _record_refusal(self, item: Submitted, facts: TapFacts, request: dict,
                              arqc_failure: Reason | None) -> TapAnswer | TapConflict:
        """Record a tap whose posting the ledger refused as declined; the card is unchanged."""
        reason = Reason.ledger_rejected
        answer = TapAnswer(tap_id=facts.tap_id, decision=reason.decision, reason=reason.name,
                           reason_code=int(reason), fare_minor=0, rider_category="",
                           day_total_minor=0, day_cap_minor=0)
        async with self._pool.acquire() as connection:
            async with connection.transaction():
                await store.lock_cards(connection, [facts.card_token])
                key = (facts.device_id, facts.tap_id)
                prior = (await store.fetch_taps(connection, [key])).get(key)
                if prior is not None:
                    return _repeat(prior, request, item)
                await store.write_batch(connection, [TapRecord(
                    answer=answer, request=request, device_id=item.device.device_id,
                    card_token=facts.card_token, station=facts.station,
                    direction=facts.direction, tapped_at=facts.tapped_at, transit_day=None,
                    transfer_id=None, request_nonce=item.nonce)], [], [])
        return answer


def _check_gate(device: Device, tap: Any, where: str) -> None:
    if tap.gate_id != device.device_id:
        raise ForbiddenError(f"{where}gate_id: {tap.gate_id!r} is not the signing device "
                             f"{device.device_id!r}; a gate sends only its own taps")


def _repeat(prior: TapRecord, request: dict[str, Any],
            item: Submitted) -> TapAnswer | TapConflict | Replayed:
    """The first answer again (the same gate's ``tap_id``), a conflict naming the first
    field that differs, or :class:`Replayed` when the very request that brought the tap
    came again."""
    assert prior.device_id == item.device.device_id
    if item.nonce is not None and prior.request_nonce == item.nonce:
        return Replayed(prior.answer.tap_id)
    for name in list(request) + [name for name in prior.request if name not in request]:
        if request.get(name) != prior.request.get(name):
            return TapConflict(tap_id=prior.answer.tap_id, field=name,
                               message=f"{name}: differs from the tap first sent with this tap_id")
    answer = prior.answer
    return TapAnswer(**{f: getattr(answer, f) for f in answer.__struct_fields__}
                     | {"replayed": True})
