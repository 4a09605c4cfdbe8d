"""A disbursement batch from file to bank and back, on the real PostgreSQL with simbanks over
loopback HTTP: bad lines (one per reason), maker-checker approval, insufficient funds
(nothing posted), execution (pacs.008 to each issuing bank through the outbox), a bank
rejection (pacs.002 RJCT) and a return (pacs.004), exact balances, the CSV and pain.002
reports, a crash mid-execution resumed without paying twice, and a re-upload refused."""

import asyncio
import contextlib
import csv
import datetime as dt
import io
import random

import asyncpg
import pytest
from lxml import etree

from adapters.batch_file import TabularBatchFile
from adapters.cardholder_file import cardholder_lines
from adapters.delivery import HttpDelivery, RetryPolicy
from adapters.iso20022 import pacs004, pacs008, schema
from adapters.simbank import SimBank
from engine.disbursement import execution, store as store_module
from engine.disbursement.bank_card import BinTable
from engine.disbursement.errors import InsufficientFundsError
from engine.disbursement.execution import card_account_id, execute_batch, fund_programme, funding
from engine.disbursement.lifecycle import BatchState
from engine.disbursement.lines import LineSpool
from engine.disbursement.registry import check_cardholder_rows
from engine.disbursement.report import write_report
from engine.disbursement.results import LineResult
from engine.disbursement.store import FIELD_KEY, ID_HASH_KEY, PAN_TOKEN_KEY, DisbursementStore
from engine.errors import ConflictError
from engine.settlement import registry
from engine.settlement.outbox import Dispatcher, HttpTransport, apply_returns
from hsm.soft import SoftKeyService
from ledger.service import Ledger

TODAY = dt.date(2026, 1, 1)
CREATED_AT = dt.datetime(2026, 11, 30, tzinfo=dt.timezone.utc)
KEY = bytes(range(32))
CARDHOLDERS = ("身份证号码,姓名,社会保障卡号,状态\n"
               "510121195803142150,张三,6222026465816998396,正常\n"
               "51340119720505003X,王五,6214825837354017807,挂失\n"
               "510112198711023688,李四,6259083065450331,正常\n"
               "11010519491231002X,赵七,6217000000000000012,正常\n")
BATCH = ("序号,姓名,身份证号,社会保障卡号,金额\n"
         "1,张三,510121195803142150,6222026465816998396,300.00\n"
         "2,王五,51340119720505003x,6214825837354017807,100\n"
         "3,李四,510112198711023688,6259083065450331,200\n"
         "4,张三,510121195803142150,6222026465816998396,300.00\n"
         "5,赵六,511002199507300438,6222026465816998396,50\n"
         "6,李四,510112198711023688,6222026465816998396,1\n"
         "7,赵七,11010519491231002X,6217000000000000012,¥150元\n"
         "8,张三,51012119580314215,6222026465816998396,10\n"
         "9,张三,510121195803142151,6222026465816998396,10\n"
         "10,张三,5.10121E+17,6222026465816998396,10\n"
         "11,王二,510112198711023688,6259083065450331,10\n"
         "12,赵七,11010519491231002X,6217000000000000012,0\n"
         "13,赵七,11010519491231002X,6217000000000000012,1.234\n"
         "14,赵七,11010519491231002X,6217000000000000012,600\n"
         "15,赵七,11010519491231002X,6217000000000000012,abc\n")
REASONS = ["", "card_not_active", "", "duplicate_in_batch", "cardholder_not_found", "account_mismatch", "",
           "invalid_id_format", "invalid_id_checksum", "id_in_scientific_notation", "name_mismatch",
           "amount_not_positive", "amount_precision", "amount_over_limit", "invalid_amount_format"]


@pytest.fixture
async def store(pool, tmp_path):
    SoftKeyService.init(tmp_path / "keys")
    keys = SoftKeyService.open(tmp_path / "keys")
    for label, kind in ((ID_HASH_KEY, "bank-mac"), (PAN_TOKEN_KEY, "pan-token"), (FIELD_KEY, "field-enc")):
        await keys.generate_key(label, kind)
    yield DisbursementStore(pool, keys)
    await keys.close()


@pytest.fixture
async def banks(pool):
    simbanks = {code: SimBank(code, keys={"ONECARD": KEY}) for code in ("BOC", "CCB", "ICBC")}
    ledger = Ledger(pool)
    for code, bank in simbanks.items():
        await bank.start()
        await registry.add_bank(pool, ledger, code, f"{code} bank", delivery="push", endpoint=bank.url)
    yield simbanks
    for bank in simbanks.values():
        await bank.stop()


async def _submit(store, tmp_path, text, name, user="maker"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    programme = await store.programme("ELDERLY")
    spool = LineSpool()
    outcomes = []
    try:
        summary = await store.validate(TabularBatchFile(path), programme, "2026-11", TODAY, outcomes.append, spool)
        batch = await store.submit("ELDERLY", "2026-11", user, summary, 1_000, spool)
    finally:
        spool.close()
    return batch, outcomes


async def _deliver(pool, ledger, banks):
    policy = RetryPolicy(attempts_max=2, timeout_s=2.0, backoff_initial_s=0.01, backoff_max_s=0.02)
    transports = {code: HttpTransport(HttpDelivery(bank.url, key_id="ONECARD", key=KEY, policy=policy))
                  for code, bank in banks.items()}
    dispatcher = Dispatcher(pool, ledger, transports, backoff_initial_s=0.01, backoff_max_s=0.02,
                            rng=random.Random(1))
    try:
        while await dispatcher.run_once():
            pass
    finally:
        for transport in transports.values():
            await transport.close()


async def _ledger_state(pool):
    async with pool.acquire() as connection:
        return (await connection.fetchval("SELECT count(*) FROM ledger_transfers"),
                await connection.fetchval("SELECT count(*) FROM settlement_outbox"))


async def test_batch_from_file_to_banks_and_back(store, pool, banks, tmp_path, monkeypatch):
    ledger = Ledger(pool)
    rows = list(check_cardholder_rows(cardholder_lines(_write(tmp_path / "c.csv", CARDHOLDERS)), BinTable.load(), TODAY))
    assert await store.import_cardholders(rows) == 4
    await store.create_programme("ELDERLY", "subsidy", "高龄津贴", 50_000)
    await fund_programme(store, ledger, "ELDERLY", 40_000, bank_code="CCB")

    # Four lines per stored chunk, so execution goes over several chunks.
    monkeypatch.setattr(store_module, "CHUNK_LINES", 4)
    batch, outcomes = await _submit(store, tmp_path, BATCH, "batch.csv")
    assert [o.result.reason for o in outcomes] == REASONS
    assert (batch.lines_count, batch.accepted_count, batch.accepted_minor) == (15, 3, 65_000)

    # The same file again is refused; approval needs another user and the validated content.
    with pytest.raises(ConflictError, match=f"already submitted as batch {batch.id}"):
        await _submit(store, tmp_path, BATCH, "again.csv")
    with pytest.raises(ConflictError, match="different user"):
        await store.approve(batch.id, "Maker", batch.content_sha256, 2_000)
    with pytest.raises(ConflictError, match="does not match the batch.s content hash"):
        await store.approve(batch.id, "checker", "0" * 64, 2_000)
    with pytest.raises(ConflictError, match="only an approved batch is executed"):
        await execute_batch(store, ledger, batch.id, "checker", 2_500)
    await store.approve(batch.id, "checker", batch.content_sha256, 2_000)

    # 400.00 available, 650.00 needed: nothing posted, the batch stays approved.
    before = await _ledger_state(pool)
    with pytest.raises(InsufficientFundsError, match="short by 250.00 yuan") as refused:
        await execute_batch(store, ledger, batch.id, "checker", 3_000)
    assert refused.value.shortfall_minor == 25_000
    async with pool.acquire() as connection:
        assert (await funding(connection, ledger, "ELDERLY")).available_minor == 40_000
        assert await connection.fetchval("SELECT count(*) FROM disbursement_payments") == 0
    assert (await store.batch(batch.id)).state is BatchState.approved
    # Not a transfer nor a message more; the batch's escrow was rolled back with the rest.
    assert await _ledger_state(pool) == before
    assert await ledger.lookup_accounts([execution.escrow_account_id(batch.id)]) == []
    cards = [card_account_id(r.pan_token) for r in (await store.cardholders(
        ["510121195803142150", "510112198711023688", "11010519491231002X"])).values()]
    assert all(a.credits_posted == 0 and a.credits_pending == 0 for a in await ledger.lookup_accounts(cards))

    await fund_programme(store, ledger, "ELDERLY", 60_000)
    banks["BOC"].close_account("6259083065450331")

    # The engine dies after posting the first chunk (its lease left behind); executing again
    # is refused until the lease expires, then takes it over and resumes.
    real_post, real_lease = execution._post_chunk, execution._lease
    calls = []

    async def crash_after_first(*args):
        if calls:
            raise RuntimeError("crash")
        calls.append(1)
        return await real_post(*args)

    @contextlib.asynccontextmanager
    async def lease_left_behind(pool_, batch_id, holder):
        try:
            async with real_lease(pool_, batch_id, holder):
                yield
        finally:
            async with pool_.acquire() as connection:
                await connection.execute("INSERT INTO disbursement_execution_leases VALUES ($1, 'dead', "
                                         "now() + interval '1 hour')", batch_id)

    monkeypatch.setattr(execution, "_post_chunk", crash_after_first)
    monkeypatch.setattr(execution, "_lease", lease_left_behind)
    with pytest.raises(RuntimeError):
        await execute_batch(store, ledger, batch.id, "checker", 4_000)
    monkeypatch.setattr(execution, "_post_chunk", real_post)
    monkeypatch.setattr(execution, "_lease", real_lease)
    assert (await store.batch(batch.id)).state is BatchState.executing
    async with pool.acquire() as connection:
        # The first chunk's two lines posted, from the escrow holding the whole batch.
        assert await connection.fetchval(
            "SELECT array_agg(posted_messages ORDER BY chunk) FROM disbursement_line_fields") == [2, None, None, None]
        (escrow,) = await ledger.lookup_accounts([execution.escrow_account_id(batch.id)], connection=connection)
        assert (escrow.credits_posted, escrow.debits_posted) == (65_000, 50_000)
    with pytest.raises(ConflictError, match="being executed by another run"):
        await execute_batch(store, ledger, batch.id, "checker", 4_500)
    async with pool.acquire() as connection:
        await connection.execute("UPDATE disbursement_execution_leases SET expires_at = now() - interval '1 s'")
    done = await execute_batch(store, ledger, batch.id, "checker", 5_000)
    assert (done.lines, done.amount_minor, done.messages) == (3, 65_000, 3)
    (escrow,) = await ledger.lookup_accounts([execution.escrow_account_id(batch.id)])
    assert (escrow.credits_posted, escrow.debits_posted) == (65_000, 65_000)
    with pytest.raises(ConflictError, match="is executed"):
        await execute_batch(store, ledger, batch.id, "checker", 6_000)
    assert [h.state for h in await store.history(batch.id)][-3:] == [
        BatchState.approved, BatchState.executing, BatchState.executed]

    # Each issuing bank got one valid pacs.008.001.08 (purpose GOVT) for its line.
    async with pool.acquire() as connection:
        outbox = await connection.fetch("SELECT bank_code, xml FROM settlement_outbox ORDER BY bank_code")
    assert [r["bank_code"] for r in outbox] == ["BOC", "CCB", "ICBC"]
    for row in outbox:
        schema.parse_validated(bytes(row["xml"]), pacs008.MESSAGE_DEFINITION)
        assert b"<Purp><Cd>GOVT</Cd></Purp>" in bytes(row["xml"])
    message = pacs008.parse(bytes(outbox[2]["xml"]))
    assert [(t.creditor_account, t.amount_minor) for t in message.transfers] == [("6222026465816998396", 30_000)]

    await _deliver(pool, ledger, banks)
    assert banks["ICBC"].accounts["6222026465816998396"].balance_minor == 30_000
    assert banks["CCB"].accounts["6217000000000000012"].balance_minor == 15_000
    assert banks["BOC"].accounts["6259083065450331"].balance_minor == 0
    # ICBC returns 张三's payment (pacs.004); applied twice, reversed once.
    async with pool.acquire() as connection:
        base_id = await execution.transfer_base_id(connection, batch.id)
    banks["ICBC"].return_payment(execution.line_end_to_end_id(base_id, 1), "AC04")
    returned = pacs004.parse(banks["ICBC"].next_return())
    for _ in range(2):
        async with pool.acquire() as connection, connection.transaction():
            await apply_returns(connection, ledger, "ICBC", returned.returns)

    # Exact balances: 1,000.00 funded, 150.00 paid, 200.00 rejected and 300.00 returned came back.
    async with pool.acquire() as connection:
        assert (await funding(connection, ledger, "ELDERLY")).available_minor == 85_000
    holders = await store.cardholders(["510121195803142150", "510112198711023688", "11010519491231002X"])
    balances = {holders[n].name: a for n in holders
                for a in await ledger.lookup_accounts([card_account_id(holders[n].pan_token)])}
    assert {name: (a.credits_posted, a.debits_posted) for name, a in balances.items()} == {
        "张三": (30_000, 30_000), "李四": (20_000, 20_000), "赵七": (15_000, 0)}

    # The CSV result file: one row per input line, exact; a returned line has no validation
    # reason, the bank's ISO code is in bank_reason.
    assert await write_report(store, batch.id, "csv", tmp_path / "result.csv", CREATED_AT) == 15
    rows = list(csv.reader(io.StringIO((tmp_path / "result.csv").read_text(encoding="utf-8-sig"))))
    assert rows[0] == ["line", "status", "reason", "sequence", "name", "id_number", "card_number", "amount",
                       "item", "remark", "bank_reason"]
    statuses = ["returned", "rejected", "returned", "rejected", "rejected", "rejected", "paid"] + ["rejected"] * 8
    reasons = ["", *REASONS[1:2], "", *REASONS[3:]]
    assert [r[:3] for r in rows[1:]] == [[str(n), s, r] for n, s, r in zip(range(1, 16), statuses, reasons)]
    assert [r[-1] for r in rows[1:]] == ["AC04", "", "AC04"] + [""] * 12
    source = list(csv.reader(io.StringIO(BATCH)))[1:]
    assert [r[3:8] for r in rows[1:]] == source

    # pain.002.001.10: valid, partly accepted, one status per line (the bank's code for returns).
    assert await write_report(store, batch.id, "pain002", tmp_path / "pain002.xml", CREATED_AT) == 15
    document = (tmp_path / "pain002.xml").read_bytes()
    schema.parse_validated(document, "pain.002.001.10")
    tree = etree.fromstring(document)
    ns = {"p": tree.nsmap[None]}
    assert tree.findtext(".//p:GrpSts", namespaces=ns) == "PART"
    assert tree.findtext(".//p:MsgId", namespaces=ns) == f"onecard-rpt-{batch.id}-{int(CREATED_AT.timestamp() * 1000)}"
    assert [e.text for e in tree.findall(".//p:TxSts", ns)] == ["RJCT"] * 6 + ["ACSC"] + ["RJCT"] * 8
    assert [e.text for e in tree.findall(".//p:TxInfAndSts/p:StsRsnInf/p:Rsn/*", ns)] == [
        "AC04", *REASONS[1:2], "AC04", *[r for r in REASONS[3:] if r]]
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []

    # The same person again in the period: already paid (張三's return does not reopen it).
    second, outcomes = await _submit(store, tmp_path, "序号,姓名,身份证号,社会保障卡号,金额\n"
                                                      "1,赵七,11010519491231002X,6217000000000000012,10\n", "b2.csv")
    assert [o.result for o in outcomes] == [LineResult.already_paid_in_period]


async def test_wage_programme_pays_from_the_wage_escrow_with_purpose_sala(store, pool, banks, tmp_path):
    ledger = Ledger(pool)
    await _register_cardholders(store, tmp_path)
    await store.create_programme("ELDERLY", "wage", "建筑工资", 1_000_000)
    funded = await fund_programme(store, ledger, "ELDERLY", 300_000, bank_code="ICBC")
    async with pool.acquire() as connection:
        kind = await connection.fetchval("SELECT kind FROM settlement_accounts WHERE account_id = $1",
                                         funded.account_id.to_bytes(16, "big"))
    assert kind == "wage"
    batch, _ = await _submit(store, tmp_path, "姓名,身份证号,社会保障卡号,金额\n"
                                              "赵七,11010519491231002X,6217000000000000012,2500.50\n", "w.csv")
    await store.approve(batch.id, "checker", batch.content_sha256, 2_000)
    done = await execute_batch(store, ledger, batch.id, "checker", 3_000)
    assert (done.lines, done.amount_minor) == (1, 250_050)
    async with pool.acquire() as connection:
        xml = bytes(await connection.fetchval("SELECT xml FROM settlement_outbox"))
        assert (await funding(connection, ledger, "ELDERLY")).available_minor == 300_000 - 250_050
    assert b"<Purp><Cd>SALA</Cd></Purp>" in xml


async def test_two_concurrent_executions_one_is_refused(store, pool, banks, tmp_path):
    ledger = Ledger(pool)
    batch = await _approved_batch(store, ledger, tmp_path, 100_000)
    outcomes = await asyncio.gather(*(execute_batch(store, ledger, batch.id, user, 3_000) for user in ("a", "b")),
                                    return_exceptions=True)
    refused = [o for o in outcomes if isinstance(o, ConflictError)]
    done = [o for o in outcomes if isinstance(o, execution.Execution)]
    assert len(refused) == 1 and "being executed by another run" in str(refused[0])
    assert [(d.lines, d.amount_minor) for d in done] == [(3, 65_000)]
    async with pool.acquire() as connection:
        assert (await funding(connection, ledger, "ELDERLY")).available_minor == 35_000
        assert await connection.fetchval("SELECT count(*) FROM disbursement_execution_leases") == 0


async def test_a_crash_between_two_parts_of_a_chunk_resumes_without_paying_twice(store, pool, banks, tmp_path,
                                                                                 monkeypatch):
    ledger = Ledger(pool)
    # Four lines per stored chunk, one line per posting transaction: the first chunk's two
    # accepted lines (1 and 3) are posted in two parts.
    monkeypatch.setattr(store_module, "CHUNK_LINES", 4)
    monkeypatch.setattr(execution, "POST_LINES", 1)
    batch = await _approved_batch(store, ledger, tmp_path, 100_000)
    real_post = execution.create_payout_transfers

    async def crash_on_second_part(connection, ledger_, prepared):
        # After the part's instructions were written: the crash must take them back too.
        if any(p.remittance_information.endswith(" line 3") for p in prepared.payouts):
            raise RuntimeError("crash")
        return await real_post(connection, ledger_, prepared)

    monkeypatch.setattr(execution, "create_payout_transfers", crash_on_second_part)
    with pytest.raises(RuntimeError):
        await execute_batch(store, ledger, batch.id, "checker", 3_000)
    async with pool.acquire() as connection:
        # Line 1 (first part) and line 7 (the other chunk in flight) were posted, line 3 not.
        posted = {r[0] for r in await connection.fetch("SELECT end_to_end_id FROM settlement_payments")}
        base_id = await execution.transfer_base_id(connection, batch.id)
    assert posted == {execution.line_end_to_end_id(base_id, line) for line in (1, 7)}
    monkeypatch.setattr(execution, "create_payout_transfers", real_post)
    done = await execute_batch(store, ledger, batch.id, "checker", 4_000)
    assert (done.lines, done.amount_minor, done.messages) == (3, 65_000, 3)
    async with pool.acquire() as connection:
        assert await connection.fetchval("SELECT count(*) FROM settlement_payments") == 3
        assert await connection.fetchval("SELECT count(*) FROM settlement_outbox") == 3
        assert (await funding(connection, ledger, "ELDERLY")).available_minor == 35_000
    (escrow,) = await ledger.lookup_accounts([execution.escrow_account_id(batch.id)])
    assert (escrow.credits_posted, escrow.debits_posted) == (65_000, 65_000)


async def test_a_run_whose_lease_was_taken_over_stops_at_its_next_part(store, pool, banks, tmp_path, monkeypatch):
    ledger = Ledger(pool)
    # As above: lines 1 and 3 in two parts of the first chunk, line 7 in the second chunk;
    # one chunk at a time, so the takeover falls between line 1's part and line 3's.
    monkeypatch.setattr(store_module, "CHUNK_LINES", 4)
    monkeypatch.setattr(execution, "POST_LINES", 1)
    monkeypatch.setattr(execution, "CHUNKS_IN_FLIGHT", 1)
    batch = await _approved_batch(store, ledger, tmp_path, 100_000)
    real_hold = execution._hold
    holds = []

    async def taken_over_after_first_part(connection, context):
        holds.append(context.holder)
        if len(holds) == 2:
            async with pool.acquire() as other:
                await other.execute("UPDATE disbursement_execution_leases SET holder = 'other' WHERE batch_id = $1",
                                    batch.id)
        return await real_hold(connection, context)

    monkeypatch.setattr(execution, "_hold", taken_over_after_first_part)
    with pytest.raises(ConflictError, match="another run took it over"):
        await execute_batch(store, ledger, batch.id, "checker", 3_000)
    async with pool.acquire() as connection:
        posted = {r[0] for r in await connection.fetch("SELECT end_to_end_id FROM settlement_payments")}
        base_id = await execution.transfer_base_id(connection, batch.id)
        assert await connection.fetchval("SELECT count(*) FROM settlement_outbox") == 1
        # The other run's lease is left alone.
        assert await connection.fetchval("SELECT holder FROM disbursement_execution_leases") == "other"
    assert posted == {execution.line_end_to_end_id(base_id, 1)}
    (escrow,) = await ledger.lookup_accounts([execution.escrow_account_id(batch.id)])
    assert (escrow.credits_posted, escrow.debits_posted) == (65_000, 30_000)


@pytest.mark.parametrize("left_s, renewals", [(None, ["step 1", "executed"]), (1, ["step 1", "part", "executed"])])
async def test_a_part_renews_the_lease_once_less_than_half_of_it_is_left(store, pool, banks, tmp_path, monkeypatch,
                                                                        left_s, renewals):
    ledger = Ledger(pool)
    batch = await _approved_batch(store, ledger, tmp_path, 100_000)
    real_hold, real_renew = execution._hold, execution._renew
    calls = []

    async def hold(connection, context):
        if left_s is not None:
            async with pool.acquire() as other:
                await other.execute("UPDATE disbursement_execution_leases SET expires_at = now() + make_interval("
                                    "secs => $2) WHERE batch_id = $1", batch.id, left_s)
        calls.append("hold")
        return await real_hold(connection, context)

    async def renew(connection, context):
        # Step 1 and the last step renew in their transactions; a part after its commit.
        calls.append("part" if calls and calls[-1] == "hold" and not connection.is_in_transaction() else
                     "executed" if "hold" in calls else "step 1")
        expires = await connection.fetchval("SELECT expires_at - now() FROM disbursement_execution_leases")
        assert expires.total_seconds() < execution.LEASE_S
        await real_renew(connection, context)
        expires = await connection.fetchval("SELECT expires_at - now() FROM disbursement_execution_leases")
        assert expires.total_seconds() > execution.LEASE_S / 2

    monkeypatch.setattr(execution, "_hold", hold)
    monkeypatch.setattr(execution, "_renew", renew)
    done = await execute_batch(store, ledger, batch.id, "checker", 3_000)
    assert (done.lines, done.amount_minor) == (3, 65_000)
    assert [c for c in calls if c != "hold"] == renewals and calls.count("hold") == 1


async def test_a_part_holds_the_lease_row_shared_so_a_takeover_waits_for_its_commit(store, pool, banks, tmp_path):
    # Two parts of one run hold the row at once; a run taking the lease over cannot until
    # both committed (lock_timeout makes the wait an error instead of a hang).
    batch = await _approved_batch(store, Ledger(pool), tmp_path, 100_000)
    context = execution._Context.__new__(execution._Context)
    object.__setattr__(context, "batch_id", batch.id)
    object.__setattr__(context, "holder", "run-a")
    takeover = ("INSERT INTO disbursement_execution_leases (batch_id, holder, expires_at) VALUES ($1, 'run-b', now())"
                " ON CONFLICT (batch_id) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at"
                " WHERE disbursement_execution_leases.expires_at <= now() RETURNING holder")
    async with pool.acquire() as first, pool.acquire() as second, pool.acquire() as other:
        await first.execute("INSERT INTO disbursement_execution_leases VALUES ($1, 'run-a', now() - interval '1 s')",
                            batch.id)
        await other.execute("SET lock_timeout = '200ms'")
        async with first.transaction(), second.transaction():
            await execution._hold(first, context)
            await execution._hold(second, context)
            with pytest.raises(asyncpg.LockNotAvailableError):
                await other.fetchval(takeover, batch.id)
        assert await other.fetchval(takeover, batch.id) == "run-b"
        async with first.transaction():
            with pytest.raises(ConflictError, match="another run took it over"):
                await execution._hold(first, context)


async def _approved_batch(store, ledger, tmp_path, fund_minor):
    """The cardholders registered, programme ELDERLY (subsidy, 500 yuan per person) funded
    with ``fund_minor`` at CCB, and :data:`BATCH` submitted by maker and approved by checker."""
    await _register_cardholders(store, tmp_path)
    await store.create_programme("ELDERLY", "subsidy", "高龄津贴", 50_000)
    await fund_programme(store, ledger, "ELDERLY", fund_minor, bank_code="CCB")
    batch, _ = await _submit(store, tmp_path, BATCH, "batch.csv")
    await store.approve(batch.id, "checker", batch.content_sha256, 2_000)
    return batch


async def _register_cardholders(store, tmp_path):
    rows = list(check_cardholder_rows(cardholder_lines(_write(tmp_path / "c.csv", CARDHOLDERS)), BinTable.load(), TODAY))
    await store.import_cardholders(rows)


def _write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


async def test_cardholders_card_accounts_are_opened_at_registration_once(store, pool, banks, tmp_path):
    ledger = Ledger(pool)
    await _register_cardholders(store, tmp_path)
    # Three active cardholders; the lost card (王五) gets no account.
    assert await execution.open_registered_card_accounts(pool, ledger) == 3
    assert await execution.open_registered_card_accounts(pool, ledger) == 0
    holders = await store.cardholders(["510121195803142150", "51340119720505003X", "510112198711023688",
                                       "11010519491231002X"])
    expected = {card_account_id(h.pan_token): h.bank_code for h in holders.values() if h.status.value == "active"}
    assert len(expected) == 3
    assert {a.id for a in await ledger.lookup_accounts(list(expected))} == set(expected)
    async with pool.acquire() as connection:
        attributed = {int.from_bytes(r["account_id"], "big"): r["bank_code"] for r in await connection.fetch(
            "SELECT account_id, bank_code FROM settlement_accounts WHERE kind = 'card'")}
    assert attributed == expected


async def test_cards_of_unregistered_issuing_banks_are_refused_before_anything_is_posted(store, pool, tmp_path):
    ledger = Ledger(pool)
    await registry.add_bank(pool, ledger, "CCB", "CCB bank")  # the payer's bank; no card's issuer
    batch = await _approved_batch(store, ledger, tmp_path, 100_000)
    before = await _ledger_state(pool)
    with pytest.raises(ConflictError) as refused:
        await execute_batch(store, ledger, batch.id, "checker", 3_000)
    assert str(refused.value) == ("batch 1: the cards' issuing banks BOC, ICBC are not registered "
                                  "(onecard banks add); nothing was posted")
    assert await _ledger_state(pool) == before
    assert (await store.batch(batch.id)).state is BatchState.approved


async def test_two_batches_whose_bases_are_drawn_in_one_millisecond_do_not_share_transfer_ids(
        store, pool, banks, tmp_path, monkeypatch):
    import ledger.ids
    frozen_ns = ledger.ids.time.time_ns()
    monkeypatch.setattr(ledger.ids.time, "time_ns", lambda: frozen_ns)  # every id in the same millisecond
    ledger_ = Ledger(pool)
    first = await _approved_batch(store, ledger_, tmp_path, 200_000)
    done = [await execute_batch(store, ledger_, first.id, "checker", 3_000)]
    async with pool.acquire() as connection:
        await connection.execute("DELETE FROM disbursement_payments")  # let the same people be paid again
        await connection.execute("UPDATE disbursement_batches SET period = '2026-10' WHERE id = $1", first.id)
    second, _ = await _submit(store, tmp_path, BATCH, "second.csv")
    await store.approve(second.id, "checker", second.content_sha256, 4_000)
    done.append(await execute_batch(store, ledger_, second.id, "checker", 5_000))
    assert [(d.lines, d.amount_minor) for d in done] == [(3, 65_000), (3, 65_000)]
    async with pool.acquire() as connection:
        assert await connection.fetchval("SELECT count(*) FROM settlement_payments") == 6
        assert (await funding(connection, ledger_, "ELDERLY")).available_minor == 200_000 - 2 * 65_000


@pytest.mark.parametrize("analyze_lines_min", [1, 10**9])  # with the lines' statistics refreshed, and without
async def test_execution_opens_the_card_accounts_not_opened_yet(store, pool, banks, tmp_path, monkeypatch,
                                                                analyze_lines_min):
    monkeypatch.setattr(execution, "ANALYZE_LINES_MIN", analyze_lines_min)
    ledger = Ledger(pool)
    batch = await _approved_batch(store, ledger, tmp_path, 100_000)
    holders = await store.cardholders(["510121195803142150", "510112198711023688", "11010519491231002X"])
    cards = {holders[number].name: card_account_id(holders[number].pan_token) for number in holders}
    # 张三's account was opened at import; 李四's and 赵七's were not (their bank came later).
    async with pool.acquire() as connection:
        await execution.open_card_accounts(connection, ledger, {cards["张三"]: holders["510121195803142150"].bank_code})
    done = await execute_batch(store, ledger, batch.id, "checker", 3_000)
    assert (done.lines, done.amount_minor) == (3, 65_000)
    accounts = {a.id: (a.debits_posted, a.credits_posted) for a in await ledger.lookup_accounts(list(cards.values()))}
    assert accounts == {cards["张三"]: (0, 30_000), cards["李四"]: (0, 20_000), cards["赵七"]: (0, 15_000)}
    async with pool.acquire() as connection:
        attributed = {int.from_bytes(r["account_id"], "big"): r["bank_code"] for r in await connection.fetch(
            "SELECT account_id, bank_code FROM settlement_accounts WHERE kind = 'card'")}
    assert attributed == {cards[h.name]: h.bank_code for h in holders.values()}
