"""Tap hot-path benchmark: ``python -m benchmarks.taps [--quick]``.

What it measures: ``onecard serve`` (real processes, embedded PostgreSQL unless
``ONECARD_DATABASE_URL`` is set, soft key service) answering taps sent over loopback HTTP
by a load generator in a separate process. Every request is one tap, signed by its gate
(HMAC, fresh timestamp and nonce) as online gates send them; cryptograms are real
(cards emulated by :class:`terminal.card.Card` under a test issuer master key). Many
gates send at once, each its cards' entry/exit pairs on Chengdu Line 1 in time order.

The same taps are sent twice, each time to a fresh database: to the engine as built
(micro-batched flushes) and to the engine with batching off (``--no-batching``: one
database transaction per tap; with ``--quick`` only the first quarter of each gate's taps,
as that engine is an order of magnitude slower). Reported: taps/s and p50/p99/p99.9 latency per run, the
decisions seen (every tap is expected approved), and one final line::

    taps_per_s=... p50_ms=... p99_ms=... baseline_per_s=... ratio=...

Latency is measured by the generator from writing the request to reading the whole
answer, so it includes HTTP, signature checking, ARQC verification and the commit.

``--with-batch LINES`` adds a third run: before it, a disbursement batch of ``LINES``
lines is built as :mod:`benchmarks.batch` builds one (synthetic GBK file and registry
loaded by COPY, in a child process), then funded, validated, submitted and approved
through the functions the ``onecard programme``/``batch`` commands call; during it, a
process of its own executes the batch (:func:`engine.disbursement.execution.execute_batch`,
as ``onecard batch execute``) on the same database while the same taps are sent again.
That run reports the latency of the taps sent while the batch executed, and the final
line gains ``p99_ms_during_batch=... taps_per_s_during_batch=... batch_lines=...
batch_execute_s=... batch_overlap=...`` (the share of the batch's execution time during
which taps were sent; below 1 the tap run ended first).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import multiprocessing
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import msgspec

REPO = Path(__file__).resolve().parents[1]
IMK = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")  # a test key, never a programme key
SCHEME = "pboc-3des"
PAN_PREFIX = "621799"
T0 = datetime(2026, 11, 30, 10, 0, tzinfo=timezone(timedelta(hours=8)))
# Entry and exit stations on Chengdu Line 1 (exit fares 2-4 CNY, under the daily cap).
JOURNEYS = (("weijianian", "tianfuguangchang"), ("shengxianhu", "luomashi"),
            ("huochebeizhan", "wenshuyuan"), ("renminbeilu", "weijianian"))
SERVER_START_TIMEOUT_S = 120


@dataclass(frozen=True)
class Workload:
    """Taps per gate lane, in send order: ``lanes[i]`` is ``(gate_id, [JSON bodies])``."""

    lanes: list[tuple[str, list[bytes]]]
    pans: list[str]

    @property
    def taps(self) -> int:
        return sum(len(bodies) for _, bodies in self.lanes)

    def head(self, share: int) -> "Workload":
        """The first ``1/share`` of every lane (each card's earliest taps, still in order)."""
        return Workload([(gate_id, bodies[:len(bodies) // share]) for gate_id, bodies in self.lanes],
                        self.pans)


@dataclass(frozen=True)
class RunResult:
    taps: int
    elapsed_s: float
    latencies_s: list[float]
    outcomes: dict[str, int]
    generator_cpu_s: float
    engine_cpu_s: float = 0.0
    database_cpu_s: float = 0.0
    # When each tap was sent (time.monotonic(): one clock for every process on the machine).
    sent_at_s: list[float] = field(default_factory=list)

    def cpu_us_per_tap(self, cpu_s: float) -> float:
        return cpu_s / self.taps * 1e6

    @property
    def taps_per_s(self) -> float:
        return self.taps / self.elapsed_s

    def percentile_ms(self, fraction: float) -> float:
        ordered = sorted(self.latencies_s)
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] * 1000

    def between(self, start_s: float, end_s: float) -> "RunResult":
        """The taps sent from ``start_s`` to ``end_s`` (monotonic clock), as a run of that
        length; ``elapsed_s`` is the part of the window the run was sending in."""
        kept = [(sent, latency) for sent, latency in zip(self.sent_at_s, self.latencies_s)
                if start_s <= sent <= end_s]
        if not kept:
            return RunResult(0, 0.0, [], {}, 0.0)
        sending_from = max(start_s, min(self.sent_at_s))
        sending_to = min(end_s, max(sent + latency for sent, latency in zip(self.sent_at_s, self.latencies_s)))
        return RunResult(len(kept), sending_to - sending_from, [latency for _, latency in kept], {}, 0.0,
                         sent_at_s=[sent for sent, _ in kept])


def pan(serial: int) -> str:
    from stdnum import luhn

    body = f"{PAN_PREFIX}{serial:012d}"
    return body + luhn.calc_check_digit(body)


def build_workload(cards: int, gates: int, rounds: int) -> Workload:
    """``cards`` cards spread over ``gates`` lanes; each card taps ``rounds`` times
    (entry, exit, entry, ...), 15 minutes apart, read from its emulated card."""
    from terminal.card import Card
    from terminal.reader import read_tap

    assert rounds % 2 == 0 and gates >= 1 and cards >= gates
    pans = [pan(serial) for serial in range(cards)]
    emulated = [Card.issue(SCHEME, IMK, number, "01") for number in pans]
    lanes: list[tuple[str, list[bytes]]] = [(f"gate-{lane}", []) for lane in range(gates)]
    for round_number in range(rounds):
        direction = "entry" if round_number % 2 == 0 else "exit"
        for serial, card in enumerate(emulated):
            gate_id, bodies = lanes[serial % gates]
            entry, exit_ = JOURNEYS[(serial + round_number // 2) % len(JOURNEYS)]
            tap = read_tap(card.transmit, amount=0, tap_id=f"c{serial}-r{round_number}",
                           gate_id=gate_id, station=entry if direction == "entry" else exit_,
                           direction=direction,
                           local_time=T0 + timedelta(minutes=15 * round_number, seconds=serial % 600))
            bodies.append(msgspec.json.encode(tap))
    return Workload(lanes, pans)


# -- setting up a database and key store ---------------------------------------------------

async def init_keys(home: Path) -> None:
    from hsm.service import open_key_service
    from hsm.soft import SoftKeyService
    from engine.config import Config

    SoftKeyService.init(home / "keys")
    service = open_key_service(Config(home=home, database_url=None), backend="soft")
    try:
        await service.import_key("imk-bench", "imk-ac", "3des", IMK, SCHEME)
        await service.generate_key("pan-token", "pan-token")
        await service.generate_key("field-enc", "field-enc")
        # Disbursement batches (--with-batch) hash identity numbers under this key.
        await service.generate_key("cardholder-id-hash", "bank-mac")
    finally:
        await service.close()


async def provision(server_url: str, database: str, home: Path, workload: Workload) -> tuple[str, dict[str, bytes]]:
    """A fresh migrated database with the issuer, gates and cards; its URL and gate secrets."""
    import asyncpg

    from engine.config import Config
    from engine.taps import store
    from engine.taps.devices import DeviceRegistry
    from engine.settlement import registry
    from engine.taps.enrolment import enrol_card
    from hsm.service import open_key_service
    from ledger import db
    from ledger.ids import new_id
    from ledger.service import Ledger
    from urllib.parse import urlsplit, urlunsplit

    admin = await asyncpg.connect(server_url)
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {database}")
        await admin.execute(f"CREATE DATABASE {database}")
    finally:
        await admin.close()
    url = urlunsplit(urlsplit(server_url)._replace(path=f"/{database}"))
    pool = await db.open_database(Config(home=home, database_url=url), size_max=4)
    key_service = open_key_service(Config(home=home, database_url=url), backend="soft")
    try:
        ledger = Ledger(pool)
        await registry.add_bank(pool, ledger, "BENCHBANK", "Benchmark bank")
        operator = await registry.add_operator(pool, ledger, "metro", "BENCHBANK")
        async with pool.acquire() as connection:
            await store.add_issuer(connection, store.Issuer(PAN_PREFIX, "BENCHBANK", "imk-bench"))
        devices = DeviceRegistry(pool, sealer=key_service)
        secrets = {gate_id: await devices.add(gate_id, "gate", network_id="metro",
                                              operator_account_id=operator)
                   for gate_id, _ in workload.lanes}
        for number in workload.pans:
            await enrol_card(pool, ledger, key_service, pan=number, account_id=new_id(),
                             bank_code="BENCHBANK")
    finally:
        await key_service.close()
        await pool.close()
    return url, secrets


# -- a disbursement batch executing meanwhile (--with-batch) ----------------------------------

BATCH_PROGRAMME = "BENCHTAPS"
BATCH_PERIOD = "2026-11"


def prepare_batch(url: str, home: Path, lines: int) -> int:
    """An APPROVED batch of ``lines`` lines in the database at ``url``; its id.

    The file and the registry are built as :mod:`benchmarks.batch` builds them (in a child
    process); the rest goes through what ``onecard programme create|fund`` and ``onecard
    batch submit|approve`` call, so a change inside batch execution needs no change here.
    """
    from benchmarks.batch import _setup

    started = time.perf_counter()
    batch_path, cardholders_path = home / "batch.csv", home / "cardholders.csv"
    child = multiprocessing.get_context("spawn").Process(
        target=_setup, args=(url, home / "keys", batch_path, cardholders_path, lines))
    child.start()
    child.join()
    if child.exitcode != 0:
        raise RuntimeError("building the batch file and registry failed")
    print(f"batch: {lines} lines generated, registry loaded in {time.perf_counter() - started:.1f} s", flush=True)
    started = time.perf_counter()
    batch_id, accepted = asyncio.run(_submit_batch(url, home, lines))
    print(f"batch: {batch_id} funded, validated, submitted and approved in {time.perf_counter() - started:.1f} s "
          f"({accepted} lines accepted)", flush=True)
    return batch_id


async def _submit_batch(url: str, home: Path, lines: int) -> tuple[int, int]:
    from adapters.batch_file import open_batch_file
    from benchmarks.batch import FUNDING_BANK, PER_PERSON_MAX_MINOR, TODAY
    from engine.config import Config
    from engine.disbursement.execution import fund_programme
    from engine.disbursement.lines import LineSpool
    from engine.disbursement.store import open_store
    from engine.settlement import registry
    from ledger.service import Ledger

    async with open_store(Config(home=home, database_url=url)) as store:
        ledger = Ledger(store.pool)
        async with store.pool.acquire() as connection:
            banks = [row["bank_code"] for row in await connection.fetch(
                "SELECT DISTINCT bank_code FROM disbursement_cardholders")]
        for code in [*banks, FUNDING_BANK]:
            await registry.add_bank(store.pool, ledger, code, code, delivery="file",
                                    endpoint=str(home / "banks" / code))
        programme, _ = await store.create_programme(BATCH_PROGRAMME, "subsidy", "tap benchmark subsidy",
                                                    PER_PERSON_MAX_MINOR)
        await fund_programme(store, ledger, BATCH_PROGRAMME, lines * PER_PERSON_MAX_MINOR, bank_code=FUNDING_BANK)
        spool = LineSpool()
        try:
            summary = await store.validate(open_batch_file(home / "batch.csv"), programme, BATCH_PERIOD, TODAY,
                                           lambda _: None, spool)
            batch = await store.submit(BATCH_PROGRAMME, BATCH_PERIOD, "maker", summary, _now_ms(), spool)
        finally:
            spool.close()
        await store.approve(batch.id, "checker", batch.content_sha256, _now_ms())
    return batch.id, batch.accepted_count


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def execute_batch_process(home: Path, url: str, batch_id: int, results) -> None:
    """Process entry: execute the batch as ``onecard batch execute`` does; put
    ``(started_s, finished_s, lines)`` (monotonic clock) on ``results``."""
    import uvloop

    results.put(uvloop.run(_execute_batch(home, url, batch_id)))


async def _execute_batch(home: Path, url: str, batch_id: int) -> tuple[float, float, int]:
    from engine.config import Config
    from engine.disbursement.execution import execute_batch
    from engine.disbursement.store import open_store
    from ledger.service import Ledger

    async with open_store(Config(home=home, database_url=url)) as store:
        started_s = time.monotonic()
        done = await execute_batch(store, Ledger(store.pool), batch_id, "checker", _now_ms())
        return started_s, time.monotonic(), done.lines


# -- the server ------------------------------------------------------------------------------

def start_server(home: Path, url: str, workers: int, batching: bool) -> tuple[subprocess.Popen, str, int]:
    command = [sys.executable, "-m", "engine.cli", "serve", "--host", "127.0.0.1", "--port", "0",
               "--workers", str(workers)] + ([] if batching else ["--no-batching"])
    environment = os.environ | {"ONECARD_HOME": str(home), "ONECARD_DATABASE_URL": url}
    server = subprocess.Popen(command, cwd=REPO, env=environment, stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True)
    line = server.stdout.readline()
    if not line.startswith("listening on http://"):
        server.kill()
        raise RuntimeError(f"server did not start: {line!r}")
    host, port = line.split()[2].removeprefix("http://").rsplit(":", 1)
    return server, host, int(port)


def stop_server(server: subprocess.Popen) -> None:
    server.send_signal(signal.SIGTERM)
    server.wait(timeout=60)


# -- the load generator (its own process) ------------------------------------------------------

def generate_load(host: str, port: int, lanes, secrets, results) -> None:
    """Process entry: send every lane's taps, one request at a time per lane."""
    import uvloop

    results.put(uvloop.run(_load(host, port, lanes, secrets)))


async def _load(host: str, port: int, lanes, secrets) -> RunResult:
    latencies: list[float] = []
    sent_at_s: list[float] = []
    outcomes: Counter[str] = Counter()
    started, cpu_started = time.perf_counter(), time.process_time()
    await asyncio.gather(*(_lane(host, port, gate_id, secrets[gate_id], bodies, latencies, outcomes, sent_at_s)
                           for gate_id, bodies in lanes))
    elapsed = time.perf_counter() - started
    return RunResult(len(latencies), elapsed, latencies, dict(outcomes),
                     generator_cpu_s=time.process_time() - cpu_started, sent_at_s=sent_at_s)


_answer_decoder = msgspec.json.Decoder()


async def _lane(host, port, gate_id, secret, bodies, latencies, outcomes, sent_at_s) -> None:
    from adapters.signing import sign

    reader, writer = await asyncio.open_connection(host, port)
    try:
        for body in bodies:
            headers = sign(secret, "POST", "/v1/taps", body, key_id=gate_id)
            request = (b"POST /v1/taps HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
                       + f"Content-Length: {len(body)}\r\n".encode()
                       + "".join(f"{name}: {value}\r\n" for name, value in headers.items()).encode()
                       + b"\r\n" + body)
            sent_at_s.append(time.monotonic())
            sent = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            payload = await reader.readexactly(length)
            latencies.append(time.perf_counter() - sent)
            status = head[9:12].decode()
            answer = _answer_decoder.decode(payload) if status == "200" else {}
            outcomes[answer.get("reason", f"http_{status}")] += 1
    finally:
        writer.close()


def run_load(host: str, port: int, workload: Workload, secrets: dict[str, bytes],
             engine_pid: int, database_pid: int | None,
             batch: tuple[Path, str, int] | None = None) -> tuple[RunResult, tuple[float, float, int] | None]:
    """Send ``workload``; the result includes the CPU time the engine's and the database's
    process trees spent meanwhile (the generator's own is measured inside it).

    ``batch`` = ``(home, url, batch_id)``: execute that batch in a process of its own once
    the generator runs; its ``(started_s, finished_s, lines)`` are returned too.
    """
    context = multiprocessing.get_context("spawn")
    results, batch_results = context.Queue(), context.Queue()
    process = context.Process(target=generate_load, args=(host, port, workload.lanes, secrets, results))
    process.start()
    engine_cpu_s, database_cpu_s = tree_cpu_s(engine_pid), tree_cpu_s(database_pid)
    executor = None
    if batch is not None:
        executor = context.Process(target=execute_batch_process, args=(*batch, batch_results))
        executor.start()
    result = results.get()
    process.join()
    result = dataclasses.replace(result, engine_cpu_s=tree_cpu_s(engine_pid) - engine_cpu_s,
                                 database_cpu_s=tree_cpu_s(database_pid) - database_cpu_s)
    if executor is None:
        return result, None
    executed = batch_results.get()
    executor.join()
    return result, executed


def tree_cpu_s(root_pid: int | None) -> float:
    """User + system CPU seconds of ``root_pid`` and its descendants (Linux ``/proc``),
    counting children they reaped; 0 without ``/proc`` or ``root_pid``."""
    if root_pid is None or not os.path.exists(f"/proc/{root_pid}/stat"):
        return 0.0
    stats: dict[int, tuple[int, list[str]]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                text = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue  # exited meanwhile
            fields = text[text.rindex(")") + 2:].split()
            stats[int(entry)] = (int(fields[1]), fields)
    children: dict[int, list[int]] = {}
    for pid, (parent, _) in stats.items():
        children.setdefault(parent, []).append(pid)
    ticks, pending = 0, [root_pid]
    while pending:
        pid = pending.pop()
        if pid in stats:
            # utime, stime, cutime, cstime: fields 14-17 of stat(5), here from field 3 on.
            ticks += sum(int(value) for value in stats[pid][1][11:15])
            pending.extend(children.get(pid, ()))
    return ticks / os.sysconf("SC_CLK_TCK")


async def database_server_pid(url: str) -> int | None:
    """The PostgreSQL postmaster's pid when it runs on this machine, else ``None``."""
    import asyncpg

    connection = await asyncpg.connect(url)
    try:
        # Read while the connection is open: its backend process exits when it closes.
        status = Path(f"/proc/{await connection.fetchval('SELECT pg_backend_pid()')}/status")
        lines = status.read_text().splitlines()
    except OSError:
        return None
    finally:
        await connection.close()
    if lines[0].split()[1:] != ["postgres"]:
        return None  # a remote server: a local process just happens to have that pid
    return int(next(line.split()[1] for line in lines if line.startswith("PPid:")))


# -- main ------------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.taps", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small run (under a minute)")
    # One worker per core: the generator needs a tenth of the engine's CPU per tap, and a
    # single worker leaves a core idle whenever the generator and the database wait.
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2,
                        help="engine worker processes (default: one per core)")
    parser.add_argument("--gates", type=int, default=None, help="concurrent gates (connections)")
    parser.add_argument("--cards", type=int, default=None)
    parser.add_argument("--rounds", type=int, default=8, help="taps per card (even)")
    parser.add_argument("--with-batch", type=int, default=0, metavar="LINES",
                        help="also measure the taps while a disbursement batch of LINES lines executes "
                             "(e.g. 100000)")
    args = parser.parse_args(argv)
    if args.with_batch < 0:
        parser.error("--with-batch: must be a number of lines")
    gates = args.gates or 128
    cards = args.cards or (1024 if args.quick else 4000)
    # The unbatched engine is an order of magnitude slower; in a quick run it gets the first
    # quarter of every gate's taps (each card's first entry and exit), enough for a rate.
    baseline_share = 4 if args.quick else 1

    with tempfile.TemporaryDirectory(prefix="onecard-bench-") as folder:
        home = Path(folder)
        asyncio.run(init_keys(home))
        from engine.config import Config
        from ledger import db

        server_url = os.environ.get("ONECARD_DATABASE_URL", "").strip() or db.database_url(
            Config(home=home, database_url=None))
        print(f"generating {cards * args.rounds} taps ({cards} cards, {gates} gates) ...", flush=True)
        workload = build_workload(cards, gates, args.rounds)
        results: dict[str, RunResult] = {}
        executed: tuple[float, float, int] | None = None
        modes = [("batched", True), ("unbatched", False)] + ([("with_batch", True)] if args.with_batch else [])
        try:
            for mode, batching in modes:
                url, secrets = asyncio.run(provision(server_url, f"onecard_bench_{mode}", home, workload))
                batch = None
                if mode == "with_batch":
                    batch = (home, url, prepare_batch(url, home, args.with_batch))
                server, host, port = start_server(home, url, args.workers, batching)
                try:
                    share = 1 if batching else baseline_share
                    results[mode], ran = run_load(host, port, workload.head(share), secrets,
                                                  server.pid, asyncio.run(database_server_pid(url)), batch)
                    executed = ran or executed
                finally:
                    stop_server(server)
                _report(mode, results[mode])
        finally:
            if not os.environ.get("ONECARD_DATABASE_URL"):
                db.stop_embedded(home)
    built, baseline = results["batched"], results["unbatched"]
    ratio = built.taps_per_s / baseline.taps_per_s
    line = (f"taps_per_s={built.taps_per_s:.0f} p50_ms={built.percentile_ms(0.5):.2f} "
            f"p99_ms={built.percentile_ms(0.99):.2f} baseline_per_s={baseline.taps_per_s:.0f} "
            f"ratio={ratio:.2f}")
    if executed is not None:
        line += " " + _report_batch(results["with_batch"], executed)
    print(line)
    return 0


def _report_batch(result: RunResult, executed: tuple[float, float, int]) -> str:
    """Print the taps sent while the batch executed; return the final line's batch figures."""
    started_s, finished_s, lines = executed
    during = result.between(started_s, finished_s)
    execute_s = finished_s - started_s
    overlap = during.elapsed_s / execute_s if execute_s > 0 else 0.0
    if not during.taps:
        print(f"{'':>9}  batch of {lines} lines executed in {execute_s:.1f} s, after the taps ended", flush=True)
        return f"p99_ms_during_batch=nan taps_per_s_during_batch=0 batch_lines={lines} " \
               f"batch_execute_s={execute_s:.1f} batch_overlap=0.00"
    print(f"{'':>9}  batch of {lines} lines executed in {execute_s:.1f} s ({lines / execute_s:.0f} lines/s); "
          f"taps sent meanwhile ({overlap:.0%} of it): {during.taps} at {during.taps_per_s:.0f} taps/s, "
          f"p50 {during.percentile_ms(0.5):.2f} ms, p99 {during.percentile_ms(0.99):.2f} ms, "
          f"p99.9 {during.percentile_ms(0.999):.2f} ms", flush=True)
    return (f"p99_ms_during_batch={during.percentile_ms(0.99):.2f} "
            f"taps_per_s_during_batch={during.taps_per_s:.0f} batch_lines={lines} "
            f"batch_execute_s={execute_s:.1f} batch_overlap={overlap:.2f}")


def _report(mode: str, result: RunResult) -> None:
    outcomes = ", ".join(f"{name} {count}" for name, count in sorted(result.outcomes.items()))
    print(f"{mode:>9}: {result.taps} taps in {result.elapsed_s:.2f} s = {result.taps_per_s:.0f} taps/s; "
          f"p50 {result.percentile_ms(0.5):.2f} ms, p99 {result.percentile_ms(0.99):.2f} ms, "
          f"p99.9 {result.percentile_ms(0.999):.2f} ms; {outcomes}", flush=True)
    print(f"{'':>9}  CPU per tap: engine {result.cpu_us_per_tap(result.engine_cpu_s):.0f} us, "
          f"database {result.cpu_us_per_tap(result.database_cpu_s):.0f} us, "
          f"generator {result.cpu_us_per_tap(result.generator_cpu_s):.0f} us", flush=True)


if __name__ == "__main__":
    sys.exit(main())
