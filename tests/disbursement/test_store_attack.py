"""Attacks on submit: amounts beyond a bigint, a killed reader child (nothing stored)."""

import multiprocessing
import os
import signal

import pytest

from adapters.batch_file import TabularBatchFile
from engine.disbursement import reading, store as store_module
from engine.disbursement.lines import LineSpool
from engine.disbursement.results import LineResult
from engine.errors import ReaderProcessError
from tests.disbursement.test_store import BATCH, TODAY, imported, store  # noqa: F401 - fixture


@pytest.mark.parametrize("read_ahead", [False, True])
@pytest.mark.parametrize("amount", ["100000000000000000000", "-100000000000000000000"])
async def test_an_amount_beyond_a_bigint_is_a_line_result_and_the_batch_is_stored(store, pool, tmp_path,
                                                                                   monkeypatch, read_ahead, amount):
    await imported(store, tmp_path)
    programme, _ = await store.create_programme("ELDERLY", "subsidy", "高龄津贴", 50_000)
    path = tmp_path / "batch.csv"
    path.write_text(BATCH + f"7,张三,510121195803142150,6222026465816998396,{amount}\n", encoding="utf-8")
    monkeypatch.setattr(store_module, "CHUNK_LINES", 2)
    monkeypatch.setattr(reading, "READ_AHEAD_BYTES_MIN", 0 if read_ahead else 2**40)
    outcomes, spool = [], LineSpool()
    summary = await store.validate(TabularBatchFile(path), programme, "2026-11", TODAY, outcomes.append, spool)
    assert outcomes[6].result is not LineResult.ok
    batch = await store.submit("ELDERLY", "2026-11", "maker", summary, 1_000, spool)
    spool.close()
    async with pool.acquire() as connection:
        assert await connection.fetchval("SELECT count(*) FROM disbursement_lines WHERE batch_id = $1", batch.id) == 7


async def test_a_killed_reader_child_stores_nothing(store, pool, tmp_path, monkeypatch):
    await imported(store, tmp_path)
    programme, _ = await store.create_programme("ELDERLY", "subsidy", "高龄津贴", 50_000)
    path = tmp_path / "batch.csv"
    path.write_text(BATCH + "".join(f"{7 + i},张三,510121195803142150,6222026465816998396,1\n" for i in range(3000)),
                    encoding="utf-8")
    monkeypatch.setattr(store_module, "CHUNK_LINES", 100)
    monkeypatch.setattr(reading, "READ_AHEAD_BYTES_MIN", 0)
    before = set(multiprocessing.active_children())
    outcomes, spool = [], LineSpool()

    def kill_once(outcome):
        outcomes.append(outcome)
        if len(outcomes) == 1:
            [child] = set(multiprocessing.active_children()) - before
            os.kill(child.pid, signal.SIGKILL)

    with pytest.raises(ReaderProcessError):
        await store.validate(TabularBatchFile(path), programme, "2026-11", TODAY, kill_once, spool)
    spool.close()
    assert not set(multiprocessing.active_children()) - before
    async with pool.acquire() as connection:
        assert await connection.fetchval("SELECT count(*) FROM disbursement_batches") == 0
        assert await connection.fetchval("SELECT count(*) FROM disbursement_lines") == 0


@pytest.mark.parametrize("read_ahead", [False, True])
async def test_a_totals_row_that_does_not_add_up_refuses_the_file_either_way(store, pool, tmp_path, monkeypatch,
                                                                            read_ahead):
    from engine.disbursement.errors import TotalsMismatchError

    await imported(store, tmp_path)
    programme, _ = await store.create_programme("ELDERLY", "subsidy", "高龄津贴", 50_000)
    path = tmp_path / "batch.csv"
    path.write_bytes((BATCH + "合计,,,,951.01\n").encode("gb18030"))  # the lines add up to 951.00
    monkeypatch.setattr(store_module, "CHUNK_LINES", 2)
    monkeypatch.setattr(reading, "READ_AHEAD_BYTES_MIN", 0 if read_ahead else 2**40)
    outcomes, spool = [], LineSpool()
    with pytest.raises(TotalsMismatchError) as refused:
        await store.validate(TabularBatchFile(path), programme, "2026-11", TODAY, outcomes.append, spool)
    spool.close()
    assert "951.01" in str(refused.value) and len(outcomes) == 6
    async with pool.acquire() as connection:
        assert await connection.fetchval("SELECT count(*) FROM disbursement_batches") == 0


@pytest.mark.parametrize("read_ahead", [False, True])
async def test_xlsx_lines_and_content_hash_are_those_read_in_process(store, tmp_path, monkeypatch, read_ahead):
    import openpyxl

    await imported(store, tmp_path)
    programme, _ = await store.create_programme("ELDERLY", "subsidy", "高龄津贴", 50_000)
    book = openpyxl.Workbook()
    for row in [line.split(",") for line in BATCH.splitlines()]:
        book.active.append([int(c) if c.isdigit() and len(c) < 3 else c for c in row])
    book.active.append([7, "张三", 510121195803142150, "6222026465816998396", 1.5])
    book.save(tmp_path / "batch.xlsx")
    monkeypatch.setattr(store_module, "CHUNK_LINES", 3)
    monkeypatch.setattr(reading, "READ_AHEAD_BYTES_MIN", 0 if read_ahead else 2**40)
    outcomes = []
    summary = await store.validate(TabularBatchFile(tmp_path / "batch.xlsx"), programme, "2026-11", TODAY,
                                   outcomes.append)
    monkeypatch.setattr(reading, "READ_AHEAD_BYTES_MIN", 2**40)
    reference = []
    assert summary == await store.validate(TabularBatchFile(tmp_path / "batch.xlsx"), programme, "2026-11", TODAY,
                                           reference.append)
    assert outcomes == reference
    assert [o.line.line for o in outcomes] == list(range(1, 8))
