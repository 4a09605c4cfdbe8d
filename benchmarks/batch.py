"""Benchmark: a disbursement batch from CSV file to pacs.008 files, on a real PostgreSQL.

    python -m benchmarks.batch [--quick] [--lines N] [--keep DIR]

On a fresh embedded PostgreSQL (temporary folder) with the soft key service, a child
process writes a synthetic GBK batch (``engine.synthetic``, 0.1% bad lines of each kind)
and its registry, and loads the registry (COPY; tokens and hashes from the key service);
its memory does not count. Once the banks are registered, the registry's card accounts
are opened as ``onecard cardholders import`` opens them
(:func:`engine.disbursement.execution.open_registered_card_accounts`; timed apart). Then
this process runs issue 6's flow and times each stage:

- ``baseline``: ``csv.reader`` over the decoded file (the floor of any reader);
- ``submit``: read, validate against the registry (chunked prefetch), spool and store the
  lines (:meth:`DisbursementStore.validate` / :meth:`~DisbursementStore.submit`);
- ``approve``: maker-checker approval bound to the content hash;
- ``execute``: move the batch total to its escrow (one transfer), post every accepted line
  from there and write each issuing bank's pacs.008 to the outbox
  (:func:`engine.disbursement.execution.execute_batch`);
- ``deliver``: the outbox dispatcher drops every pacs.008 as a file into the bank's folder.

Issue 6's target for 1,000,000 lines: validated, approved and executed in <= 60 s with
<= 500 MB peak RSS on 2 cores. Prints lines/s per stage and peak RSS (``ru_maxrss`` of this
process; during submit also this process's plus the batch file reader's, which reads and
prepares a large file in a child process, :mod:`engine.disbursement.reading`), the CPU per line of submit and execute (this process's, all
threads, and its children's, and its PostgreSQL server's: figures that a shared, busy
machine disturbs less than wall times), and ends with one ``key=value`` line.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import datetime
import itertools
import multiprocessing
import os
import resource
import shutil
import tempfile
import threading
import time
from pathlib import Path

import asyncpg

from adapters.batch_file import open_batch_file
from benchmarks.ledger import server_cpu_delta_s, server_cpu_s, server_pids
from adapters.delivery import FileDrop
from engine.disbursement.execution import execute_batch, fund_programme, open_registered_card_accounts
from engine.disbursement.lines import LineSpool
from engine.disbursement.results import LineResult
from engine.disbursement.store import FIELD_KEY, ID_HASH_KEY, PAN_TOKEN_KEY, DisbursementStore
from engine.settlement import registry
from engine.settlement.outbox import Dispatcher, FileTransport
from engine.synthetic import Population, batch_lines, write_batch_csv, write_cardholders_csv
from hsm.soft import SoftKeyService
from ledger import db
from ledger.service import Ledger

LINES_FULL = 1_000_000
LINES_QUICK = 50_000
BAD_SHARE_PER_KIND = 0.001
PER_PERSON_MAX_MINOR = 50_000
REGISTRY_CHUNK = 5_000
SEED = 2026
TODAY = datetime.date(2026, 1, 1)
FUNDING_BANK = "FUNDBANK"
POOL_SIZE_MAX = 4
TREE_RSS_SAMPLE_S = 0.05
STATUS_VALUES = {"正常": "active", "挂失": "lost", "注销": "closed"}


def _generate(batch_path: Path, cardholders_path: Path, lines: int) -> None:
    population = Population(SEED)
    bad = {kind: max(1, int(lines * BAD_SHARE_PER_KIND)) for kind in LineResult
           if kind not in (LineResult.ok, LineResult.already_paid_in_period)}
    drawn: list = []
    write_batch_csv(batch_path, batch_lines(population, lines, per_person_max_minor=PER_PERSON_MAX_MINOR, bad=bad,
                                            drawn=drawn), encoding="gbk", totals="row")
    write_cardholders_csv(cardholders_path, drawn)


async def _load_registry(url: str, keys_folder: Path, cardholders_path: Path) -> None:
    """COPY the registry (the import path, one row at a time, is not what is measured)."""
    keys = SoftKeyService.open(keys_folder)
    pool = await db.create_pool(url, size_max=2)
    seen: set[str] = set()
    try:
        with open(cardholders_path, encoding="utf-8", newline="") as stream:
            rows = csv.reader(stream)
            next(rows)
            while chunk := list(itertools.islice(rows, REGISTRY_CHUNK)):
                records = []
                for id_number, name, card_number, status, _categories in chunk:
                    if id_number in seen:
                        continue
                    seen.add(id_number)
                    id_hash = await keys.generate_mac(ID_HASH_KEY, id_number.encode("ascii"))
                    sealed = await keys.encrypt_field(id_number.encode("ascii"),
                                                      b"disbursement_cardholders.id_number:" + id_hash)
                    token = await keys.tokenize_pan(card_number, PAN_TOKEN_KEY)
                    bank_code = _bank_of(card_number)
                    records.append((id_hash, sealed, name, token, card_number[-4:], bank_code,
                                    STATUS_VALUES[status], []))
                async with pool.acquire() as connection:
                    await connection.copy_records_to_table(
                        "disbursement_cardholders", records=records,
                        columns=("id_hash", "id_sealed", "name", "pan_token", "pan_last4",
                                 "bank_code", "status", "categories"))
    finally:
        await pool.close()
        await keys.close()


_BINS = None


def _bank_of(card_number: str) -> str:
    global _BINS
    if _BINS is None:
        from engine.disbursement.bank_card import BinTable
        _BINS = BinTable.load()
    return _BINS.lookup(card_number).bank_code


def _setup(url: str, keys_folder: Path, batch_path: Path, cardholders_path: Path, lines: int) -> None:
    _generate(batch_path, cardholders_path, lines)
    asyncio.run(_load_registry(url, keys_folder, cardholders_path))


def _baseline(path: Path) -> None:
    with open(path, encoding="gb18030", newline="") as stream:
        for _row in csv.reader(stream):
            pass


class _Cpu:
    """CPU seconds a stage used: this process's (``time.process_time``, every thread) and
    its children's that ended during the stage (the batch file's reader,
    :mod:`engine.disbursement.reading`), and its PostgreSQL server's (``benchmarks.ledger.server_cpu_s``:
    the pool's backends, all opened beforehand so none is missed, and the background
    processes)."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self.python_s = self.children_s = self.server_s = 0.0

    async def __aenter__(self) -> _Cpu:
        held = [await self._pool.acquire() for _ in range(POOL_SIZE_MAX)]
        self._pids = await server_pids(held[0])
        for connection in held:
            await self._pool.release(connection)
        self._main, self._children = time.process_time(), _children_cpu_s()
        self._server = server_cpu_s(self._pids)
        return self

    async def __aexit__(self, *_exc) -> None:
        self.children_s = _children_cpu_s() - self._children
        self.python_s = time.process_time() - self._main + self.children_s
        self.server_s = server_cpu_delta_s(self._server, server_cpu_s(self._pids)) or 0.0


class _TreeRss:
    """Peak resident memory of this process plus its child processes (the batch file's
    reader, :mod:`engine.disbursement.reading`), sampled from ``/proc`` every
    ``TREE_RSS_SAMPLE_S`` by a thread while the block runs (Linux; 0 elsewhere)."""

    def __init__(self) -> None:
        self.peak_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> _TreeRss:
        self._thread.start()
        return self

    def __exit__(self, *_exc) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(TREE_RSS_SAMPLE_S):
            pids = [str(os.getpid())]
            for children in Path("/proc/self/task").glob("*/children"):
                with contextlib.suppress(OSError):
                    pids += children.read_text().split()
            self.peak_mb = max(self.peak_mb, sum(_rss_kb(pid) for pid in pids) / 1024)


def _rss_kb(pid: str) -> int:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def run(lines: int, folder: Path) -> str:
    home = folder / "home"
    url = db.embedded_url(home)
    keys_folder = folder / "keys"
    SoftKeyService.init(keys_folder)
    keys = SoftKeyService.open(keys_folder)
    for label, kind in ((ID_HASH_KEY, "bank-mac"), (PAN_TOKEN_KEY, "pan-token"), (FIELD_KEY, "field-enc")):
        await keys.generate_key(label, kind)
    pool = await db.create_pool(url, size_max=POOL_SIZE_MAX)
    try:
        async with pool.acquire() as connection:
            await db.migrate(connection)
        batch_path, cardholders_path = folder / "batch.csv", folder / "cardholders.csv"
        started = time.perf_counter()
        child = multiprocessing.get_context("fork").Process(
            target=_setup, args=(url, keys_folder, batch_path, cardholders_path, lines))
        child.start()
        await asyncio.to_thread(child.join)
        assert child.exitcode == 0, "setup failed"
        print(f"setup (generate {batch_path.stat().st_size / 1e6:.0f} MB file, load registry): "
              f"{time.perf_counter() - started:.1f} s")

        ledger = Ledger(pool)
        drops = folder / "banks"
        async with pool.acquire() as connection:
            bank_codes = [r["bank_code"] for r in await connection.fetch(
                "SELECT DISTINCT bank_code FROM disbursement_cardholders")]
        for code in [*bank_codes, FUNDING_BANK]:
            await registry.add_bank(pool, ledger, code, code, delivery="file", endpoint=str(drops / code))
        store = DisbursementStore(pool, keys)
        # As `onecard cardholders import` does once the banks are registered.
        started = time.perf_counter()
        opened = await open_registered_card_accounts(pool, ledger)
        print(f"card accounts of the registry: {opened:,} opened in {time.perf_counter() - started:.1f} s")
        programme, _ = await store.create_programme("BENCH", "subsidy", "benchmark subsidy", PER_PERSON_MAX_MINOR)
        await fund_programme(store, ledger, "BENCH", lines * PER_PERSON_MAX_MINOR, bank_code=FUNDING_BANK)

        figures: dict[str, float] = {}

        def report(stage: str, seconds: float, count: int, cpu: _Cpu | None = None) -> None:
            figures[stage] = count / seconds
            used = ""
            if cpu is not None:
                figures[f"{stage}_python_us"] = cpu.python_s / count * 1e6
                figures[f"{stage}_server_us"] = cpu.server_s / count * 1e6
                figures[f"{stage}_children_us"] = cpu.children_s / count * 1e6
                used = (f"  CPU per line: Python {figures[f'{stage}_python_us']:.1f} us "
                        f"(child processes {figures[f'{stage}_children_us']:.1f}), "
                        f"PostgreSQL {figures[f'{stage}_server_us']:.1f} us")
            print(f"{stage:<9} {seconds:7.2f} s  {count / seconds:>10,.0f} lines/s  peak RSS {_peak_rss_mb():.0f} MB"
                  + used)

        started = time.perf_counter()
        await asyncio.to_thread(_baseline, batch_path)
        report("baseline", time.perf_counter() - started, lines)

        spool = LineSpool()
        started = time.perf_counter()
        try:
            with _TreeRss() as tree:
                async with _Cpu(pool) as submit_cpu:
                    summary = await store.validate(open_batch_file(batch_path), programme, "2026-11", TODAY,
                                                   lambda _: None, spool)
                    validated_s = time.perf_counter() - started
                    batch = await store.submit("BENCH", "2026-11", "maker", summary, 1, spool)
        finally:
            spool.close()
        submit_s = time.perf_counter() - started
        report("submit", submit_s, lines, submit_cpu)
        print(f"          of which validate and spool {validated_s:.2f} s, store {submit_s - validated_s:.2f} s; "
              f"peak RSS with the reader process {tree.peak_mb:.0f} MB")

        started = time.perf_counter()
        await store.approve(batch.id, "checker", batch.content_sha256, 2)
        approve_s = time.perf_counter() - started
        print(f"approve   {approve_s * 1000:7.1f} ms")

        async with _Cpu(pool) as execute_cpu:
            started = time.perf_counter()
            done = await execute_batch(store, ledger, batch.id, "checker", 3)
            execute_s = time.perf_counter() - started
        report("execute", execute_s, lines, execute_cpu)
        assert done.lines == batch.accepted_count

        transports = {code: FileTransport(FileDrop(drops / code)) for code in bank_codes}
        dispatcher = Dispatcher(pool, ledger, transports)
        started = time.perf_counter()
        while await dispatcher.run_once():
            pass
        deliver_s = time.perf_counter() - started
        files = sum(1 for _ in drops.rglob("*.xml"))
        report("deliver", deliver_s, done.lines)
        total_s = submit_s + approve_s + execute_s
        peak_mb = max(_peak_rss_mb(), tree.peak_mb)
        print(f"{lines:,} lines ({batch.accepted_count:,} accepted) validated, approved and executed in "
              f"{total_s:.1f} s (target <= 60 s for 1,000,000); {done.messages} pacs.008 messages, "
              f"{files} files; peak RSS {peak_mb:.0f} MB (target <= 500 MB)")
    finally:
        await pool.close()
        await keys.close()
        db.stop_embedded(home)
    return (f"lines={lines} accepted={batch.accepted_count} baseline_lines_per_s={figures['baseline']:.0f} "
            f"submit_lines_per_s={figures['submit']:.0f} execute_lines_per_s={figures['execute']:.0f} "
            f"submit_python_us={figures['submit_python_us']:.1f} "
            f"submit_children_us={figures['submit_children_us']:.1f} submit_server_us={figures['submit_server_us']:.1f} "
            f"execute_python_us={figures['execute_python_us']:.1f} "
            f"execute_server_us={figures['execute_server_us']:.1f} "
            f"deliver_lines_per_s={figures['deliver']:.0f} total_s={total_s:.1f} pacs008_messages={done.messages} "
            f"pacs008_files={files} peak_rss_mb={peak_mb:.0f}")


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark (see the module docstring); return the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"{LINES_QUICK:,} lines instead of {LINES_FULL:,}")
    parser.add_argument("--lines", type=int, help="number of lines (overrides --quick)")
    parser.add_argument("--keep", type=Path, help="folder for the database and files (kept)")
    args = parser.parse_args(argv)
    lines = args.lines or (LINES_QUICK if args.quick else LINES_FULL)
    folder = args.keep or Path(tempfile.mkdtemp(prefix="onecard-bench-batch-"))
    try:
        print(asyncio.run(run(lines, folder)))
    finally:
        if args.keep is None:
            shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
