"""The disbursement store on a real PostgreSQL with the soft key service."""

import datetime

import asyncpg
import pytest

from adapters.batch_file import TabularBatchFile
from adapters.cardholder_file import cardholder_lines
from adapters.errors import FileFormatError
from engine.disbursement import reading, store as store_module
from engine.disbursement.bank_card import BinTable
from engine.disbursement.lifecycle import BatchState
from engine.disbursement.lines import LineSpool, open_fields
from engine.disbursement.registry import Category, check_cardholder_rows
from engine.disbursement.results import LineResult
from engine.disbursement.store import FIELD_KEY, ID_HASH_KEY, PAN_TOKEN_KEY, DisbursementStore
from engine.disbursement.validation import BatchValidator, ValidationContext, validate_source
from engine.errors import ConflictError, NotFoundError
from hsm.soft import SoftKeyService

TODAY = datetime.date(2026, 1, 1)
CARDHOLDERS = ("身份证号码,姓名,社会保障卡号,状态,类别\n"
               "510121195803142150,张三,6222026465816998396,正常,老年人\n"
               "51340119720505003X,王五,6214825837354017807,挂失,\n"
               "510112198711023688,李四,6259083065450331,正常,学生;残疾人\n")
BATCH = ("序号,姓名,身份证号,社会保障卡号,金额\n"
         "1,张三,510121195803142150,6222026465816998396,300.00\n"
         "2,王五,51340119720505003x,6214825837354017807,100\n"
         "3,李四,510112198711023688,6259083065450331,200\n"
         "4,张三,510121195803142150,6222026465816998396,300.00\n"
         "5,赵六,511002199507300438,6222026465816998396,50\n"
         "6,李四,510112198711023688,6222026465816998396,1\n")


@pytest.fixture
async def store(pool, tmp_path):
    SoftKeyService.init(tmp_path / "keys")
    keys = SoftKeyService.open(tmp_path / "keys")
    await keys.generate_key(ID_HASH_KEY, "bank-mac")
    await keys.generate_key(PAN_TOKEN_KEY, "pan-token")
    await keys.generate_key(FIELD_KEY, "field-enc")
    yield DisbursementStore(pool, keys)
    await keys.close()


async def imported(store, tmp_path):
    path = tmp_path / "cardholders.csv"
    path.write_text(CARDHOLDERS, encoding="utf-8")
    rows = list(check_cardholder_rows(cardholder_lines(path), BinTable.load(), TODAY))
    return await store.import_cardholders(rows)


async def test_registry_keeps_no_identity_or_card_number_in_clear(store, pool, tmp_path):
    assert await imported(store, tmp_path) == 3
    async with pool.acquire() as connection:
        dump = str([dict(r) for r in await connection.fetch("SELECT * FROM disbursement_cardholders")])
    for secret in ("510121195803142150", "510112198711023688", "6222026465816998396", "6259083065450331"):
        assert secret not in dump
    found = await store.cardholders(["510121195803142150", "511002199507300438"])
    assert list(found) == ["510121195803142150"]
    assert (found["510121195803142150"].name, found["510121195803142150"].pan_last4,
            found["510121195803142150"].bank_code) == ("张三", "8396", "ICBC")
    categories = {n: r.categories for n, r in (await store.cardholders(
        ["510121195803142150", "51340119720505003X", "510112198711023688"])).items()}
    assert categories == {"510121195803142150": {Category.senior}, "51340119720505003X": frozenset(),
                          "510112198711023688": {Category.student, Category.disabled}}
    assert await imported(store, tmp_path) == 3  # re-import replaces, no duplicates


async def test_validate_submit_approve_with_history(store, tmp_path):
    await imported(store, tmp_path)
    programme, created = await store.create_programme("ELDERLY", "subsidy", "高龄津贴", 50_000)
    assert created and await store.create_programme("ELDERLY", "subsidy", " 高龄津贴 ", 50_000) == (programme, False)
    with pytest.raises(ConflictError, match="different per_person_max_minor"):
        await store.create_programme("ELDERLY", "subsidy", "高龄津贴", 60_000)
    path = tmp_path / "batch.csv"
    path.write_bytes(BATCH.encode("gbk"))
    outcomes = []
    summary = await store.validate(TabularBatchFile(path), programme, "2026-11", TODAY, outcomes.append)
    assert [o.result for o in outcomes] == [
        LineResult.ok, LineResult.card_not_active, LineResult.ok, LineResult.duplicate_in_batch,
        LineResult.cardholder_not_found, LineResult.account_mismatch]
    assert (summary.accepted_count, summary.accepted_minor) == (2, 50_000)

    batch = await store.submit("ELDERLY", "2026-11", "maker", summary, at_ms=1_000)
    assert batch.state is BatchState.validated
    with pytest.raises(ConflictError, match=f"already submitted as batch {batch.id}"):
        await store.submit("ELDERLY", "2026-11", "maker", summary, at_ms=1_001)
    with pytest.raises(ConflictError, match="different user"):
        await store.approve(batch.id, "maker", summary.content_sha256, at_ms=2_000)
    with pytest.raises(ConflictError, match="does not match the batch's content hash"):
        await store.approve(batch.id, "checker", "0" * 64, at_ms=2_000)
    await store.approve(batch.id, "checker", summary.content_sha256, at_ms=2_000)
    with pytest.raises(ConflictError, match="batch is approved; it cannot become validated"):
        await store.transition(batch.id, BatchState.validated, "system", at_ms=3_000)
    await store.transition(batch.id, BatchState.cancelled, "checker", at_ms=3_000)
    assert [(h.sequence, h.state, h.actor) for h in await store.history(batch.id)] == [
        (1, BatchState.received, "maker"), (2, BatchState.validated, "system"),
        (3, BatchState.approved, "checker"), (4, BatchState.cancelled, "checker")]
    assert (await store.batch(batch.id)).state is BatchState.cancelled
    with pytest.raises(NotFoundError):
        await store.batch(batch.id + 1)


async def test_already_paid_in_period_and_append_only_history(store, pool, tmp_path):
    await imported(store, tmp_path)
    programme, _ = await store.create_programme("ELDERLY", "subsidy", "高龄津贴", 50_000)
    path = tmp_path / "batch.csv"
    path.write_bytes(BATCH.encode("utf-8"))
    summary = await store.validate(TabularBatchFile(path), programme, "2026-11", TODAY, lambda _: None)
    batch = await store.submit("ELDERLY", "2026-11", "maker", summary, at_ms=1_000)
    async with pool.acquire() as connection:
        await connection.execute(
            "INSERT INTO disbursement_payments (programme_code, period, id_hash, batch_id, line, amount_minor) "
            "VALUES ('ELDERLY', '2026-11', $1, $2, 1, 30000)", await store.id_hash("510121195803142150"), batch.id)
        with pytest.raises(asyncpg.RaiseError, match="append-only"):
            await connection.execute("UPDATE disbursement_batch_history SET actor = 'x'")
        with pytest.raises(asyncpg.RaiseError, match="append-only"):
            await connection.execute("DELETE FROM disbursement_batch_history")
    outcomes = []
    await store.validate(TabularBatchFile(path), programme, "2026-11", TODAY, outcomes.append)
    assert outcomes[0].result is LineResult.already_paid_in_period
    outcomes.clear()
    await store.validate(TabularBatchFile(path), programme, "2026-12", TODAY, outcomes.append)
    assert outcomes[0].result is LineResult.ok


@pytest.mark.parametrize("read_ahead", [False, True])
async def test_chunked_validation_equals_one_pass_over_the_file(store, pool, tmp_path, monkeypatch, read_ahead):
    """Two-line chunks (each chunk's registry queries run while the previous one is
    validated; read and prepared here or by a child process) give the outcomes and
    content hash of one in-memory pass, and every line is stored and sealed."""
    await imported(store, tmp_path)
    programme, _ = await store.create_programme("ELDERLY", "subsidy", "高龄津贴", 50_000)
    path = tmp_path / "batch.csv"
    path.write_bytes((BATCH + "7,张三,5.10121E+17,6222 0264 6581 6998 396,1.005\n").encode("gbk"))
    registry = await store.cardholders(["510121195803142150", "51340119720505003X", "510112198711023688"])
    tokens = {pan: await store.keys.tokenize_pan(pan, PAN_TOKEN_KEY)
              for pan in ("6222026465816998396", "6214825837354017807", "6259083065450331")}
    reference = BatchValidator(ValidationContext(
        lookup_cardholder=registry.get, already_paid=lambda _: False, pan_token=lambda pan: tokens.get(pan, ""),
        per_person_max_minor=50_000, today=TODAY))
    expected = list(validate_source(TabularBatchFile(path), reference))

    monkeypatch.setattr(store_module, "CHUNK_LINES", 2)
    monkeypatch.setattr(reading, "READ_AHEAD_BYTES_MIN", 0 if read_ahead else 2**40)
    outcomes, spool = [], LineSpool()
    summary = await store.validate(TabularBatchFile(path), programme, "2026-11", TODAY, outcomes.append, spool)
    assert outcomes == expected
    assert [o.result for o in outcomes] == [
        LineResult.ok, LineResult.card_not_active, LineResult.ok, LineResult.duplicate_in_batch,
        LineResult.cardholder_not_found, LineResult.account_mismatch, LineResult.id_in_scientific_notation]
    assert summary == reference.finish([])
    assert spool.chunks == 4 and spool.lines == 7
    batch = await store.submit("ELDERLY", "2026-11", "maker", summary, 1_000, spool)
    spool.close()
    async with pool.acquire() as connection:
        rows = await connection.fetch(
            "SELECT line, result, amount_minor, bank_code, name FROM disbursement_lines WHERE batch_id = $1 "
            "ORDER BY line", batch.id)
        chunks = await connection.fetch(
            "SELECT chunk, first_line, sealed FROM disbursement_line_fields WHERE batch_id = $1 ORDER BY chunk",
            batch.id)
    assert [tuple(r) for r in rows] == [
        (1, 0, 30000, "ICBC", "张三"), (2, 6, 10000, None, None), (3, 0, 20000, "BOC", "李四"),
        (4, 12, 30000, None, None), (5, 5, 5000, None, None), (6, 7, 100, None, None), (7, 3, None, None, None)]
    assert [(c["chunk"], c["first_line"]) for c in chunks] == [(0, 1), (1, 3), (2, 5), (3, 7)]
    opened = [f for c in chunks for f in await open_fields(store.keys, batch.content_sha256, c["first_line"], c["sealed"])]
    assert opened[6] == ("7", "张三", "5.10121E+17", "6222 0264 6581 6998 396", "1.005", "", "")
    assert [f[2] for f in opened][:3] == ["510121195803142150", "51340119720505003x", "510112198711023688"]


@pytest.mark.parametrize("read_ahead", [False, True])
async def test_a_file_error_in_a_later_chunk_refuses_the_file(store, tmp_path, monkeypatch, read_ahead):
    await imported(store, tmp_path)
    programme, _ = await store.create_programme("ELDERLY", "subsidy", "高龄津贴", 50_000)
    path = tmp_path / "batch.csv"
    path.write_bytes((BATCH + "7,张三,510121195803142150,6222026465816998396,1,extra,cells\n").encode("utf-8"))
    monkeypatch.setattr(store_module, "CHUNK_LINES", 2)
    monkeypatch.setattr(reading, "READ_AHEAD_BYTES_MIN", 0 if read_ahead else 2**40)
    outcomes = []
    with pytest.raises(FileFormatError, match="row 8 has more cells than the header"):
        await store.validate(TabularBatchFile(path), programme, "2026-11", TODAY, outcomes.append)
    assert len(outcomes) == 4
