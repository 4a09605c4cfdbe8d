"""Store rules every caller (CLI, API, Python) gets: programme code/name/kind/maximum
checked by field, a repeated create reports that it created nothing, the same content
again is refused only while a batch with it stands in the same period, user names in one
normal form, malformed and mismatched content hashes told apart, and listing batches."""

import asyncpg
import pytest

from adapters.batch_file import TabularBatchFile
from adapters.cardholder_file import cardholder_lines
from engine.disbursement.bank_card import BinTable
from engine.disbursement.execution import execute_batch, fund_programme
from engine.disbursement.lifecycle import WITHDRAWN_STATES, BatchState
from engine.disbursement.lines import LineSpool
from engine.disbursement.registry import check_cardholder_rows
from engine.disbursement.results import LineResult
from engine.errors import ConflictError, FieldError, NotFoundError
from engine.settlement import registry
from ledger.service import Ledger
from tests.disbursement.test_execution import CARDHOLDERS, TODAY
from tests.disbursement.test_store import store  # noqa: F401 - the fixture

MONTHLY = ("序号,姓名,身份证号,社会保障卡号,金额\n"
           "1,张三,510121195803142150,6222026465816998396,300.00\n"
           "2,李四,510112198711023688,6259083065450331,200\n")
RAISED = MONTHLY.replace("300.00", "310.00")


async def _ready(store, pool, tmp_path):  # noqa: F811
    path = tmp_path / "c.csv"
    path.write_text(CARDHOLDERS, encoding="utf-8")
    await store.import_cardholders(list(check_cardholder_rows(cardholder_lines(path), BinTable.load(), TODAY)))
    ledger = Ledger(pool)
    for code in ("BOC", "CCB", "ICBC"):
        await registry.add_bank(pool, ledger, code, code)
    await store.create_programme("ELDERLY", "subsidy", "高龄津贴", 50_000)
    await fund_programme(store, ledger, "ELDERLY", 200_000, bank_code="CCB")
    return ledger


async def _submit(store, tmp_path, text, period, user="maker"):  # noqa: F811
    path = tmp_path / f"b{len(list(tmp_path.iterdir()))}.csv"
    path.write_text(text, encoding="utf-8")
    outcomes, spool = [], LineSpool()
    try:
        summary = await store.validate(TabularBatchFile(path), await store.programme("ELDERLY"), period, TODAY,
                                       outcomes.append, spool)
        batch = await store.submit("ELDERLY", period, user, summary, 1_000, spool)
    finally:
        spool.close()
    return batch, [o.result for o in outcomes]


@pytest.mark.parametrize("code, kind, name, maximum, message", [
    ("BAD CODE", "subsidy", "x", 1, "code: must be 1 to 32 characters of A-Z a-z 0-9 _ -, got 'BAD CODE'"),
    ("", "subsidy", "x", 1, "code: must be 1 to 32 characters of A-Z a-z 0-9 _ -, got ''"),
    ("A" * 33, "subsidy", "x", 1, f"code: must be 1 to 32 characters of A-Z a-z 0-9 _ -, got '{'A' * 33}'"),
    ("P1", "loan", "x", 1, "kind: must be subsidy or wage, got 'loan'"),
    ("P1", "subsidy", "  ", 1, "name: must be 1 to 128 printable characters, not empty"),
    ("P1", "subsidy", "x" * 129, 1, "name: must be 1 to 128 printable characters, not empty"),
    ("P1", "subsidy", "a\nb", 1, "name: must be 1 to 128 printable characters, not empty"),
    ("P1", "subsidy", "x", 0, "per_person_max_minor: must be from 1 to 9223372036854775807 fen, got 0"),
])
async def test_programme_fields_are_checked_by_the_store(store, code, kind, name, maximum, message):  # noqa: F811
    with pytest.raises(FieldError) as refused:
        await store.create_programme(code, kind, name, maximum)
    assert str(refused.value) == message
    with pytest.raises(NotFoundError):
        await store.programme("P1")


async def test_repeated_create_reports_nothing_created_and_a_conflict_names_the_field(store):  # noqa: F811
    created = await store.create_programme("DUP1", "subsidy", "dup", 50_000)
    assert created[1] is True
    assert await store.create_programme("DUP1", "subsidy", " dup ", 50_000) == (created[0], False)
    for kind, name, maximum, field in (("wage", "dup", 50_000, "kind"), ("subsidy", "other", 50_000, "name"),
                                       ("subsidy", "dup", 60_000, "per_person_max_minor")):
        with pytest.raises(ConflictError, match=f"^programme DUP1 exists with a different {field}$"):
            await store.create_programme("DUP1", kind, name, maximum)


async def test_same_content_per_period_after_cancel_and_never_paid_twice(store, pool, tmp_path):  # noqa: F811
    ledger = await _ready(store, pool, tmp_path)
    november, results = await _submit(store, tmp_path, MONTHLY, "2026-11")
    assert results == [LineResult.ok, LineResult.ok]
    # The same people and amounts next month: a new batch.
    december, _ = await _submit(store, tmp_path, MONTHLY, "2026-12")
    assert december.id != november.id and december.content_sha256 == november.content_sha256
    # The same period while November's batch stands: refused, naming it.
    with pytest.raises(ConflictError) as refused:
        await _submit(store, tmp_path, MONTHLY, "2026-11")
    assert str(refused.value) == (f"the same batch content was already submitted as batch {november.id} for period "
                                  "2026-11; cancel it first to submit it again")
    # Cancelled, the same file may be submitted again.
    await store.transition(november.id, BatchState.cancelled, "maker", 2_000)
    again, _ = await _submit(store, tmp_path, MONTHLY, "2026-11")
    # Other amounts for the same people and period validate (nothing paid yet) ...
    raised, results = await _submit(store, tmp_path, RAISED, "2026-11")
    assert results == [LineResult.ok, LineResult.ok]
    for batch in (again, raised):
        await store.approve(batch.id, "checker", batch.content_sha256, 3_000)
    done = await execute_batch(store, ledger, again.id, "checker", 4_000)
    assert (done.lines, done.amount_minor) == (2, 50_000)
    # ... but only one of the two is paid: the payments table refuses the second.
    with pytest.raises(ConflictError) as refused:
        await execute_batch(store, ledger, raised.id, "checker", 5_000)
    assert str(refused.value) == (f"batch {raised.id}: 2 person(s) were paid in the period by another batch since "
                                  "validation; nothing was posted, submit a corrected file")
    assert (await store.batch(raised.id)).state is BatchState.approved
    async with pool.acquire() as connection:
        assert await connection.fetch(
            "SELECT batch_id, amount_minor FROM disbursement_payments WHERE period = '2026-11' ORDER BY line") == [
            (again.id, 30_000), (again.id, 20_000)]
    # A new file for the paid period: every line already paid.
    _, results = await _submit(store, tmp_path, RAISED.replace("200", "210"), "2026-11")
    assert results == [LineResult.already_paid_in_period] * 2


async def test_the_database_refuses_a_second_standing_batch_with_the_same_content(store, pool, tmp_path):  # noqa: F811
    await _ready(store, pool, tmp_path)
    first, _ = await _submit(store, tmp_path, MONTHLY, "2026-11")
    copy = ("INSERT INTO disbursement_batches (programme_code, period, state, submitted_by, content_sha256, "
            "lines_count, accepted_count, accepted_minor) SELECT programme_code, period, $2, submitted_by, "
            "content_sha256, lines_count, accepted_count, accepted_minor FROM disbursement_batches WHERE id = $1")
    async with pool.acquire() as connection:
        # The partial index exempts exactly lifecycle.WITHDRAWN_STATES (a check racing past
        # the store's SELECT still meets it).
        for state in BatchState:
            if state in WITHDRAWN_STATES:
                await connection.execute(copy, first.id, state.value)
            else:
                with pytest.raises(asyncpg.UniqueViolationError):
                    await connection.execute(copy, first.id, state.value)


@pytest.mark.parametrize("approver", ["ｍａｋｅｒ", "MAKER", " Maker ", "ＭＡＫＥＲ", "maker\u3000"])
async def test_look_alike_names_are_the_submitter(store, pool, tmp_path, approver):  # noqa: F811
    await _ready(store, pool, tmp_path)
    batch, _ = await _submit(store, tmp_path, MONTHLY, "2026-11", user="Ｍａｋｅｒ")
    assert batch.submitted_by == "maker"
    with pytest.raises(ConflictError, match=r"^the approver must be a different user from the submitter \(maker\)$"):
        await store.approve(batch.id, approver, batch.content_sha256, 2_000)
    entry = await store.approve(batch.id, "ＣＨＥＣＫＥＲ", batch.content_sha256, 2_000)
    assert entry.actor == "checker"


@pytest.mark.parametrize("user, field, message", [
    ("   ", "submitted_by", "must be a user name, not empty or only spaces"),
    ("a\x00b", "submitted_by", "must not contain control or invisible characters (U+0000 at 2)"),
    ("x" * 65, "submitted_by", "must be at most 64 characters, got 65"),
])
async def test_bad_user_names_are_refused_naming_the_field(store, pool, tmp_path, user, field, message):  # noqa: F811
    await _ready(store, pool, tmp_path)
    with pytest.raises(FieldError) as refused:
        await _submit(store, tmp_path, MONTHLY, "2026-11", user=user)
    assert str(refused.value) == f"{field}: {message}"
    batch, _ = await _submit(store, tmp_path, MONTHLY, "2026-11")
    for call, name in ((store.approve(batch.id, " ", batch.content_sha256, 2_000), "approver"),
                       (store.transition(batch.id, BatchState.cancelled, "\t", 2_000), "actor")):
        with pytest.raises(FieldError, match=f"^{name}: "):
            await call


async def test_malformed_and_mismatched_hashes_are_told_apart(store, pool, tmp_path):  # noqa: F811
    await _ready(store, pool, tmp_path)
    batch, _ = await _submit(store, tmp_path, MONTHLY, "2026-11")
    for text in ("00", "", "g" * 64, batch.content_sha256 + "0", " " + batch.content_sha256):
        with pytest.raises(FieldError) as refused:
            await store.approve(batch.id, "checker", text, 2_000)
        assert str(refused.value) == (f"content_sha256: must be 64 hex digits (the batch's SHA-256 content hash), "
                                      f"got {len(text)} characters")
    other = "0" * 64
    with pytest.raises(ConflictError) as refused:
        await store.approve(batch.id, "checker", other, 2_000)
    assert str(refused.value) == (f"content_sha256 does not match the batch's content hash "
                                  f"({batch.content_sha256[:12]}...); review it again")
    # Hex case does not matter.
    entry = await store.approve(batch.id, "checker", batch.content_sha256.upper(), 2_000)
    assert (entry.state, entry.content_sha256) == (BatchState.approved, batch.content_sha256)


async def test_list_batches_newest_first_by_programme_and_state(store, pool, tmp_path):  # noqa: F811
    await _ready(store, pool, tmp_path)
    await store.create_programme("WAGES", "wage", "工资", 1_000_000)
    ids = [(await _submit(store, tmp_path, MONTHLY, period))[0].id for period in ("2026-09", "2026-10", "2026-11")]
    await store.transition(ids[1], BatchState.cancelled, "maker", 2_000)
    assert [b.id for b in await store.list_batches()] == ids[::-1]
    assert [b.id for b in await store.list_batches(limit=2)] == ids[:0:-1]
    assert [b.id for b in await store.list_batches(state=BatchState.cancelled)] == [ids[1]]
    assert [b.id for b in await store.list_batches(programme_code="ELDERLY", state=BatchState.validated)] == [
        ids[2], ids[0]]
    assert await store.list_batches(programme_code="WAGES") == []
    with pytest.raises(NotFoundError, match="^no programme NOPE$"):
        await store.list_batches(programme_code="NOPE")
    with pytest.raises(FieldError, match="^limit: must be from 1 to 1000, got 1001$"):
        await store.list_batches(limit=1001)
