"""``onecard synthetic cardholders|batch``: write synthetic files for demos and benchmarks.

The numbers are well-formed (GB 11643, Luhn, real Sichuan county codes and bank BINs) and
deterministic by ``--seed``; see :mod:`engine.synthetic`. Use them in test systems only.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from engine.disbursement.amount import parse_amount_minor
from engine.disbursement.errors import AmountError
from engine.disbursement.results import LineResult
from engine.errors import UsageError
from engine.output import add_command, emit
from engine.synthetic import Population, batch_lines, write_batch_csv, write_batch_xlsx, write_cardholders_csv

ENCODINGS = ("utf-8", "utf-8-sig", "gbk", "gb18030")
BAD_KINDS = [k.name for k in LineResult if k not in (LineResult.ok, LineResult.already_paid_in_period)]


def register(subparsers) -> None:
    group = subparsers.add_parser("synthetic", help="write synthetic cardholder and batch files (test data)")
    commands = group.add_subparsers(dest="synthetic_command", metavar="ACTION", required=True)

    cardholders = add_command(commands, "cardholders", "write a cardholder import CSV")
    cardholders.add_argument("out", type=Path, help="CSV file to write")
    cardholders.add_argument("--count", type=int, default=1000, help="number of cardholders (default 1000)")
    cardholders.add_argument("--seed", type=int, default=1)
    cardholders.add_argument("--encoding", choices=ENCODINGS, default="utf-8")
    cardholders.set_defaults(handler=_cardholders)

    batch = add_command(commands, "batch", "write a batch file (CSV or XLSX), optionally with its registry")
    batch.add_argument("out", type=Path, help="file to write (.xlsx writes XLSX, anything else CSV)")
    batch.add_argument("--lines", type=int, default=1000, help="number of lines (default 1000)")
    batch.add_argument("--seed", type=int, default=1)
    batch.add_argument("--encoding", choices=ENCODINGS, default="utf-8", help="CSV encoding")
    batch.add_argument("--per-person-max", default="500", metavar="YUAN",
                       help="programme per-person maximum; amount_over_limit lines exceed it (default 500)")
    batch.add_argument("--bad", action="append", default=[], metavar="REASON=N",
                       help=f"N lines failing with REASON (repeatable); one of: {', '.join(BAD_KINDS)}")
    batch.add_argument("--totals", choices=("row", "header", "none"), default="row", help="CSV totals (default row)")
    batch.add_argument("--numeric-ids", action="store_true", help="XLSX: identity numbers as number cells")
    batch.add_argument("--cardholders", type=Path, metavar="CSV",
                       help="also write the cardholder file that covers this batch")
    batch.set_defaults(handler=_batch)


def _positive(value: int, name: str) -> int:
    if value < 1:
        raise UsageError(f"{name} must be at least 1, got {value}")
    return value


def _bad_lines(specs: list[str]) -> dict[LineResult, int]:
    bad: dict[LineResult, int] = {}
    for spec in specs:
        name, _, count = spec.partition("=")
        if name not in BAD_KINDS or not count.isdigit():
            raise UsageError(f"--bad {spec!r}: expected REASON=N with REASON one of {', '.join(BAD_KINDS)}")
        bad[LineResult[name]] = bad.get(LineResult[name], 0) + int(count)
    return bad


def _cardholders(args: argparse.Namespace) -> int:
    people = Population(args.seed).people(_positive(args.count, "--count"))
    write_cardholders_csv(args.out, people, encoding=args.encoding)
    emit(args, str(args.out), {"path": str(args.out), "count": args.count})
    return 0


def _batch(args: argparse.Namespace) -> int:
    try:
        per_person_max_minor = parse_amount_minor(args.per_person_max)
    except AmountError as error:
        raise UsageError(f"--per-person-max: {error}") from None
    if per_person_max_minor < 10_000:
        raise UsageError("--per-person-max must be at least 100 yuan (the synthetic amounts go up to 300.00)")
    bad = _bad_lines(args.bad)
    lines_count = _positive(args.lines, "--lines")
    if sum(bad.values()) > lines_count - 1:
        raise UsageError(f"{sum(bad.values())} bad lines do not fit in {lines_count} lines")
    drawn: list = [] if args.cardholders else None
    lines = batch_lines(Population(args.seed), lines_count, per_person_max_minor=per_person_max_minor,
                        bad=bad, drawn=drawn)
    if args.out.suffix.lower() == ".xlsx":
        write_batch_xlsx(args.out, lines, numeric_ids=args.numeric_ids)
    else:
        write_batch_csv(args.out, list(lines) if args.totals == "header" else lines,
                        encoding=args.encoding, totals=args.totals)
    paths = [str(args.out)]
    if args.cardholders:
        write_cardholders_csv(args.cardholders, drawn, encoding=args.encoding)
        paths.append(str(args.cardholders))
    emit(args, "\n".join(paths), {"paths": paths, "lines": lines_count,
                                  "bad": {k.name: n for k, n in bad.items()}})
    return 0
