"""The audit passes on an honest ledger and catches each kind of tampering."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ledger.audit import audit
from ledger.results import CreateTransferResult as R
from ledger.service import Ledger
from ledger.types import Account, AccountFlags as AF, Transfer, TransferFlags as F

REPO = Path(__file__).resolve().parents[2]


async def populated(pool) -> Ledger:
    ledger = Ledger(pool)
    await ledger.create_accounts([Account(id=1, ledger=1, code=1), Account(id=2, ledger=1, code=1, flags=AF.debits_must_not_exceed_credits),
                                  Account(id=3, ledger=2, code=1), Account(id=4, ledger=2, code=1)])
    results = await ledger.create_transfers([
        Transfer(id=10, debit_account_id=1, credit_account_id=2, amount=100, ledger=1, code=1),
        Transfer(id=11, debit_account_id=2, credit_account_id=1, amount=30, ledger=1, code=1, flags=F.pending, timeout_s=1),
        Transfer(id=12, debit_account_id=2, credit_account_id=1, amount=20, ledger=1, code=1, flags=F.pending),
        Transfer(id=13, pending_id=12, amount=5, flags=F.post_pending_transfer),
        Transfer(id=14, debit_account_id=3, credit_account_id=4, amount=7, ledger=2, code=1),
    ])
    assert results == [R.ok] * 5
    [hold] = await ledger.lookup_transfers([11])
    assert await ledger.expire_pending_transfers(now_ns=hold.timestamp + 2 * 10**9) == 1
    # Plain transfers alone: committed by the fast path, journaled by digest (kind 4).
    assert await ledger.create_transfers([Transfer(id=15, debit_account_id=4, credit_account_id=3, amount=8, ledger=2, code=1),
                                          Transfer(id=16, debit_account_id=4, credit_account_id=3, amount=9, ledger=2, code=1)]) == [R.ok] * 2
    assert ledger.fast_batches == 1
    return ledger


def breaches(report) -> dict[str, list[str]]:
    return {check.name: check.breaches for check in report.checks if not check.ok}


async def test_honest_ledger_passes(pool):
    await populated(pool)
    async with pool.acquire() as connection:
        report = await audit(connection)
    assert report.ok, report
    assert [c.examined for c in report.checks] == [
        "2 ledgers", "4 accounts against 7 transfers", "1 accounts with a balance limit",
        "4 journal batches covering 12 rows"]


@pytest.mark.parametrize(("tamper", "failing"), [
    ("UPDATE ledger_transfers SET amount = 99 WHERE amount = 100", {"balances_match_transfers", "hash_chain_intact"}),
    ("UPDATE ledger_transfers SET user_data_32 = 1 WHERE amount = 7", {"hash_chain_intact"}),
    ("UPDATE ledger_accounts SET debits_posted = debits_posted + 1, credits_posted = credits_posted + 1 "
     "WHERE id = '\\x00000000000000000000000000000001'", {"balances_match_transfers"}),
    ("UPDATE ledger_accounts SET credits_posted = 0 WHERE flags = 2",
     {"balances_match_transfers", "limits_respected", "debits_equal_credits"}),
    ("DELETE FROM ledger_transfers WHERE amount = 7", {"balances_match_transfers", "hash_chain_intact"}),
    ("DELETE FROM ledger_expiries", {"balances_match_transfers", "hash_chain_intact"}),
    ("UPDATE ledger_journal SET hash = prev_hash WHERE sequence = 2", {"hash_chain_intact"}),
    ("UPDATE ledger_accounts SET code = 9 WHERE ledger = 2", {"hash_chain_intact"}),
    ("UPDATE ledger_transfers SET user_data_64 = 1 WHERE amount = 9", {"hash_chain_intact"}),
    ("UPDATE ledger_transfers SET amount = 10 WHERE amount = 9", {"balances_match_transfers", "hash_chain_intact"}),
    ("UPDATE ledger_transfers SET timestamp = timestamp + 1 WHERE amount = 8", {"hash_chain_intact"}),
    ("UPDATE ledger_journal SET timestamp_first = timestamp_first - 1, timestamp_last = timestamp_last - 1 "
     "WHERE kind = 4", {"hash_chain_intact"}),
])
async def test_tampering_is_detected(pool, tamper, failing):
    await populated(pool)
    async with pool.acquire() as connection:
        await connection.execute(tamper)
        report = await audit(connection)
    assert not report.ok
    assert set(breaches(report)) == failing


def run_cli(db_url, *args):
    env = {**os.environ, "ONECARD_DATABASE_URL": db_url}
    return subprocess.run([sys.executable, "-m", "engine.cli", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)


async def test_cli_audit_exit_codes(pool, db_url):
    await populated(pool)
    passed = run_cli(db_url, "audit")
    assert passed.returncode == 0, passed.stderr
    assert passed.stdout.splitlines()[-1] == "audit passed"
    assert "ok     hash_chain_intact: 4 journal batches covering 12 rows" in passed.stdout
    async with pool.acquire() as connection:
        await connection.execute("UPDATE ledger_transfers SET amount = 99 WHERE amount = 100")
    failed = run_cli(db_url, "audit", "--json")
    assert failed.returncode == 1
    assert '"ok":false' in failed.stdout and "hash mismatch" in failed.stdout
