"""How fast a settlement cycle closes, and what closing costs the tap path.

    python -m benchmarks.settlement_close [--quick]

On a fresh embedded PostgreSQL (a temporary folder), with three banks, one operator and
1,000 cards:

- ``close``: closing a cycle of N fares (N = 200,000; 20,000 with ``--quick``): cut,
  positions by bank, history, next cycle; reported as ms and transfers/s;
- ``baseline``: the same run's plain scan of those transfers (``sum(amount)`` over the
  timestamp range, no attribution join): the close's overhead is the gap;
- ``tap commits``: latency of single-fare commits while closes run back to back, and
  without closes (baseline), p50/p99 ms: closing takes no lock the tap path waits for;
- ``payouts``: payouts posted with their pacs.008 in the outbox, per second (1,000 per
  transaction).

The last line is ``close_ms=... close_transfers_per_s=... scan_ms=...
tap_p50_ms=... tap_p99_ms=... tap_p50_ms_idle=... tap_p99_ms_idle=... payouts_per_s=...``.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from engine.settlement import registry
from engine.settlement.cycles import Cycles
from engine.settlement.outbox import Payout, post_payouts
from ledger import db
from ledger.ids import new_id
from ledger.limits import BATCH_MAX
from ledger.service import Ledger
from ledger.types import Account, Transfer

CARDS = 1_000
FARE_CODE = 210


def _percentiles(values_ms: list[float]) -> tuple[float, float]:
    quantiles = statistics.quantiles(values_ms, n=100)
    return quantiles[49], quantiles[98]


async def _world(pool, ledger):
    for code in ("BOC", "CCB", "ICBC"):
        await registry.add_bank(pool, ledger, code, code)
    operator = await registry.add_operator(pool, ledger, "metro", "BOC")
    payer = await registry.add_payer(pool, ledger, "fund", "CCB")
    cards = [new_id() for _ in range(CARDS)]
    await ledger.create_accounts([Account(id=card, ledger=registry.LEDGER_CNY, code=110) for card in cards])
    async with pool.acquire() as connection:
        await registry.attribute_accounts(connection, [(card, "ICBC", "card") for card in cards])
    banks = {bank.bank_code: bank async for bank in _banks(pool)}
    await ledger.create_transfers([Transfer(id=new_id(), debit_account_id=banks["CCB"].settlement_account_id,
                                            credit_account_id=payer, amount=10**15, ledger=registry.LEDGER_CNY, code=1)])
    return operator, payer, cards


async def _banks(pool):
    async with pool.acquire() as connection:
        for bank in await registry.list_banks(connection):
            yield bank


def _fares(cards, operator, count):
    return [Transfer(id=new_id(), debit_account_id=cards[n % len(cards)], credit_account_id=operator,
                     amount=200 + n % 500, ledger=registry.LEDGER_CNY, code=FARE_CODE) for n in range(count)]


async def _tap_latencies(ledger, cards, operator, stop: asyncio.Event, count_max: int) -> list[float]:
    latencies = []
    while not stop.is_set() and len(latencies) < count_max:
        started = time.perf_counter()
        await ledger.create_transfers(_fares(cards, operator, 1))
        latencies.append((time.perf_counter() - started) * 1000)
    return latencies


async def run(quick: bool) -> str:
    fares_total = 20_000 if quick else 200_000
    home = Path(tempfile.mkdtemp(prefix="onecard-bench-"))
    url = db.embedded_url(home)
    pool = await db.create_pool(url, size_max=8)
    try:
        async with pool.acquire() as connection:
            await db.migrate(connection)
        ledger = Ledger(pool)
        cycles = Cycles(pool, ledger)
        operator, payer, cards = await _world(pool, ledger)
        for start in range(0, fares_total, BATCH_MAX):
            await ledger.create_transfers(_fares(cards, operator, min(BATCH_MAX, fares_total - start)))

        started = time.perf_counter()
        closed = await cycles.close()
        close_ms = (time.perf_counter() - started) * 1000
        assert closed.transfer_count >= fares_total
        async with pool.acquire() as connection:
            started = time.perf_counter()
            await connection.fetchval("SELECT sum(amount) FROM ledger_transfers WHERE timestamp > $1 AND timestamp <= $2",
                                      closed.timestamp_after, closed.timestamp_last)
            scan_ms = (time.perf_counter() - started) * 1000
        print(f"close: {close_ms:.0f} ms for {closed.transfer_count} transfers "
              f"({closed.transfer_count / close_ms * 1000:.0f}/s); baseline scan {scan_ms:.0f} ms")

        taps = 200 if quick else 1_000
        idle = await _tap_latencies(ledger, cards, operator, asyncio.Event(), taps)
        stop = asyncio.Event()

        async def closer():
            while not stop.is_set():
                await cycles.close()

        closing = asyncio.ensure_future(closer())
        busy = await _tap_latencies(ledger, cards, operator, stop, taps)
        stop.set()
        await closing
        p50, p99 = _percentiles(busy)
        p50_idle, p99_idle = _percentiles(idle)
        print(f"tap commits during closes: p50 {p50:.2f} ms p99 {p99:.2f} ms; "
              f"idle baseline p50 {p50_idle:.2f} ms p99 {p99_idle:.2f} ms")

        payouts_total = 2_000 if quick else 10_000
        started = time.perf_counter()
        for start in range(0, payouts_total, 1_000):
            payouts = [Payout(new_id(), payer, cards[n % CARDS], 1_000, "ICBC", f"Person {n}", f"6222{n:012d}",
                              "Fund") for n in range(start, start + 1_000)]
            async with pool.acquire() as connection, connection.transaction():
                await post_payouts(connection, ledger, payouts)
        payouts_per_s = payouts_total / (time.perf_counter() - started)
        print(f"payouts with outbox instructions: {payouts_per_s:.0f}/s")
    finally:
        await pool.close()
        db.stop_embedded(home)
        shutil.rmtree(home, ignore_errors=True)
    return (f"close_ms={close_ms:.0f} close_transfers_per_s={closed.transfer_count / close_ms * 1000:.0f} "
            f"scan_ms={scan_ms:.0f} tap_p50_ms={p50:.2f} tap_p99_ms={p99:.2f} tap_p50_ms_idle={p50_idle:.2f} "
            f"tap_p99_ms_idle={p99_idle:.2f} payouts_per_s={payouts_per_s:.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, under a minute")
    print(asyncio.run(run(parser.parse_args().quick)))


if __name__ == "__main__":
    main()
