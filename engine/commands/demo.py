"""``onecard demo``: a ledger smoke run on the configured database (embedded by default).

Creates a funding account, an operator account and two card accounts, then posts: a
prefunding, a linked chain (two top-ups that succeed or fail together), a two-phase fare
(pending then posted), a refused overdraft, and runs the audit. Every run uses fresh
ids, so it works any number of times on the same database.
"""

from __future__ import annotations

import argparse
import asyncio

from engine.commands.audit import render
from engine.config import Config
from engine.output import add_command, emit
from ledger import db
from ledger.audit import audit
from ledger.batcher import GroupCommitBatcher
from ledger.ids import new_id
from ledger.results import CreateAccountResult, CreateTransferResult
from ledger.service import Ledger
from ledger.types import Account, AccountFlags, Transfer, TransferFlags

LEDGER_CNY = 156  # ISO 4217 numeric code of the renminbi: amounts are fen.
CODE_FUNDING, CODE_OPERATOR, CODE_CARD, CODE_BANK = 1, 2, 3, 4
CODE_TOP_UP, CODE_FARE, CODE_PREFUND = 10, 11, 12


def register(subparsers) -> None:
    add_command(subparsers, "demo", "run a ledger smoke run and audit it").set_defaults(handler=_demo)


def _demo(args: argparse.Namespace) -> int:
    summary = asyncio.run(_run())
    lines = [
        f"accounts: funding {summary['funding']:032x}, operator {summary['operator']:032x}",
        f"          cards {summary['cards'][0]:032x}, {summary['cards'][1]:032x}",
    ]
    lines += [f"{name}: {', '.join(results)}" for name, results in summary["steps"]]
    lines += [f"card balances (fen): {summary['card_balances_minor']}", render(summary["audit"])]
    emit(args, "\n".join(lines), {**summary, "steps": dict(summary["steps"])})
    return 0 if summary["audit"].ok else 1


async def _run() -> dict:
    pool = await db.open_database(Config.from_env(), size_max=4)
    try:
        ledger = Ledger(pool)
        funding, operator, bank = new_id(), new_id(), new_id()
        cards = [new_id(), new_id()]
        accounts = [
            Account(id=bank, ledger=LEDGER_CNY, code=CODE_BANK),
            Account(id=funding, ledger=LEDGER_CNY, code=CODE_FUNDING, flags=AccountFlags.debits_must_not_exceed_credits),
            Account(id=operator, ledger=LEDGER_CNY, code=CODE_OPERATOR),
            *(Account(id=card, ledger=LEDGER_CNY, code=CODE_CARD,
                      flags=AccountFlags.debits_must_not_exceed_credits | AccountFlags.history) for card in cards),
        ]
        steps: list[tuple[str, list[str]]] = []
        account_results = await ledger.create_accounts(accounts)
        assert all(r == CreateAccountResult.ok for r in account_results), account_results
        steps.append(("create_accounts", [r.name for r in account_results]))

        def transfer(debit: int, credit: int, amount: int, code: int, flags: int = 0, **fields: int) -> Transfer:
            return Transfer(id=new_id(), debit_account_id=debit, credit_account_id=credit, amount=amount,
                            ledger=LEDGER_CNY, code=code, flags=flags, **fields)

        async def post(name: str, transfers: list[Transfer]) -> list[CreateTransferResult]:
            results = await ledger.create_transfers(transfers)
            steps.append((name, [f"{t.id:032x} {r.name}" for t, r in zip(transfers, results)]))
            return results

        await post("prefund", [transfer(bank, funding, 100_000, CODE_PREFUND)])
        await post("linked top-ups", [
            transfer(funding, cards[0], 5_000, CODE_TOP_UP, TransferFlags.linked),
            transfer(funding, cards[1], 3_000, CODE_TOP_UP),
        ])
        fare = transfer(cards[0], operator, 400, CODE_FARE, TransferFlags.pending, timeout_s=300)
        await post("fare hold", [fare])
        async with GroupCommitBatcher(ledger, flush_delay_ms=2) as batcher:
            posted = Transfer(id=new_id(), pending_id=fare.id, amount=250, flags=TransferFlags.post_pending_transfer)
            overdraft = transfer(cards[1], operator, 1_000_000, CODE_FARE)
            results = await asyncio.gather(batcher.submit(posted), batcher.submit(overdraft))
            steps.append(("fare post 250 of 400 + overdraft (batched)",
                          [f"{t.id:032x} {r.name}" for t, r in zip((posted, overdraft), results)]))
        balances = {
            f"{a.id:032x}": a.credits_posted - a.debits_posted - a.debits_pending
            for a in await ledger.lookup_accounts(cards)
        }
        async with pool.acquire() as connection:
            report = await audit(connection)
        return {"funding": funding, "operator": operator, "cards": cards, "steps": steps,
                "card_balances_minor": balances, "audit": report}
    finally:
        await pool.close()
