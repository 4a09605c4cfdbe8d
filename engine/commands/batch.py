"""``onecard batch check FILE --cardholders FILE``: validate a batch file without storing it.

A dry run of ``onecard batch submit``'s validation against a cardholder file instead of
the registry (and with no payment history, so ``already_paid_in_period`` never occurs):
every bad line is listed with its line number and reason, the file's totals are checked,
and ``--result OUT.csv`` writes the department's result file.
"""

from __future__ import annotations

import argparse
import datetime
from pathlib import Path

from adapters.batch_file import open_batch_file
from engine.commands.cardholders import read_cardholders
from engine.disbursement.amount import format_minor, parse_amount_minor
from engine.disbursement.errors import AmountError
from engine.disbursement.lifecycle import LineStatus
from engine.disbursement.registry import CardholderRecord, ImportResult
from engine.disbursement.result_file import result_row, write_result_csv
from engine.disbursement.results import LineResult
from engine.disbursement.validation import BatchValidator, ValidationContext, validate_source
from engine.errors import UsageError
from engine.output import add_command, emit


def register(subparsers) -> None:
    group = subparsers.add_parser("batch", help="disbursement batches")
    commands = group.add_subparsers(dest="batch_command", metavar="ACTION", required=True)
    check = add_command(commands, "check", "validate a batch file against a cardholder file; nothing is stored")
    check.add_argument("file", type=Path, help="batch file: CSV, XLSX or pain.001.001.09 XML")
    check.add_argument("--cardholders", type=Path, required=True, metavar="FILE",
                       help="cardholder file (CSV/XLSX) standing in for the registry")
    check.add_argument("--per-person-max", required=True, metavar="YUAN", help="programme per-person maximum")
    check.add_argument("--encoding", help="CSV encoding of the batch (utf-8, gbk, gb18030); detected when omitted")
    check.add_argument("--result", type=Path, metavar="OUT.csv", help="write the result file (UTF-8 with BOM)")
    check.set_defaults(handler=_check)


def _check(args: argparse.Namespace) -> int:
    try:
        per_person_max_minor = parse_amount_minor(args.per_person_max)
    except AmountError as error:
        raise UsageError(f"--per-person-max: {error}") from None
    if per_person_max_minor <= 0:
        raise UsageError("--per-person-max must be more than 0")
    registry = {
        row.id_number: CardholderRecord(row.id_number, row.name, row.status, row.card_number,
                                        row.card_number[-4:], row.bank_code, row.categories)
        for row in read_cardholders(args.cardholders, None) if row.result is ImportResult.ok
    }
    source = open_batch_file(args.file, args.encoding)
    validator = BatchValidator(ValidationContext(
        registry.get, lambda _: False, lambda pan: pan, per_person_max_minor,
        datetime.datetime.now(datetime.UTC).date()))
    rejected: list[dict[str, object]] = []
    result_rows = []
    for outcome in validate_source(source, validator):
        accepted = outcome.result is LineResult.ok
        if not accepted:
            rejected.append({"line": outcome.line.line, "reason": outcome.result.name, "detail": outcome.detail})
        if args.result:
            result_rows.append(result_row(outcome.line, LineStatus.accepted if accepted else LineStatus.rejected,
                                          outcome.result))
    summary = validator.finish(source.declared_totals())
    if args.result:
        with open(args.result, "w", encoding="utf-8-sig", newline="") as stream:
            write_result_csv(stream, result_rows)
    lines = [f"{summary.lines_count} lines: {summary.accepted_count} accepted "
             f"({format_minor(summary.accepted_minor)} yuan), {len(rejected)} rejected; "
             f"content sha256 {summary.content_sha256}"]
    lines += [f"line {r['line']}: {r['reason']}: {r['detail']}" for r in rejected]
    emit(args, "\n".join(lines), {
        "lines": summary.lines_count, "accepted": summary.accepted_count,
        "accepted_minor": summary.accepted_minor, "results": summary.results,
        "content_sha256": summary.content_sha256, "rejected": rejected,
    })
    return 0
