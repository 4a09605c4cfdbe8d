"""Multilateral net positions of banks from the flows of one cycle (pure).

A flow is ``(debit_bank, credit_bank, amount_minor)``: the sum of the cycle's transfers
whose debit account is held at ``debit_bank`` and credit account at ``credit_bank``. A
fare (card at the issuing bank → operator at the operator's bank) makes the issuer owe
the operator's bank; a payout (funding account → card) makes the funding bank owe the
issuing bank; a return reverses a payout. Flows inside one bank net to nothing. Each flow
adds the same amount to one bank's credit and the other's debit, so the nets sum to
exactly zero (asserted).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

# Positions are stored in bigint; a cycle's gross total above this is refused, not wrapped.
POSITION_MINOR_MAX = 2**63 - 1
CAP_ALERT_PERCENT = 80

assert 0 < CAP_ALERT_PERCENT < 100


@dataclass(frozen=True, slots=True)
class Position:
    """One bank's position in a cycle; ``net_minor`` = credit - debit (negative: it pays)."""

    bank_code: str
    debit_minor: int
    credit_minor: int

    @property
    def net_minor(self) -> int:
        return self.credit_minor - self.debit_minor


@dataclass(frozen=True, slots=True)
class CapAlert:
    """A bank's net debit reached ``CAP_ALERT_PERCENT`` of its cap (``kind`` ``approaching``)
    or the cap itself (``kind`` ``exceeded``)."""

    bank_code: str
    kind: str
    net_minor: int
    cap_minor: int


def net_positions(flows: Iterable[tuple[str, str, int]], banks: Iterable[str] = ()) -> list[Position]:
    """Positions of every bank named in ``flows`` or ``banks``, sorted by bank code.

    >>> [(p.bank_code, p.net_minor) for p in net_positions([("ICBC", "BOC", 500), ("BOC", "ICBC", 200)])]
    [('BOC', 300), ('ICBC', -300)]

    Raises
    ------
    OverflowError
        A bank's debit or credit total exceeds :data:`POSITION_MINOR_MAX`.
    """
    debit: dict[str, int] = {code: 0 for code in banks}
    credit: dict[str, int] = {code: 0 for code in banks}
    for debit_bank, credit_bank, amount_minor in flows:
        assert amount_minor >= 0, "flows carry posted amounts"
        debit.setdefault(debit_bank, 0)
        credit.setdefault(debit_bank, 0)
        debit.setdefault(credit_bank, 0)
        credit.setdefault(credit_bank, 0)
        if debit_bank == credit_bank:
            continue
        debit[debit_bank] += amount_minor
        credit[credit_bank] += amount_minor
    positions = [Position(code, debit[code], credit[code]) for code in sorted(debit)]
    for position in positions:
        if max(position.debit_minor, position.credit_minor) > POSITION_MINOR_MAX:
            raise OverflowError(f"position of {position.bank_code} exceeds {POSITION_MINOR_MAX} minor units")
    assert sum(p.net_minor for p in positions) == 0, "multilateral net positions must sum to zero"
    return positions


def cap_alerts(positions: Iterable[Position], caps_minor: Mapping[str, int],
               alert_percent: int = CAP_ALERT_PERCENT) -> list[CapAlert]:
    """Alerts for banks whose net debit reached ``alert_percent`` % of their cap.

    A cap of 0 means no cap (no alert).

    >>> cap_alerts([Position("ICBC", 900, 100)], {"ICBC": 1000})
    [CapAlert(bank_code='ICBC', kind='approaching', net_minor=-800, cap_minor=1000)]
    """
    assert 0 < alert_percent <= 100
    alerts = []
    for position in positions:
        cap_minor = caps_minor.get(position.bank_code, 0)
        owed_minor = -position.net_minor
        if cap_minor <= 0 or owed_minor <= 0:
            continue
        if owed_minor >= cap_minor:
            alerts.append(CapAlert(position.bank_code, "exceeded", position.net_minor, cap_minor))
        elif owed_minor * 100 >= cap_minor * alert_percent:
            alerts.append(CapAlert(position.bank_code, "approaching", position.net_minor, cap_minor))
    return alerts
