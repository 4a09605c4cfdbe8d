"""``onecard cardholders check FILE``: check a cardholder import file without storing it.

Every row is checked as ``onecard cardholders import`` will (identity number, name, card
number against the BIN table, status, categories, duplicates in the file) and every bad
row is listed with its line number and reason; identity and card numbers are not printed.
"""

from __future__ import annotations

import argparse
import datetime
from collections import Counter
from pathlib import Path

from adapters.cardholder_file import cardholder_lines
from engine.disbursement.bank_card import BinTable
from engine.disbursement.registry import CardholderRow, ImportResult, check_cardholder_rows
from engine.output import add_command, emit


def register(subparsers) -> None:
    group = subparsers.add_parser("cardholders", help="cardholder registry files")
    commands = group.add_subparsers(dest="cardholders_command", metavar="ACTION", required=True)
    check = add_command(commands, "check", "check a cardholder file (CSV/XLSX); nothing is stored")
    check.add_argument("file", type=Path)
    check.add_argument("--encoding", help="CSV encoding (utf-8, gbk, gb18030); detected when omitted")
    check.set_defaults(handler=_check)


def read_cardholders(path: Path, encoding: str | None) -> list[CardholderRow]:
    """Every checked row of a cardholder file (for small files: the list is kept in memory)."""
    return list(check_cardholder_rows(cardholder_lines(path, encoding), BinTable.load(),
                                      datetime.datetime.now(datetime.UTC).date()))


def _check(args: argparse.Namespace) -> int:
    rows = read_cardholders(args.file, args.encoding)
    bad = [r for r in rows if r.result is not ImportResult.ok]
    counts = Counter(r.result.name for r in rows)
    lines = [f"{len(rows)} rows: {len(rows) - len(bad)} ok, {len(bad)} rejected"]
    lines += [f"line {r.line}: {r.result.name}: {r.detail}" for r in bad]
    emit(args, "\n".join(lines), {
        "rows": len(rows), "results": dict(sorted(counts.items())),
        "rejected": [{"line": r.line, "reason": r.result.name, "detail": r.detail} for r in bad],
    })
    return 0
