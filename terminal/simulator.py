"""Gate simulator: N emulated cards riding through M gates, as a stream of real taps.

Every tap comes out of the real kernel flow (:func:`terminal.reader.read_tap`) run against
an emulated card (:class:`terminal.card.Card`), so its ARQC verifies with the issuer master
key of the card's scheme, exactly as the engine will check it. A configurable share of taps
is bad on purpose, each labelled with its :class:`Fault`:

- ``wrong_arqc``: one bit of the cryptogram flipped after the read;
- ``replayed_atc``: the card's counter rolled back by one before the read (a cloned or
  replayed card): the ARQC is valid but the ATC was already used;
- ``deny_listed``: a tap by one of the cards in :attr:`Simulation.denied_pans`.

Riders alternate entry and exit: a card outside enters at a random station's entry gate,
and leaves through an exit gate of another station once its ride is over. Gates are
paired per station (even index: entry, odd: exit); a single gate is a flat-fare validator
(``single``). New entries come at exponential gaps (mean ``gap_ms_mean``), so taps come
in realistic bursts; a ride takes minutes: the time to reach the platform, wait and walk
out (uniform in :data:`ACCESS_S_MIN`..:data:`ACCESS_S_MAX`) plus the track distance at
:data:`TRAIN_SPEED_M_PER_S`. The distance is the network's (``network``, e.g. an
:class:`engine.fares.stations.StationNetwork`) where it is given, else the synthetic
stations lie on one line :data:`STATION_SPACING_M` apart. Taps come out in local-time
order (so each card's are too), and everything is deterministic for a given ``seed``.

The issuer master keys and gate signing keys are derived from the seed: they are
simulation keys, for tests, the demo and benchmarks only.

>>> simulation = Simulation(cards=3, gates=4, seed=7)
>>> [(item.tap.gate_id, item.tap.direction, item.tap.pan[-4:], item.tap.atc,
...   item.tap.local_time.strftime("%H:%M:%S")) for item in simulation.taps(4)]
[('G0002', 'entry', '7825', 1, '07:00:00'), ('G0000', 'entry', '7841', 1, '07:00:00'), ('G0002', 'entry', '7833', 1, '07:00:00'), ('G0001', 'exit', '7825', 2, '07:05:04')]
"""

from __future__ import annotations

import asyncio
import datetime
import enum
import hashlib
import heapq
import random
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import NamedTuple, Protocol

import msgspec
from stdnum import luhn

from hsm.scheme import SCHEMES
from terminal.card import Card
from terminal.errors import GateUnreachableError
from terminal.gate import DenyList, GateClient, card_hash
from terminal.reader import read_tap
from terminal.tap import Tap

BIN_DEFAULT = "621700"  # a UnionPay debit BIN (ISO/IEC 7812 issuer identification)
PAN_DIGITS = 19
GAP_MS_MEAN = 250
DENIED_SHARE = 0.02
CARDS_MAX = 10_000_000
GATES_MAX = 100_000
CONCURRENCY_DEFAULT = 32
START_DEFAULT = datetime.datetime(2026, 11, 30, 7, 0, tzinfo=datetime.timezone(datetime.timedelta(hours=8)))
ACCESS_S_MIN = 120  # entry gate to platform, waiting, platform to exit gate: the shortest
ACCESS_S_MAX = 360  # ... and the longest (uniform in between)
TRAIN_SPEED_M_PER_S = 9  # a metro's commercial speed, stops included (about 32 km/h)
STATION_SPACING_M = 1_500  # between adjacent synthetic stations (a typical urban metro)

assert len(BIN_DEFAULT) + 7 + 1 <= PAN_DIGITS and 0 < DENIED_SHARE < 1
assert 0 < ACCESS_S_MIN <= ACCESS_S_MAX and TRAIN_SPEED_M_PER_S > 0 and STATION_SPACING_M > 0


class Fault(enum.IntEnum):
    """What is wrong with a simulated tap on purpose; ``none`` for a good tap. A bad tap
    carries exactly one fault, so the expected decline reason is unambiguous."""

    none = 0
    wrong_arqc = 1
    replayed_atc = 2
    deny_listed = 3


class SimulatedTap(NamedTuple):
    """A tap and the fault the simulator put into it."""

    tap: Tap
    fault: Fault


class Gate(NamedTuple):
    gate_id: str
    station: str
    direction: str


class Network(Protocol):
    """Stations with track distances (as :class:`engine.fares.stations.StationNetwork`)."""

    stations: Mapping[str, object]

    def distance_m(self, from_station_id: str, to_station_id: str) -> int: ...


class _Exit(NamedTuple):
    """A rider inside, due at an exit gate at local time ``at``."""

    at: datetime.datetime
    sequence: int  # the entry tap's number: breaks ties, so the heap never compares cards
    card: Card
    gate: Gate


class Simulation:
    """A deterministic population of cards and gates producing taps.

    Parameters
    ----------
    cards, gates : int
        How many emulated cards and gates (1..10,000,000 and 1..100,000). With faults
        enabled there must be at least 2 cards (some are deny-listed).
    bad_share : float
        Share of taps (0 to 1) that carry a fault, split evenly between the three kinds.
    seed : int
        Seeds every random choice, the keys and the PANs.
    schemes : Sequence[str]
        Scheme names (:data:`hsm.scheme.SCHEMES`); cards take them in turn.
    amount : int
        The amount, in minor units, each gate asks the card to authorise (0: the engine
        prices the journey afterwards, as open-loop transit does).
    start : datetime
        Local time of the first tap (timezone-aware).
    gap_ms_mean : int
        Mean gap between new entries (and faulty taps), milliseconds.
    network : Network | None
        Real stations: the gates stand at its stations (in its order, repeated if there
        are more station pairs of gates than stations) and rides take its track distance.

    Raises
    ------
    ValueError
        A count or share out of range, or an unknown scheme.
    """

    def __init__(self, *, cards: int, gates: int, bad_share: float = 0.0, seed: int = 0,
                 schemes: Sequence[str] = ("pboc-3des",), amount: int = 0,
                 start: datetime.datetime = START_DEFAULT, gap_ms_mean: int = GAP_MS_MEAN,
                 bin_prefix: str = BIN_DEFAULT, network: Network | None = None):
        if not 1 <= cards <= CARDS_MAX:
            raise ValueError(f"cards: must be 1..{CARDS_MAX}, got {cards}")
        if not 1 <= gates <= GATES_MAX:
            raise ValueError(f"gates: must be 1..{GATES_MAX}, got {gates}")
        if not 0.0 <= bad_share <= 1.0:
            raise ValueError(f"bad_share: must be 0..1, got {bad_share}")
        if bad_share and cards < 2:
            raise ValueError("cards: at least 2 are needed when bad_share > 0 (one is deny-listed)")
        unknown = [name for name in schemes if name not in SCHEMES]
        if unknown or not schemes:
            raise ValueError(f"schemes: unknown {unknown or 'empty list'}; known: {', '.join(sorted(SCHEMES))}")
        if start.utcoffset() is None:
            raise ValueError("start: must be timezone-aware")
        self.seed = seed
        self.bad_share = bad_share
        self.amount = amount
        self._random = random.Random(seed)
        self._clock = start
        self._gap_ms_mean = gap_ms_mean
        self._sequence = 0
        self.issuer_master_keys = {name: _derived_key(f"imk/{seed}/{name}") for name in schemes}
        self.gates = _gates(gates, list(network.stations) if network is not None else None)
        self._network = network
        self.gate_keys = {gate.gate_id: _derived_key(f"gate/{seed}/{gate.gate_id}", 32) for gate in self.gates}
        self.cards = [Card.issue(schemes[index % len(schemes)], self.issuer_master_keys[schemes[index % len(schemes)]],
                                 _pan(bin_prefix, seed, index), f"{index % 3:02d}")
                      for index in range(cards)]
        self._cards_by_pan = {card.pan: card for card in self.cards}
        denied_count = max(1, round(cards * DENIED_SHARE)) if bad_share else 0
        self.denied_pans = frozenset(card.pan for card in self.cards[cards - denied_count:])
        self._riders = self.cards[:cards - denied_count]
        self._outside = list(self._riders)  # riders who may enter (swap-removed on entry)
        self._exits: list[_Exit] = []  # heap of riders inside, by exit time
        self._station_index = {station: index for index, station in enumerate(
            dict.fromkeys(gate.station for gate in self.gates))}

    def __repr__(self) -> str:
        return (f"Simulation(cards={len(self.cards)}, gates={len(self.gates)}, "
                f"bad_share={self.bad_share}, seed={self.seed})")

    def deny_list(self, version: int = 1) -> DenyList:
        """The deny list an engine should serve for this simulation (salt from the seed)."""
        salt = _derived_key(f"salt/{self.seed}")
        return DenyList(version, salt.hex(), sorted(card_hash(salt, pan) for pan in self.denied_pans))

    def scheme_of(self, pan: str) -> str:
        """The scheme name of the simulated card ``pan``."""
        return self._cards_by_pan[pan].scheme_name

    def taps(self, count: int) -> Iterator[SimulatedTap]:
        """The next ``count`` taps, in local-time order."""
        for _ in range(count):
            yield self._next()

    def _next(self) -> SimulatedTap:
        # The next new event is ``gap`` after the clock, unless a rider inside is due at
        # an exit gate earlier: the clock never goes back, so taps stay in time order.
        at = self._clock + datetime.timedelta(milliseconds=self._random.expovariate(1 / self._gap_ms_mean))
        due = self._exits[0].at if self._exits else None
        fault = Fault.none
        if self.bad_share and self._random.random() < self.bad_share:
            fault = self._random.choice((Fault.wrong_arqc, Fault.replayed_atc, Fault.deny_listed))
        if fault is Fault.deny_listed:
            pan = self._random.choice(sorted(self.denied_pans))
            self._clock = min(at, due) if due is not None else at
            return SimulatedTap(self._read(self._cards_by_pan[pan], self._random.choice(self.gates)), fault)
        if fault is Fault.replayed_atc:
            card = self._random.choice(self._riders)
            if card.atc >= 1:
                self._clock = min(at, due) if due is not None else at
                return SimulatedTap(self._replayed(card), fault)
            fault = Fault.none  # a card that never tapped has nothing to replay
        if due is not None and (due <= at or not self._outside):
            exit_ = heapq.heappop(self._exits)
            self._clock = exit_.at
            card, gate = exit_.card, exit_.gate
            self._outside.append(card)
        else:
            self._clock = at
            card, gate = self._enter()
        tap = self._read(card, gate)
        if fault is Fault.wrong_arqc:
            arqc = bytearray.fromhex(tap.arqc)
            arqc[self._random.randrange(8)] ^= 1 << self._random.randrange(8)
            tap = msgspec.structs.replace(tap, arqc=arqc.hex().upper())
        return SimulatedTap(tap, fault if fault is Fault.wrong_arqc else Fault.none)

    def _replayed(self, card: Card) -> Tap:
        """A tap at a random gate with the card's counter rolled back by one."""
        last_atc = card.atc
        card.atc = last_atc - 1
        tap = self._read(card, self._random.choice(self.gates))
        card.atc = last_atc
        return tap

    def _enter(self) -> tuple[Card, Gate]:
        """A rider outside enters now; its exit is scheduled after the ride."""
        index = self._random.randrange(len(self._outside))
        card = self._outside[index]
        self._outside[index] = self._outside[-1]
        self._outside.pop()
        if len(self.gates) == 1:
            self._outside.append(card)  # a flat-fare validator: the rider never stays inside
            return card, self.gates[0]
        entry = self._random.choice([gate for gate in self.gates if gate.direction == "entry"])
        exits = [gate for gate in self.gates if gate.direction == "exit" and gate.station != entry.station]
        exit_gate = self._random.choice(exits or [gate for gate in self.gates if gate.direction == "exit"])
        ride_s = (self._random.uniform(ACCESS_S_MIN, ACCESS_S_MAX)
                  + self._distance_m(entry.station, exit_gate.station) / TRAIN_SPEED_M_PER_S)
        heapq.heappush(self._exits, _Exit(self._clock + datetime.timedelta(seconds=ride_s),
                                          self._sequence, card, exit_gate))
        return card, entry

    def _distance_m(self, from_station: str, to_station: str) -> int:
        if self._network is not None:
            return self._network.distance_m(from_station, to_station)
        return abs(self._station_index[from_station] - self._station_index[to_station]) * STATION_SPACING_M

    def _read(self, card: Card, gate: Gate) -> Tap:
        self._sequence += 1
        card.reset()
        return read_tap(card.transmit, amount=self.amount,
                        tap_id=f"{gate.gate_id}:{self.seed}:{self._sequence}",
                        gate_id=gate.gate_id, station=gate.station, direction=gate.direction,
                        local_time=self._clock.replace(microsecond=self._clock.microsecond // 1000 * 1000),
                        un=self._random.randbytes(4))


async def send_taps(taps: Iterable[Tap], engine_url: str, gate_keys: dict[str, bytes],
                    queue_dir: Path, *, concurrency: int = CONCURRENCY_DEFAULT) -> Counter:
    """Send taps to the engine through one :class:`GateClient` per gate, up to
    ``concurrency`` in flight; return a Counter of outcomes: ``"approved"`` or
    ``"decision/reason"`` (e.g. ``"declined/arqc_invalid"``).

    Each gate starts as a real one does (:meth:`GateClient.sync`): it uploads what its
    queue file holds from an earlier run and fetches the engine's deny list; if the engine
    is unreachable it keeps the copy on disk. Taps the engine could not take are queued
    under ``queue_dir`` (one SQLite file per gate) and counted as ``"approved/offline"``
    or ``"declined/offline_deny_list"`` (decided with that copy).

    Raises
    ------
    GateError
        The engine refused a request (4xx), e.g. a gate key it does not know.
    """
    assert concurrency >= 1
    # One start-up task per gate: every tap of that gate waits for it, so none is sent
    # before the gate has synced.
    clients: dict[str, asyncio.Task] = {}
    outcomes: Counter = Counter()
    semaphore = asyncio.Semaphore(concurrency)

    async def start(gate_id: str) -> GateClient:
        client = GateClient(engine_url, gate_id, gate_keys[gate_id], queue_dir / f"{gate_id}.sqlite3")
        await client.__aenter__()
        try:
            await client.sync()
        except GateUnreachableError:
            pass  # offline from the start: the deny list copy on disk decides
        except BaseException:
            await client.close()
            raise
        return client

    async def one(tap: Tap) -> None:
        if tap.gate_id not in clients:
            clients[tap.gate_id] = asyncio.ensure_future(start(tap.gate_id))
        client = await asyncio.shield(clients[tap.gate_id])
        async with semaphore:
            decision = await client.submit(tap)
        outcomes[decision.decision if decision.reason == decision.decision
                 else f"{decision.decision}/{decision.reason}"] += 1

    pending: set[asyncio.Task] = set()
    try:
        for tap in taps:
            pending.add(asyncio.ensure_future(one(tap)))
            if len(pending) >= concurrency * 2:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                _raise_first_error(done)
        while pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            _raise_first_error(done)
    finally:
        # After a failure, the taps still in flight are cancelled and awaited before their
        # clients close (none is left to fail unobserved).
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        for started in clients.values():
            if not started.done():
                started.cancel()
            await asyncio.gather(started, return_exceptions=True)
            if not started.cancelled() and started.exception() is None:
                await started.result().close()
    return outcomes


def _raise_first_error(done: set[asyncio.Task]) -> None:
    """Raise the first error of finished tasks, having looked at every task's outcome."""
    errors = [task.exception() for task in done]
    first = next((error for error in errors if error is not None), None)
    if first is not None:
        raise first


def _gates(count: int, stations: list[str] | None) -> list[Gate]:
    """Gate pairs per station: synthetic ``S000``, ``S001``... or ``stations`` in turn."""
    def station(pair: int) -> str:
        return stations[pair % len(stations)] if stations else f"S{pair:03d}"

    if count == 1:
        return [Gate("G0000", station(0), "single")]
    return [Gate(f"G{index:04d}", station(index // 2), "entry" if index % 2 == 0 else "exit")
            for index in range(count - count % 2)] + (
        [Gate(f"G{count - 1:04d}", station((count - 1) // 2 - 1), "entry")] if count % 2 else [])


def _pan(bin_prefix: str, seed: int, index: int) -> str:
    body_digits = PAN_DIGITS - 1 - len(bin_prefix)
    account = (int.from_bytes(_derived_key(f"pan/{seed}"), "big") + index) % 10 ** body_digits
    partial = f"{bin_prefix}{account:0{body_digits}d}"
    return partial + luhn.calc_check_digit(partial)


def _derived_key(label: str, length: int = 16) -> bytes:
    return hashlib.sha256(f"onecard-simulation/{label}".encode()).digest()[:length]
