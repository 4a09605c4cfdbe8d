"""``onecard cardholders check|import FILE``: cardholder registry files.

Every row is checked (identity number, name, card number against the BIN table, status,
categories, duplicates in the file) and every bad row is listed with its line number and
reason; identity and card numbers are never printed. ``check`` stores nothing; ``import``
stores the good rows (identity number sealed and hashed, card number tokenised by the key
service; see :mod:`engine.disbursement.store`), replacing earlier rows of the same person.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
from collections import Counter
from pathlib import Path

from adapters.cardholder_file import cardholder_lines
from engine.disbursement.bank_card import BinTable
from engine.disbursement.execution import open_registered_card_accounts
from engine.config import Config
from engine.disbursement.registry import CardholderRow, ImportResult, check_cardholder_rows
from engine.disbursement.store import open_store
from engine.output import add_command, emit
from ledger.service import Ledger


def register(subparsers) -> None:
    group = subparsers.add_parser("cardholders", help="cardholder registry files")
    commands = group.add_subparsers(dest="cardholders_command", metavar="ACTION", required=True)
    check = add_command(commands, "check", "check a cardholder file (CSV/XLSX); nothing is stored")
    check.add_argument("file", type=Path)
    check.add_argument("--encoding", help="CSV encoding (utf-8, gbk, gb18030); detected when omitted")
    check.set_defaults(handler=_check)
    imported = add_command(commands, "import", "check a cardholder file and store its good rows")
    imported.add_argument("file", type=Path)
    imported.add_argument("--encoding", help="CSV encoding (utf-8, gbk, gb18030); detected when omitted")
    imported.set_defaults(handler=_import)


def read_cardholders(path: Path, encoding: str | None) -> list[CardholderRow]:
    """Every checked row of a cardholder file (for small files: the list is kept in memory)."""
    return list(check_cardholder_rows(cardholder_lines(path, encoding), BinTable.load(),
                                      datetime.datetime.now(datetime.UTC).date()))


def _report(args: argparse.Namespace, rows: list[CardholderRow], stored: int | None) -> int:
    bad = [r for r in rows if r.result is not ImportResult.ok]
    counts = Counter(r.result.name for r in rows)
    stored_text = f", {stored} stored" if stored is not None else ""
    lines = [f"{len(rows)} rows: {len(rows) - len(bad)} ok, {len(bad)} rejected{stored_text}"]
    lines += [f"line {r.line}: {r.result.name}: {r.detail}" for r in bad]
    emit(args, "\n".join(lines), {
        "rows": len(rows), "stored": stored, "results": dict(sorted(counts.items())),
        "rejected": [{"line": r.line, "reason": r.result.name, "detail": r.detail} for r in bad],
    })
    # Bad rows are outcomes, not a failure of the command.
    return 0


def _check(args: argparse.Namespace) -> int:
    return _report(args, read_cardholders(args.file, args.encoding), None)


def _import(args: argparse.Namespace) -> int:
    rows = read_cardholders(args.file, args.encoding)

    async def run() -> int:
        async with open_store(Config.from_env()) as store:
            stored = await store.import_cardholders(rows)
            # Their card accounts now rather than at each one's first payout (a batch's
            # execution opens those of banks registered later).
            await open_registered_card_accounts(store.pool, Ledger(store.pool))
            return stored

    return _report(args, rows, asyncio.run(run()))
