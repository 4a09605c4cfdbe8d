"""Reconciliation: every item lands in exactly one list with its outcome and fields."""

import datetime as dt
import io

from hypothesis import given
from hypothesis import strategies as st

from adapters.iso20022.camt053 import StatementEntry
from adapters.reconcile import EngineTransfer, Outcome, reconcile, write_csv

DAY = dt.date(2026, 12, 1)


def _entry(e2e, amount, direction="DBIT", currency="CNY", value_date=DAY, status="BOOK"):
    return StatementEntry(e2e, amount, currency, direction, value_date, DAY, status=status)


def test_each_kind_of_difference():
    transfers = [
        EngineTransfer("E1", 1000, "CNY", "DBIT", DAY),   # matched
        EngineTransfer("E2", 2000, "CNY", "DBIT", DAY),   # amount differs
        EngineTransfer("E3", 3000, "CNY", "DBIT", DAY),   # value date and currency differ
        EngineTransfer("E4", 4000, "CNY", "DBIT", DAY),   # missing on statement
        EngineTransfer("E1", 1000, "CNY", "CRDT", None),  # return of E1, date not checked
    ]
    entries = [
        _entry("E1", 1000), _entry("E2", 2001),
        _entry("E3", 3000, currency="HKD", value_date=DAY + dt.timedelta(days=1)),
        _entry("E9", 500),                      # unknown to the engine
        _entry("E1", 1000),                     # booked twice
        _entry("E1", 1000, "CRDT", value_date=DAY + dt.timedelta(days=3)),
        _entry("E5", 700, status="PDNG"),       # not booked yet
    ]
    report = reconcile(transfers, entries)
    assert [(i.end_to_end_id, i.outcome) for i in report.matched] == [
        ("E1", Outcome.MATCHED), ("E1", Outcome.MATCHED)]
    assert [(i.end_to_end_id, i.outcome, i.fields) for i in report.mismatched] == [
        ("E2", Outcome.AMOUNT_DIFFERS, ("amount_minor",)),
        ("E3", Outcome.CURRENCY_DIFFERS, ("currency", "value_date")),
    ]
    assert [(i.end_to_end_id, i.outcome) for i in report.unmatched_engine] == [
        ("E4", Outcome.MISSING_ON_STATEMENT)]
    assert [(i.end_to_end_id, i.outcome) for i in report.unmatched_statement] == [
        ("E9", Outcome.UNKNOWN_TO_ENGINE), ("E1", Outcome.DUPLICATE_ON_STATEMENT)]
    assert [(i.end_to_end_id, i.outcome) for i in report.pending] == [
        ("E5", Outcome.PENDING_ON_STATEMENT)]
    assert not report.clean


def test_csv_rows_show_both_sides():
    report = reconcile([EngineTransfer("E2", 2000, "CNY", "DBIT", DAY),
                        EngineTransfer("E4", 4000, "CNY", "DBIT", DAY)],
                       [_entry("E2", 2001), _entry("E9", 500)])
    stream = io.StringIO()
    assert write_csv(report, stream) == 3
    assert stream.getvalue() == (
        "outcome,end_to_end_id,fields,credit_debit,engine_amount_minor,statement_amount_minor,"
        "engine_currency,statement_currency,engine_value_date,statement_value_date,"
        "account_servicer_reference\n"
        "amount_differs,E2,amount_minor,DBIT,2000,2001,CNY,CNY,2026-12-01,2026-12-01,\n"
        "missing_on_statement,E4,,DBIT,4000,,CNY,,2026-12-01,,\n"
        "unknown_to_engine,E9,,DBIT,,500,,CNY,,2026-12-01,\n")


def test_empty_is_clean():
    assert reconcile([], []).clean


@given(st.lists(st.tuples(st.integers(0, 50), st.integers(1, 10**6), st.booleans()), max_size=40))
def test_every_item_is_accounted_for_exactly_once(rows):
    transfers = {f"E{key}": EngineTransfer(f"E{key}", amount, "CNY", "DBIT", DAY)
                 for key, amount, _ in rows}
    entries = [_entry(f"E{key}", amount if same else amount + 1) for key, amount, same in rows]
    report = reconcile(transfers.values(), entries)
    statement_side = (len(report.matched) + len(report.mismatched) + len(report.unmatched_statement)
                      + len(report.pending))
    engine_side = len(report.matched) + len(report.mismatched) + len(report.unmatched_engine)
    assert statement_side == len(entries)
    assert engine_side == len(transfers)
