"""``onecard reconcile FILE --bank CODE``: match a camt.053 statement against the engine."""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path

from adapters.iso20022 import camt053
from adapters.reconcile import reconcile
from engine.api.banks import reconcile_view
from engine.errors import UsageError
from engine.output import add_command, emit
from engine.settlement.outbox import check_statement_account, expected_statement
from engine.settlement.registry import get_bank
from engine.settlement.runtime import run_with_database

EXIT_DIFFERENCES = 1


def register(subparsers) -> None:
    parser = add_command(subparsers, "reconcile",
                         "match a bank's camt.053 statement to engine payouts; exit 1 on any difference")
    parser.add_argument("statement", type=Path, help="camt.053.001.08 XML file")
    parser.add_argument("--bank", required=True, help="bank code of the statement's sender")
    parser.add_argument("--date", help="only payouts whose status was recorded on this UTC date (YYYY-MM-DD)")
    parser.set_defaults(handler=_reconcile)


def _reconcile(args: argparse.Namespace) -> int:
    try:
        data = args.statement.read_bytes()
    except OSError as error:
        raise UsageError(f"statement: cannot read {args.statement} ({error.strerror})") from None
    try:
        booked_on = dt.date.fromisoformat(args.date) if args.date else None
    except ValueError:
        raise UsageError(f"--date {args.date!r}: must be YYYY-MM-DD") from None
    statement = camt053.parse(data)

    async def work(pool, _ledger):
        async with pool.acquire() as connection:
            await get_bank(connection, args.bank)  # an unknown bank: refused, not "all unknown"
            await check_statement_account(connection, args.bank, statement.account)
            return await expected_statement(connection, args.bank, booked_on=booked_on)

    report = reconcile(run_with_database(work), statement.entries)
    view = reconcile_view(statement.message_id, report)
    lines = [f"{len(report.matched)} matched"]
    for name in ("mismatched", "unmatched_engine", "unmatched_statement", "pending"):
        for item in getattr(view, name):
            lines.append(f"{name}: {item.end_to_end_id} {item.outcome} {' '.join(item.fields)}".rstrip())
    lines.append("clean" if report.clean else "DIFFERENCES")
    emit(args, "\n".join(lines), view)
    return 0 if report.clean else EXIT_DIFFERENCES
