"""``onecard batch check|submit|show|approve|cancel|execute|report``: disbursement batches.

``check`` is a dry run against a cardholder file (nothing stored, no payment history, so
``already_paid_in_period`` never occurs); ``submit`` validates against the registry and
the programme's payments in the period, stores the batch as VALIDATED and prints its id.
Both list every bad line with its line number and reason, and refuse a file whose totals
or encoding are wrong. ``approve`` must be run by another user than the submitter and is
bound to the batch's content hash (``--hash`` confirms the hash the approver reviewed).
``execute`` posts the accepted lines and queues each issuing bank's pacs.008
(:mod:`engine.disbursement.execution`); ``report`` writes pain.002.001.10 or the CSV result
file with each line's status. Submit and execute show a progress bar on stderr for large
files when stderr is a terminal (never on stdout, so ``--json`` output stays clean).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import shutil
import sys
import tempfile
import time
from pathlib import Path

from adapters.batch_file import open_batch_file
from engine.arguments import checked, integer_in, record_id
from engine.commands.cardholders import read_cardholders
from engine.commands.programme import programme_code, yuan_argument
from engine.config import Config
from engine.disbursement.amount import format_minor
from engine.disbursement.lifecycle import BatchState, LineStatus, check_content_hash
from engine.disbursement.registry import CardholderRecord, ImportResult
from engine.disbursement.result_file import result_row, result_writer
from engine.disbursement.results import LineResult
from engine.disbursement.execution import execute_batch
from engine.disbursement.lines import LineSpool
from engine.disbursement.report import REPORT_FORMATS, write_report
from engine.disbursement.store import BATCH_LIST_DEFAULT, BATCH_LIST_MAX, BatchRecord, open_store
from engine.disbursement.users import normalise_user
from engine.disbursement.validation import BatchSummary, BatchValidator, LineOutcome, ValidationContext, validate_source
from engine.errors import UsageError
from engine.period import check_period
from engine.output import Progress, add_command, emit, table, utc_text
from ledger.service import Ledger

LARGE_FILE_BYTES = 1_000_000
USER_HELP = "the acting user (stored and compared case-folded, NFKC: 'ＭＡＫＥＲ' is 'maker')"
user_name = checked(normalise_user)


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

    submit = add_command(commands, "submit", "validate a batch file and store it for approval; prints its id")
    submit.add_argument("file", type=Path, help="batch file: CSV, XLSX or pain.001.001.09 XML")
    submit.add_argument("--programme", required=True, type=programme_code)
    submit.add_argument("--period", required=True, metavar="YYYY-MM")
    submit.add_argument("--as", dest="user", required=True, type=user_name, metavar="USER", help=USER_HELP)
    submit.add_argument("--encoding", help="CSV encoding (utf-8, gbk, gb18030); detected when omitted")
    submit.add_argument("--result", type=Path, metavar="OUT.csv", help="write the result file (UTF-8 with BOM)")
    submit.set_defaults(handler=_submit)

    listing = add_command(commands, "list", "batches, newest first: id, state, programme, period, totals")
    listing.add_argument("--programme", type=programme_code, metavar="CODE", help="only this programme's batches")
    listing.add_argument("--state", choices=[s.value for s in BatchState], help="only batches in this state")
    listing.add_argument("--limit", type=integer_in(1, BATCH_LIST_MAX), default=BATCH_LIST_DEFAULT, metavar="N",
                         help=f"at most N batches (default {BATCH_LIST_DEFAULT}, at most {BATCH_LIST_MAX})")
    listing.set_defaults(handler=_list)

    show = add_command(commands, "show", "a batch's state, totals and history")
    show.add_argument("id", type=record_id)
    show.set_defaults(handler=_show)

    approve = add_command(commands, "approve", "approve a validated batch (another user than the submitter)")
    approve.add_argument("id", type=record_id)
    approve.add_argument("--as", dest="user", required=True, type=user_name, metavar="USER", help=USER_HELP)
    approve.add_argument("--hash", type=checked(check_content_hash), metavar="SHA256",
                         help="the content hash reviewed: 64 hex digits, either case, as batch show prints it "
                              "(default: the stored one)")
    approve.set_defaults(handler=_approve)

    cancel = add_command(commands, "cancel", "cancel a batch that is not executing or final")
    cancel.add_argument("id", type=record_id)
    cancel.add_argument("--as", dest="user", required=True, type=user_name, metavar="USER", help=USER_HELP)
    cancel.set_defaults(handler=_cancel)

    execute = add_command(commands, "execute", "post an approved batch from its programme's funding account and "
                                               "queue each bank's pacs.008 (all or nothing; resumes after a crash)")
    execute.add_argument("id", type=record_id)
    execute.add_argument("--as", dest="user", default="system", type=user_name, metavar="USER", help=USER_HELP)
    execute.set_defaults(handler=_execute)

    report = add_command(commands, "report", "a batch's outcome per line: pain.002.001.10 or the CSV result file")
    report.add_argument("id", type=record_id)
    report.add_argument("--format", required=True, choices=REPORT_FORMATS)
    report.add_argument("--output", type=Path, metavar="FILE", help="write here instead of stdout")
    report.set_defaults(handler=_report)


class _Report:
    """Collects rejected lines and, if asked, writes the result-file rows of one validation
    as they come (to ``<file>.part``, moved into place by :meth:`finish`)."""

    def __init__(self, result_path: Path | None) -> None:
        self.result_path = result_path
        self.rejected: list[dict[str, object]] = []
        self._partial = result_path.with_name(result_path.name + ".part") if result_path else None
        self._stream = open(self._partial, "w", encoding="utf-8-sig", newline="") if self._partial else None
        self._writer = result_writer(self._stream) if self._stream else None

    def add(self, outcome: LineOutcome) -> None:
        accepted = outcome.result is LineResult.ok
        if not accepted:
            self.rejected.append({"line": outcome.line.line, "reason": outcome.result.name, "detail": outcome.detail})
        if self._writer:
            self._writer.writerow(result_row(outcome.line, LineStatus.accepted if accepted else LineStatus.rejected,
                                             outcome.result))

    def finish(self, args: argparse.Namespace, summary: BatchSummary, batch_id: int | None) -> None:
        if self._stream:
            self._stream.close()
            self._partial.replace(self.result_path)
        head = f"{batch_id}\n" if batch_id is not None else ""
        lines = [f"{head}{summary.lines_count} lines: {summary.accepted_count} accepted "
                 f"({format_minor(summary.accepted_minor)} yuan), {len(self.rejected)} rejected; "
                 f"content sha256 {summary.content_sha256}"]
        lines += [f"line {r['line']}: {r['reason']}: {r['detail']}" for r in self.rejected]
        emit(args, "\n".join(lines), {
            "id": batch_id, "lines": summary.lines_count, "accepted": summary.accepted_count,
            "accepted_minor": summary.accepted_minor, "results": summary.results,
            "content_sha256": summary.content_sha256, "rejected": self.rejected,
        })


def _today() -> datetime.date:
    return datetime.datetime.now(datetime.UTC).date()


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _check(args: argparse.Namespace) -> int:
    per_person_max_minor = yuan_argument("--per-person-max", args.per_person_max)
    if per_person_max_minor <= 0:
        raise UsageError("--per-person-max must be more than 0")
    registry = {
        row.id_number: CardholderRecord(row.id_number, row.name, row.status, row.card_number,
                                        row.card_number[-4:], row.bank_code, row.categories)
        for row in read_cardholders(args.cardholders, None) if row.result is ImportResult.ok
    }
    source = open_batch_file(args.file, args.encoding)
    validator = BatchValidator(ValidationContext(registry.get, lambda _: False, lambda pan: pan,
                                                 per_person_max_minor, _today()))
    report = _Report(args.result)
    for outcome in validate_source(source, validator):
        report.add(outcome)
    report.finish(args, validator.finish(source.declared_totals()), None)
    return 0


def _submit(args: argparse.Namespace) -> int:
    check_period(args.period, "--period")
    source = open_batch_file(args.file, args.encoding)
    report = _Report(args.result)
    spool = LineSpool()

    async def run():
        async with open_store(Config.from_env()) as store:
            programme = await store.programme(args.programme)
            with Progress("validating", None, enabled=_large(args.file)) as progress:
                def counted(outcome: LineOutcome) -> None:
                    report.add(outcome)
                    progress.advance(1)
                summary = await store.validate(source, programme, args.period, _today(), counted, spool)
            batch = await store.submit(programme.code, args.period, args.user, summary, _now_ms(), spool)
            return summary, batch

    try:
        summary, batch = asyncio.run(run())
    finally:
        spool.close()
    report.finish(args, summary, batch.id)
    return 0


def _list(args: argparse.Namespace) -> int:
    state = BatchState(args.state) if args.state else None

    async def run():
        async with open_store(Config.from_env()) as store:
            return await store.list_batches(programme_code=args.programme, state=state, limit=args.limit)

    batches = asyncio.run(run())
    header = ("id", "state", "programme", "period", "lines", "accepted", "yuan", "submitted by")
    rows = [(str(b.id), b.state.value, b.programme_code, b.period, str(b.lines_count), str(b.accepted_count),
             format_minor(b.accepted_minor), b.submitted_by) for b in batches]
    text = table([header, *rows]) if rows else "no batches"
    emit(args, text, [_batch_json(b) for b in batches])
    return 0


def _batch_json(batch: BatchRecord) -> dict[str, object]:
    return {"id": batch.id, "state": batch.state.value, "programme": batch.programme_code, "period": batch.period,
            "lines": batch.lines_count, "accepted": batch.accepted_count, "accepted_minor": batch.accepted_minor,
            "content_sha256": batch.content_sha256, "submitted_by": batch.submitted_by}


def _show(args: argparse.Namespace) -> int:
    async def run():
        async with open_store(Config.from_env()) as store:
            return await store.batch(args.id), await store.history(args.id)

    batch, history = asyncio.run(run())
    lines = [f"batch {batch.id}: {batch.state.value}, programme {batch.programme_code}, period {batch.period}",
             f"{batch.lines_count} lines, {batch.accepted_count} accepted, {format_minor(batch.accepted_minor)} yuan",
             f"content sha256 {batch.content_sha256}, submitted by {batch.submitted_by}"]
    lines += [f"{h.sequence}. {h.state.value} by {h.actor} at {utc_text(h.at_ms)}" for h in history]
    emit(args, "\n".join(lines), _batch_json(batch) | {
        "history": [{"sequence": h.sequence, "state": h.state.value, "actor": h.actor, "at_ms": h.at_ms}
                    for h in history],
    })
    return 0


def _approve(args: argparse.Namespace) -> int:
    async def run():
        async with open_store(Config.from_env()) as store:
            reviewed = args.hash or (await store.batch(args.id)).content_sha256
            return await store.approve(args.id, args.user, reviewed, _now_ms())

    entry = asyncio.run(run())
    emit(args, f"batch {args.id}: {entry.state.value} by {entry.actor}", {"id": args.id, "state": entry.state.value})
    return 0


def _cancel(args: argparse.Namespace) -> int:
    async def run():
        async with open_store(Config.from_env()) as store:
            return await store.transition(args.id, BatchState.cancelled, args.user, _now_ms())

    entry = asyncio.run(run())
    emit(args, f"batch {args.id}: {entry.state.value} by {entry.actor}", {"id": args.id, "state": entry.state.value})
    return 0


def _large(path: Path) -> bool:
    """Whether a file is big enough for a progress bar (and stderr is a terminal)."""
    return sys.stderr.isatty() and path.stat().st_size >= LARGE_FILE_BYTES


def _execute(args: argparse.Namespace) -> int:
    async def run():
        async with open_store(Config.from_env()) as store:
            batch = await store.batch(args.id)
            with Progress("executing", batch.lines_count) as progress:
                return await execute_batch(store, Ledger(store.pool), args.id, args.user, _now_ms(),
                                           on_lines=progress.advance)

    done = asyncio.run(run())
    emit(args, f"batch {done.batch_id}: executed, {done.lines} lines, {format_minor(done.amount_minor)} yuan, "
               f"{done.messages} pacs.008 message(s) queued",
         {"id": done.batch_id, "state": BatchState.executed.value, "lines": done.lines,
          "amount_minor": done.amount_minor, "messages": done.messages})
    return 0


def _report(args: argparse.Namespace) -> int:
    async def run(path: Path) -> None:
        async with open_store(Config.from_env()) as store:
            await write_report(store, args.id, args.format, path, datetime.datetime.now(datetime.UTC))

    if args.output:
        asyncio.run(run(args.output))
        return 0
    # To stdout: written (and validated) in a temporary folder first, then copied out.
    with tempfile.TemporaryDirectory(prefix="onecard-report-") as folder:
        path = Path(folder) / f"report.{args.format}"
        asyncio.run(run(path))
        with open(path, "rb") as stream:
            shutil.copyfileobj(stream, sys.stdout.buffer)
    return 0
