"""Attacks on execute: the registry changing after approval, a crash between parts on the
ledger's fast path, a refused batch."""

import pytest

from adapters.cardholder_file import cardholder_lines
from engine.disbursement import execution, store as store_module
from engine.disbursement.bank_card import BinTable
from engine.disbursement.errors import InsufficientFundsError
from engine.disbursement.execution import execute_batch, funding
from engine.disbursement.lifecycle import BatchState
from engine.disbursement.registry import check_cardholder_rows
from engine.errors import ConflictError
from ledger import service
from ledger.audit import audit
from ledger.service import Ledger
from tests.disbursement.test_execution import (TODAY, _approved_batch, _ledger_state, _write,  # noqa: F401
                                               banks, store)


async def _audit_ok(pool):
    async with pool.acquire() as connection:
        report = await audit(connection)
    assert report.ok, report


async def test_a_card_replaced_in_the_registry_after_approval_is_a_clear_refusal(store, pool, banks, tmp_path):
    # 张三's card is replaced (a new card number, so a new token) after the batch was
    # approved: his accepted lines no longer join a registered card.
    ledger = Ledger(pool)
    batch = await _approved_batch(store, ledger, tmp_path, 100_000)
    replaced = _write(tmp_path / "replaced.csv", "身份证号码,姓名,社会保障卡号,状态\n"
                                                 "510121195803142150,张三,6217000000000000038,正常\n")
    await store.import_cardholders(list(check_cardholder_rows(cardholder_lines(replaced), BinTable.load(), TODAY)))
    before = await _ledger_state(pool)
    with pytest.raises(ConflictError) as refused:
        await execute_batch(store, ledger, batch.id, "checker", 3_000)
    assert str(refused.value) == (f"batch {batch.id}: 1 accepted line(s) no longer match a registered card (the "
                                  "cardholder registry changed since validation); nothing was posted, submit a "
                                  "corrected file")
    assert await _ledger_state(pool) == before
    assert (await store.batch(batch.id)).state is BatchState.approved
    async with pool.acquire() as connection:
        assert await connection.fetchval("SELECT count(*) FROM disbursement_payments") == 0
        assert await connection.fetchval("SELECT count(*) FROM disbursement_execution_leases") == 0


async def test_a_crash_between_parts_on_the_fast_path_resumes_paying_once(store, pool, banks, tmp_path, monkeypatch):
    # Every part of one line goes through the ledger's nested fast path (savepoint).
    monkeypatch.setattr(service, "FAST_NESTED_ROWS_MIN", 1)
    monkeypatch.setattr(store_module, "CHUNK_LINES", 4)
    monkeypatch.setattr(execution, "POST_LINES", 1)
    ledger = Ledger(pool)
    batch = await _approved_batch(store, ledger, tmp_path, 100_000)
    real_post = execution.create_payout_transfers
    calls = []

    async def crash_on_second_part(connection, ledger_, prepared):
        calls.append(prepared)
        if any(p.remittance_information.endswith(" line 3") for p in prepared.payouts) and len(calls) < 4:
            raise RuntimeError("crash")
        return await real_post(connection, ledger_, prepared)

    monkeypatch.setattr(execution, "create_payout_transfers", crash_on_second_part)
    with pytest.raises(RuntimeError):
        await execute_batch(store, ledger, batch.id, "checker", 3_000)
    assert ledger.fast_batches >= 1
    monkeypatch.setattr(execution, "create_payout_transfers", real_post)
    done = await execute_batch(store, ledger, batch.id, "checker", 4_000)
    assert (done.lines, done.amount_minor, done.messages) == (3, 65_000, 3)
    # And once more: an executed batch is refused, nothing moves.
    before = await _ledger_state(pool)
    with pytest.raises(ConflictError):
        await execute_batch(store, ledger, batch.id, "checker", 5_000)
    assert await _ledger_state(pool) == before
    async with pool.acquire() as connection:
        assert await connection.fetchval("SELECT count(*) FROM settlement_payments") == 3
        assert await connection.fetchval("SELECT count(*) FROM disbursement_payments") == 3
        assert (await funding(connection, ledger, "ELDERLY")).available_minor == 35_000
    (escrow,) = await ledger.lookup_accounts([execution.escrow_account_id(batch.id)])
    assert (escrow.credits_posted, escrow.debits_posted, escrow.debits_pending) == (65_000, 65_000, 0)
    await _audit_ok(pool)


async def test_a_refused_batch_posts_nothing_and_can_run_once_funded(store, pool, banks, tmp_path, monkeypatch):
    monkeypatch.setattr(service, "FAST_NESTED_ROWS_MIN", 1)
    ledger = Ledger(pool)
    batch = await _approved_batch(store, ledger, tmp_path, 64_999)  # one fen short of 650 yuan
    before = await _ledger_state(pool)
    with pytest.raises(InsufficientFundsError):
        await execute_batch(store, ledger, batch.id, "checker", 3_000)
    assert await _ledger_state(pool) == before
    assert (await store.batch(batch.id)).state is BatchState.approved
    async with pool.acquire() as connection:
        assert await connection.fetchval("SELECT count(*) FROM disbursement_payments") == 0
        assert await connection.fetchval("SELECT count(*) FROM disbursement_execution_leases") == 0
    await execution.fund_programme(store, ledger, "ELDERLY", 1, bank_code="CCB")
    done = await execute_batch(store, ledger, batch.id, "checker", 4_000)
    assert (done.lines, done.amount_minor) == (3, 65_000)
    async with pool.acquire() as connection:
        assert (await funding(connection, ledger, "ELDERLY")).available_minor == 0
    await _audit_ok(pool)
