"""Reconciliation of a bank's camt.053 statement against the engine's transfers (pure).

Items are matched by ``(EndToEndId, direction)`` (a payout is ``DBIT`` on the engine's
account at the bank, its return ``CRDT``, both with the payout's EndToEndId), then
compared field by field. Every item ends in exactly one list of the :class:`Report`:
``matched``, ``mismatched`` (same key, a field differs), ``unmatched_engine`` (the bank
has not booked it), ``unmatched_statement`` (the bank booked something the engine does not
know, or booked it twice), or ``pending`` (statement entries not yet ``BOOK``).
"""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Iterable
from typing import TextIO
from dataclasses import dataclass
from enum import IntEnum

from adapters.iso20022.camt053 import StatementEntry


class Outcome(IntEnum):
    """Result of one reconciliation item, in priority order: when several fields differ,
    the lowest-numbered difference is the item's outcome (all are listed in ``fields``)."""

    MATCHED = 0
    MISSING_ON_STATEMENT = 1
    UNKNOWN_TO_ENGINE = 2
    DUPLICATE_ON_STATEMENT = 3
    CURRENCY_DIFFERS = 4
    AMOUNT_DIFFERS = 5
    VALUE_DATE_DIFFERS = 6
    PENDING_ON_STATEMENT = 7


@dataclass(frozen=True, slots=True)
class EngineTransfer:
    """What the engine expects to see on the statement for one transfer.

    ``credit_debit`` is from the statement account's side: ``DBIT`` for a payout the bank
    made on our behalf, ``CRDT`` for a return; ``value_date`` ``None`` skips that check.
    """

    end_to_end_id: str
    amount_minor: int
    currency: str
    credit_debit: str
    value_date: dt.date | None = None


@dataclass(frozen=True, slots=True)
class Item:
    """One line of the report: the outcome, the differing fields, and both sides."""

    outcome: Outcome
    end_to_end_id: str
    fields: tuple[str, ...]
    engine: EngineTransfer | None
    statement: StatementEntry | None


@dataclass(frozen=True, slots=True)
class Report:
    """Every item in exactly one list; ``clean`` when nothing but matches."""

    matched: tuple[Item, ...]
    mismatched: tuple[Item, ...]
    unmatched_engine: tuple[Item, ...]
    unmatched_statement: tuple[Item, ...]
    pending: tuple[Item, ...]

    @property
    def clean(self) -> bool:
        """No mismatched, unmatched or pending item."""
        return not (self.mismatched or self.unmatched_engine or self.unmatched_statement
                    or self.pending)

    def rows(self) -> list[dict[str, str]]:
        """One flat row per item (all lists, in report order) for CSV or JSON output:
        :data:`ROW_FIELDS` as keys, amounts as minor-unit integers in text, "" when a side
        is absent."""
        rows = []
        for item in (*self.matched, *self.mismatched, *self.unmatched_engine,
                     *self.unmatched_statement, *self.pending):
            engine, entry = item.engine, item.statement
            rows.append({
                "outcome": item.outcome.name.lower(),
                "end_to_end_id": item.end_to_end_id,
                "fields": ";".join(item.fields),
                "credit_debit": (engine or entry).credit_debit,
                "engine_amount_minor": str(engine.amount_minor) if engine else "",
                "statement_amount_minor": str(entry.amount_minor) if entry else "",
                "engine_currency": engine.currency if engine else "",
                "statement_currency": entry.currency if entry else "",
                "engine_value_date": _iso(engine.value_date if engine else None),
                "statement_value_date": _iso(entry.value_date if entry else None),
                "account_servicer_reference": entry.account_servicer_reference if entry else "",
            })
        return rows


ROW_FIELDS = ("outcome", "end_to_end_id", "fields", "credit_debit", "engine_amount_minor",
              "statement_amount_minor", "engine_currency", "statement_currency",
              "engine_value_date", "statement_value_date", "account_servicer_reference")


def write_csv(report: Report, stream: TextIO) -> int:
    """Write ``report.rows()`` as CSV with a header line to ``stream``; return the row count."""
    writer = csv.DictWriter(stream, fieldnames=ROW_FIELDS, lineterminator="\n")
    writer.writeheader()
    rows = report.rows()
    writer.writerows(rows)
    return len(rows)


def _iso(day: dt.date | None) -> str:
    return day.isoformat() if day else ""


def reconcile(transfers: Iterable[EngineTransfer], entries: Iterable[StatementEntry]) -> Report:
    """Match statement ``entries`` to engine ``transfers`` (see the module docstring).

    >>> payout = EngineTransfer("E1", 1234, "CNY", "DBIT", dt.date(2026, 12, 1))
    >>> entry = StatementEntry("E1", 1234, "CNY", "DBIT", dt.date(2026, 12, 2), None)
    >>> report = reconcile([payout], [entry])
    >>> [(item.outcome.name, item.fields) for item in report.mismatched]
    [('VALUE_DATE_DIFFERS', ('value_date',))]
    """
    expected: dict[tuple[str, str], EngineTransfer] = {}
    for transfer in transfers:
        key = (transfer.end_to_end_id, transfer.credit_debit)
        assert key not in expected, f"engine transfer {key} listed twice"
        expected[key] = transfer
    matched, mismatched, unmatched_statement, pending = [], [], [], []
    seen: set[tuple[str, str]] = set()
    for entry in entries:
        key = (entry.end_to_end_id, entry.credit_debit)
        transfer = expected.get(key)
        if entry.status != "BOOK":
            pending.append(Item(Outcome.PENDING_ON_STATEMENT, entry.end_to_end_id, (),
                                transfer, entry))
        elif transfer is None:
            unmatched_statement.append(Item(Outcome.UNKNOWN_TO_ENGINE, entry.end_to_end_id,
                                            (), None, entry))
        elif key in seen:
            unmatched_statement.append(Item(Outcome.DUPLICATE_ON_STATEMENT,
                                            entry.end_to_end_id, (), transfer, entry))
        else:
            seen.add(key)
            item = _compare(transfer, entry)
            (matched if item.outcome is Outcome.MATCHED else mismatched).append(item)
    unmatched_engine = [Item(Outcome.MISSING_ON_STATEMENT, transfer.end_to_end_id, (),
                             transfer, None)
                        for key, transfer in expected.items() if key not in seen]
    return Report(tuple(matched), tuple(mismatched), tuple(unmatched_engine),
                  tuple(unmatched_statement), tuple(pending))


def _compare(transfer: EngineTransfer, entry: StatementEntry) -> Item:
    differences = []
    if transfer.currency != entry.currency:
        differences.append((Outcome.CURRENCY_DIFFERS, "currency"))
    if transfer.amount_minor != entry.amount_minor:
        differences.append((Outcome.AMOUNT_DIFFERS, "amount_minor"))
    if transfer.value_date is not None and transfer.value_date != entry.value_date:
        differences.append((Outcome.VALUE_DATE_DIFFERS, "value_date"))
    outcome = min((outcome for outcome, _ in differences), default=Outcome.MATCHED)
    return Item(outcome, transfer.end_to_end_id, tuple(name for _, name in differences),
                transfer, entry)
