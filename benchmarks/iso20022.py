"""Benchmark: pacs.008.001.08 instruction files for a large disbursement, built, validated
against the XSD and dropped atomically; then parsed back as a bank would.

    python -m benchmarks.iso20022 [--quick] [--transfers N]

Prints throughput, per-message latency percentiles, a same-run baseline (the same
messages rendered and written without XSD validation, to show what validation costs)
and ends with one line of key=value figures.
"""

from __future__ import annotations

import argparse
import datetime as dt
import resource
import statistics
import tempfile
import time

from adapters.delivery import FileDrop
from adapters.iso20022 import ids, pacs008

TRANSFERS_DEFAULT = 1_000_000
TRANSFERS_QUICK = 100_000
PARSED_MESSAGES = 3


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"{TRANSFERS_QUICK} transfers")
    parser.add_argument("--transfers", type=int, default=0)
    args = parser.parse_args(argv)
    count = args.transfers or (TRANSFERS_QUICK if args.quick else TRANSFERS_DEFAULT)
    header = pacs008.GroupHeader(
        created_at=dt.datetime.now(dt.timezone.utc), settlement_date=dt.date.today(),
        instructing_agent="ONECARD", instructed_agent="ICBC", debtor_name="Subsidy Fund",
        debtor_account="FUND-001")

    with tempfile.TemporaryDirectory(prefix="onecard-bench-") as directory:
        drop = FileDrop(directory)
        started = time.perf_counter()
        latencies_ms, sizes, messages = _run(header, count, drop)
        elapsed_s = time.perf_counter() - started

        baseline_s = _baseline(header, count, drop)

        sample = messages[:PARSED_MESSAGES]
        parse_started = time.perf_counter()
        parsed = sum(len(pacs008.parse(xml).transfers) for xml in sample)
        parse_s = time.perf_counter() - parse_started

    rate = count / elapsed_s
    baseline_rate = count / baseline_s
    parse_rate = parsed / parse_s if parse_s else 0.0
    p50, p99 = _percentiles(latencies_ms)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"pacs.008 build+validate+drop: {count} transfers in {elapsed_s:.2f} s = {rate:,.0f}/s "
          f"({len(latencies_ms)} messages, {sum(sizes) / count:.0f} bytes per transfer)")
    print(f"per message ({pacs008.TRANSACTIONS_PER_MESSAGE_MAX} transfers): "
          f"p50 {p50:.1f} ms, p99 {p99:.1f} ms")
    print(f"baseline without XSD validation: {baseline_rate:,.0f}/s "
          f"(validation costs {100 * (1 - baseline_s / elapsed_s):.0f}% of the time)")
    print(f"pacs.008 parse (bank side): {parse_rate:,.0f} transfers/s; peak RSS {rss_mb:.0f} MB")
    print(f"transfers={count} build_per_s={rate:.0f} baseline_per_s={baseline_rate:.0f} "
          f"message_p50_ms={p50:.1f} message_p99_ms={p99:.1f} parse_per_s={parse_rate:.0f} "
          f"elapsed_s={elapsed_s:.2f} peak_rss_mb={rss_mb:.0f}")
    return 0


def _transfers(count: int):
    for number in range(1, count + 1):
        yield pacs008.CreditTransfer(ids.end_to_end_id(number), 10_000 + number % 997, "CNY",
                                     "张三丰", f"6222{number:015d}", "2026-11 subsidy")


def _run(header, count, drop):
    latencies_ms, sizes, kept = [], [], []
    numbers = iter(range(1, 10**9))
    tick = time.perf_counter()
    for message in pacs008.iter_messages(
            header, _transfers(count),
            next_message_id=lambda: ids.message_id("P008", next(numbers))):
        drop.drop(f"{message.message_id}.xml", message.xml)
        sizes.append(len(message.xml))
        if len(kept) < PARSED_MESSAGES:
            kept.append(message.xml)
        now = time.perf_counter()
        latencies_ms.append((now - tick) * 1000)
        tick = now
    return latencies_ms, sizes, kept


def _baseline(header, count, drop) -> float:
    # The same rendering and file drop, with the XSD check switched off for this run only.
    original = pacs008._validate
    pacs008._validate = lambda xml: None
    try:
        started = time.perf_counter()
        numbers = iter(range(1, 10**9))
        for message in pacs008.iter_messages(
                header, _transfers(count),
                next_message_id=lambda: ids.message_id("PBAS", next(numbers))):
            drop.drop(f"{message.message_id}.xml", message.xml)
        return time.perf_counter() - started
    finally:
        pacs008._validate = original


def _percentiles(values: list[float]) -> tuple[float, float]:
    if len(values) < 2:
        return (values[0], values[0]) if values else (0.0, 0.0)
    cuts = statistics.quantiles(values, n=100)
    return cuts[49], cuts[98]


if __name__ == "__main__":
    raise SystemExit(main())
