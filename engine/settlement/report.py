"""The settlement report of a cycle, as CSV and as JSON (pure).

One row per bank: ``cycle_id, state, timestamp_after, timestamp_last, bank_code,
debit_minor, credit_minor, net_minor, net`` where ``net`` is the exact decimal amount in
CNY (never a float) and the amounts are minor units (fen). The JSON document carries the
cycle, the rows and the totals; both say ``net_total_minor`` = 0.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence

import msgspec

from adapters.iso20022.money import format_amount
from engine.settlement.cycles import BankPosition, Cycle
from engine.settlement.registry import CURRENCY

CSV_COLUMNS = ("cycle_id", "state", "timestamp_after", "timestamp_last", "bank_code",
               "debit_minor", "credit_minor", "net_minor", "net")


def rows(cycle: Cycle, positions: Sequence[BankPosition]) -> list[dict]:
    """The report rows, by bank code.

    Raises
    ------
    AssertionError
        The positions do not sum to zero (a frozen cycle always does).
    """
    assert sum(p.net_minor for p in positions) == 0, "positions must sum to zero"
    return [{"cycle_id": cycle.cycle_id, "state": cycle.state, "timestamp_after": cycle.timestamp_after,
             "timestamp_last": cycle.timestamp_last, "bank_code": p.bank_code, "debit_minor": p.debit_minor,
             "credit_minor": p.credit_minor, "net_minor": p.net_minor,
             "net": _signed_amount(p.net_minor)} for p in sorted(positions, key=lambda p: p.bank_code)]


def render_csv(cycle: Cycle, positions: Sequence[BankPosition]) -> str:
    """The report as CSV (header row, then one row per bank; ``\\r\\n`` line ends)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS)
    writer.writeheader()
    writer.writerows(rows(cycle, positions))
    return out.getvalue()


def render_json(cycle: Cycle, positions: Sequence[BankPosition]) -> bytes:
    """The report as one JSON document: ``cycle``, ``positions``, ``debit_total_minor``,
    ``credit_total_minor``, ``net_total_minor`` (always 0)."""
    return msgspec.json.encode({
        "cycle": {"cycle_id": cycle.cycle_id, "state": cycle.state, "timestamp_after": cycle.timestamp_after,
                  "timestamp_last": cycle.timestamp_last, "transfer_count": cycle.transfer_count,
                  "unattributed_count": cycle.unattributed_count},
        "positions": rows(cycle, positions),
        "debit_total_minor": sum(p.debit_minor for p in positions),
        "credit_total_minor": sum(p.credit_minor for p in positions),
        "net_total_minor": sum(p.net_minor for p in positions),
    })


def _signed_amount(amount_minor: int) -> str:
    text = format_amount(abs(amount_minor), CURRENCY)
    return "-" + text if amount_minor < 0 else text
