"""Step 4: a transit day over HTTP.

``onecard serve`` runs as a subprocess on a free loopback port over the demo's database
and key store; the gate simulator (:class:`terminal.simulator.Simulation`) personalises
one emulated card per cardholder (scheme and key of the card's bank) and sends its taps
through signed gate clients (:func:`terminal.simulator.send_taps`). The gates are an entry
and an exit gate at every station of Chengdu Metro Line 1 (the packaged fare network) and
single-tap validators on buses (flat fare, bus→metro transfer discount).

Faults on purpose: wrong cryptograms, replayed counters and deny-listed cards (the
simulator's labelled faults); cardholders whose card is lost or closed in the registry
tap too (declined by the deny list); riders still inside at the end of the day are
charged a missing exit by the daily close.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from engine.demo.world import World
from engine.fares.config import load_engine
from engine.fares.stations import StationNetwork
from engine.reference_data import reference_data_dir
from engine.synthetic import Person
from engine.taps import store
from engine.taps.collections import charge_missing_exits, close_day
from engine.taps.devices import DeviceRegistry
from engine.taps.posting import LedgerPosting
from engine.taps.pricing import FarePricing
from terminal.gate import GateClient, TapDecision
from terminal.simulator import Gate, Simulation, send_taps
from terminal.tap import Tap

# One scheme (and issuer master key) per partner bank, in PARTNER_BANKS order.
SCHEMES = ("pboc-3des", "emv-csk-3des", "pboc-sm4")
BAD_SHARE = 0.03
DAY_START = dt.datetime(2026, 11, 30, 6, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))
DAY_LENGTH_MS = 16 * 3600 * 1000  # 06:00-22:00 local
ISSUER_PREFIX_DIGITS = 6
BUS_VALIDATORS = 12  # against an entry gate at each of the 35 Line 1 stations: 1 boarding in 4 by bus
TAPS_PER_EVENT_X4 = 7  # a new boarding is 1.75 taps on average (metro: entry + exit; bus: 1)
SERVER_START_TIMEOUT_S = 120
CONCURRENCY = 24


@dataclass
class TransitDay:
    """What the transit day produced (filled while it runs)."""

    outcomes: Counter = field(default_factory=Counter)        # gate view: "decision/reason"
    faults: Counter = field(default_factory=Counter)          # simulator labels
    latencies_s: list[float] = field(default_factory=list)
    local_minutes: list[int] = field(default_factory=list)    # minutes after DAY_START
    elapsed_s: float = 0.0
    missing_exits_charged: int = 0
    collections: dict[str, int] = field(default_factory=dict)  # bank -> collections recorded
    uploaded_offline: int = 0  # taps a gate approved offline (engine too slow), uploaded afterwards


def line1() -> StationNetwork:
    """The packaged Chengdu Metro Line 1 network (stations and track distances)."""
    return StationNetwork.load(Path(str(resources.files("engine.fares").joinpath("data/chengdu_line1.csv"))))


def bus_gates(count: int = BUS_VALIDATORS) -> list[Gate]:
    """Single-tap validators on buses (flat fare; a metro entry within 90 minutes of a bus
    tap gets the transfer discount)."""
    return [Gate(f"B{index:03d}", f"bus-{index:03d}", "single") for index in range(count)]


def simulation(people: Sequence[Person], taps: int, seed: int) -> Simulation:
    """The gate simulator over the cardholders' cards (card ``i``: scheme ``SCHEMES[i % 3]``)."""
    network = line1()
    sim = Simulation(cards=len(people), gates=2 * len(network.stations), bad_share=BAD_SHARE, seed=seed,
                     schemes=SCHEMES, start=DAY_START, gap_ms_mean=max(1, DAY_LENGTH_MS * TAPS_PER_EVENT_X4 // (4 * max(taps, 1))),
                     network=network, pans=[person.card_number for person in people])
    sim.gates = sim.gates + bus_gates()
    return sim


async def provision(world: World, sim: Simulation, people: Sequence[Person], tokens: dict[str, str],
                    banks: Sequence[str]) -> dict[str, bytes]:
    """Issuers by PAN prefix, the gates (secrets returned), the simulator's deny-listed cards."""
    async with world.pool.acquire() as connection:
        for person in people:
            bank_index = list(banks).index(person.bank_code)
            await store.add_issuer(connection, store.Issuer(
                person.card_number[:ISSUER_PREFIX_DIGITS], person.bank_code, f"imk-{person.bank_code.lower()}"))
            assert SCHEMES[bank_index] == sim.scheme_of(person.card_number)
        for pan in sim.denied_pans:
            await store.deny(connection, tokens[pan], "lost")
    devices = DeviceRegistry(world.pool, sealer=world.key_service)
    network = {"single": "bus"}
    return {gate.gate_id: await devices.add(gate.gate_id, "gate", network_id=network.get(gate.direction, "metro"),
                                            operator_account_id=world.accounts[network.get(gate.direction, "metro")])
            for gate in sim.gates}


async def ride(world: World, sim: Simulation, gate_keys: dict[str, bytes], taps: int, queue_dir: Path,
               on_progress: Callable[[int], None]) -> TransitDay:
    """Run the engine server and send ``taps`` taps through the gates."""
    day = TransitDay()

    def stream() -> Iterator[Tap]:
        for item in sim.taps(taps):
            day.faults[item.fault.name] += 1
            yield item.tap

    def observe(tap: Tap, decision: TapDecision, latency_s: float) -> None:
        day.latencies_s.append(latency_s)
        day.local_minutes.append(int((tap.local_time - DAY_START).total_seconds() // 60))
        on_progress(1)

    server, url = await start_server(world)
    try:
        started_s = time.monotonic()
        day.outcomes = await send_taps(stream(), url, gate_keys, queue_dir, concurrency=CONCURRENCY,
                                       observe=observe)
        day.elapsed_s = time.monotonic() - started_s
        day.uploaded_offline = await upload_queues(url, gate_keys, queue_dir)
    finally:
        await stop_server(server)
    return day


async def upload_queues(url: str, gate_keys: dict[str, bytes], queue_dir: Path) -> int:
    """Upload what the gates queued while the engine did not answer in time (as gates do
    when it is back); return how many taps were uploaded."""
    uploaded = 0
    for gate_id, key in gate_keys.items():
        queue = queue_dir / f"{gate_id}.sqlite3"
        if queue.exists():
            async with GateClient(url, gate_id, key, queue) as client:
                uploaded += await client.flush()
    return uploaded


async def close_transit_day(world: World, day: TransitDay) -> None:
    """Charge missing exits (journey time over by next morning), then record each card's
    daily collection for its issuing bank."""
    pricing = FarePricing(load_engine(None, shared_data=reference_data_dir()))
    transit_day = DAY_START.date()
    morning_utc = (DAY_START + dt.timedelta(hours=22)).astimezone(dt.timezone.utc)
    day.missing_exits_charged = await charge_missing_exits(world.pool, LedgerPosting(world.ledger), pricing,
                                                           morning_utc)
    collections = await close_day(world.pool, transit_day, current_day=transit_day + dt.timedelta(days=1))
    day.collections = {bank: len(items) for bank, items in collections.items()}


async def start_server(world: World) -> tuple[asyncio.subprocess.Process, str]:
    """``onecard serve`` on a free loopback port; the process and its base URL."""
    environment = os.environ | {"ONECARD_HOME": str(world.config.home),
                                "ONECARD_DATABASE_URL": world.database_url,
                                "ONECARD_REFERENCE_DATA": str(reference_data_dir())}
    workers = max(1, (os.cpu_count() or 1) - 1)
    server = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "engine.cli", "serve", "--host", "127.0.0.1", "--port", "0",
        "--workers", str(workers), "--shared-data", str(reference_data_dir()),
        env=environment, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        line = (await asyncio.wait_for(server.stdout.readline(), SERVER_START_TIMEOUT_S)).decode()
    except asyncio.TimeoutError:
        line = ""
    if not line.startswith("listening on http://"):
        server.kill()
        await server.wait()
        raise RuntimeError(f"onecard serve did not start: {line!r}")
    return server, line.split()[2]


async def stop_server(server: asyncio.subprocess.Process) -> None:
    """Stop the server (SIGTERM: it drains its tap batcher) and wait for it."""
    if server.returncode is None:
        server.terminate()
        await server.wait()
