"""Benchmark: read and validate a large disbursement batch CSV, streaming.

    python -m benchmarks.batch_validation [--quick] [--lines N] [--encoding gbk] [--keep DIR]

A synthetic GBK batch (``engine.synthetic``; 0.1% bad lines of every kind) is written by
a child process, so the generator's memory does not count; this process then runs, on
the same file:

- ``baseline``: ``csv.reader`` over the decoded file, nothing else (the floor);
- ``read``: encoding detection + header mapping + :class:`adapters.batch_file.BatchLine`;
- ``validate``: read + :class:`engine.disbursement.validation.BatchValidator`, the way the
  store runs it: lines in chunks of ``CHUNK_LINES``, the chunk's cardholders prefetched
  into a dict first. The prefetch here derives each synthetic cardholder with a keyed
  hash (in the engine: one database query per chunk); its time is shown apart
  (``prefetch``) and is not part of ``validate``.

Issue 6 allows 60 s and 500 MB for a 1,000,000-line batch validated, approved and
executed; validation should take a small part of that. Prints lines/s per stage,
per-chunk latency percentiles (µs per line) and peak RSS, and ends with one
``key=value`` line.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import itertools
import multiprocessing
import resource
import statistics
import tempfile
import time
from pathlib import Path

from adapters.batch_file import TabularBatchFile
from engine.disbursement.amount import format_minor
from engine.disbursement.resident_id import normalise_id
from engine.disbursement.results import LineResult
from engine.disbursement.validation import BatchValidator, ValidationContext, validate_source
from engine.synthetic import Population, batch_lines, write_batch_csv

LINES_FULL = 1_000_000
LINES_QUICK = 100_000
CHUNK_LINES = 10_000
BAD_SHARE_PER_KIND = 0.001
PER_PERSON_MAX_MINOR = 50_000
SEED = 2026
TODAY = datetime.date(2026, 1, 1)


def _generate(path: Path, lines: int, encoding: str) -> None:
    population = Population(SEED)
    bad = {kind: max(1, int(lines * BAD_SHARE_PER_KIND)) for kind in LineResult
           if kind not in (LineResult.ok, LineResult.already_paid_in_period)}
    write_batch_csv(path, batch_lines(population, lines, per_person_max_minor=PER_PERSON_MAX_MINOR, bad=bad),
                    encoding=encoding, totals="row")


def _timed(label: str, lines: int, run) -> float:
    """Run ``run`` once; print and return its wall-clock seconds."""
    started = time.perf_counter()
    run()
    seconds = time.perf_counter() - started
    print(f"{label:<9} {seconds:7.2f} s  {lines / seconds:>10,.0f} lines/s")
    return seconds


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark (see the module docstring); return the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"{LINES_QUICK:,} lines instead of {LINES_FULL:,}")
    parser.add_argument("--lines", type=int, help="number of lines (overrides --quick)")
    parser.add_argument("--encoding", default="gbk", help="file encoding (default gbk)")
    parser.add_argument("--keep", type=Path, help="folder to keep (and reuse) the generated file in")
    args = parser.parse_args(argv)
    lines = args.lines or (LINES_QUICK if args.quick else LINES_FULL)

    folder = args.keep or Path(tempfile.mkdtemp(prefix="onecard-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"batch-{SEED}-{lines}-{args.encoding}.csv"
    if not path.exists():
        started = time.perf_counter()
        child = multiprocessing.get_context("fork").Process(target=_generate, args=(path, lines, args.encoding))
        child.start()
        child.join()
        assert child.exitcode == 0, "generator failed"
        print(f"generated {path.name} ({path.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - started:.1f} s")

    population = Population(SEED)

    def lookup(id_number: str):
        person = population.lookup(id_number)
        return person.record(person.card_number) if person is not None else None

    def baseline() -> None:
        with open(path, encoding="gb18030" if args.encoding == "gbk" else args.encoding, newline="") as stream:
            for _row in csv.reader(stream):
                pass

    def read() -> None:
        for _line in TabularBatchFile(path).lines():
            pass

    chunk_us_per_line: list[float] = []
    prefetch_s = 0.0
    summary = None

    def validate() -> float:
        """Seconds spent reading and validating (prefetch excluded)."""
        nonlocal summary, prefetch_s
        source = TabularBatchFile(path)
        records: dict[str, object] = {}
        validator = BatchValidator(ValidationContext(records.get, lambda _: False, lambda pan: pan,
                                                     PER_PERSON_MAX_MINOR, TODAY))
        lines_iter = source.lines()
        engine_s = 0.0
        while True:
            started = time.perf_counter()
            chunk = list(itertools.islice(lines_iter, CHUNK_LINES))
            read_s = time.perf_counter() - started
            if not chunk:
                break
            started = time.perf_counter()
            records.clear()
            for line in chunk:
                id_number = normalise_id(line.id_number)
                try:
                    records[id_number] = lookup(id_number)
                except ValueError:
                    continue  # a damaged identity number; validation never looks it up
            prefetch_s += time.perf_counter() - started
            started = time.perf_counter()
            for line in chunk:
                validator.check(line)
            chunk_s = read_s + time.perf_counter() - started
            engine_s += chunk_s
            chunk_us_per_line.append(chunk_s / len(chunk) * 1e6)
        summary = validator.finish(source.declared_totals())
        return engine_s

    print(f"{lines:,} lines, {args.encoding}")
    baseline_s = _timed("baseline", lines, baseline)
    read_s = _timed("read", lines, read)
    validate_s = validate()
    print(f"validate  {validate_s:7.2f} s  {lines / validate_s:>10,.0f} lines/s (read included, prefetch not)")
    print(f"prefetch  {prefetch_s:7.2f} s  {lines / prefetch_s:>10,.0f} lines/s (synthetic registry, not engine)")
    assert summary is not None and summary.lines_count == lines
    quantiles = statistics.quantiles(chunk_us_per_line, n=100) if len(chunk_us_per_line) > 1 else chunk_us_per_line * 99
    p50, p99 = quantiles[49], quantiles[98]
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"per-line latency over {CHUNK_LINES:,}-line chunks: p50 {p50:.1f} µs, p99 {p99:.1f} µs")
    print(f"accepted {summary.accepted_count:,} lines, {format_minor(summary.accepted_minor)} yuan; "
          f"results {summary.results}")
    print(f"peak RSS {peak_rss_mb:.0f} MB")
    print(f"lines={lines} baseline_lines_per_s={lines / baseline_s:.0f} read_lines_per_s={lines / read_s:.0f} "
          f"validate_lines_per_s={lines / validate_s:.0f} "
          f"validate_s={validate_s:.2f} p50_us={p50:.1f} p99_us={p99:.1f} peak_rss_mb={peak_rss_mb:.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
