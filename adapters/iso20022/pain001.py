"""pain.001.001.09 customer credit transfer initiation: a finance department's or
employer's disbursement batch (parsed here; the disbursement flow validates each line).

Where the fields of a batch line travel (agreed with departments, see README):

| line field | pain.001 element |
| --- | --- |
| name | ``Cdtr/Nm`` |
| identity number | ``Cdtr/Id/PrvtId/Othr/Id`` (``SchmeNm/Cd`` ``NIDN``) |
| card or account number | ``CdtrAcct/Id/Othr/Id`` (or ``IBAN``) |
| amount | ``Amt/InstdAmt`` with ``Ccy`` |
| programme item | ``Purp/Cd`` or ``Purp/Prtry`` |
| remark | ``RmtInf/Ustrd`` |

Totals are exact: ``NbOfTxs`` and ``CtrlSum`` of the group and of each ``PmtInf`` must
match the transactions (compared as exact decimals), or the whole file is refused with
:class:`TotalsMismatchError` (``AM18`` / ``AM10``), which
:func:`adapters.iso20022.pain002.build_group_rejection` turns into a pain.002 RJCT. A line
whose amount has more decimals than its currency allows is not refused here: its
``amount_minor`` is ``None`` so the line is reported as ``amount_precision`` with all the
others.

The whole document is held in memory; :data:`schema.MESSAGE_BYTES_MAX` (64 MiB, about
100,000 lines) bounds it. Larger batches come as CSV, which disbursement streams.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from adapters.errors import AmountError, TotalsMismatchError
from adapters.iso20022 import money
from adapters.iso20022.document import Document, read_document

MESSAGE_DEFINITION = "pain.001.001.09"


@dataclass(frozen=True, slots=True)
class Line:
    """One ``CdtTrfTxInf`` of the batch.

    ``line`` counts transactions from 1 across the whole file; ``source_line`` is the XML
    line of the ``CdtTrfTxInf`` element; ``amount`` is the exact decimal as written and
    ``amount_minor`` its minor units, or ``None`` when it has too many decimals.
    """

    line: int
    source_line: int
    payment_information_id: str
    end_to_end_id: str
    instruction_id: str
    amount: Decimal
    amount_minor: int | None
    currency: str
    creditor_name: str
    identity_number: str
    account: str
    programme_item: str
    remark: str


@dataclass(frozen=True, slots=True)
class Batch:
    """A parsed pain.001: group header fields and every line in file order."""

    message_id: str
    created_at: dt.datetime
    number_of_transactions: int
    control_sum: Decimal | None
    initiating_party: str
    debtor_name: str
    debtor_account: str
    lines: tuple[Line, ...]


def parse(data: bytes) -> Batch:
    """Parse, validate and check the totals of a pain.001.001.09 batch.

    Raises
    ------
    MessageError
        Malformed, another message or version, or invalid against the XSD (subclasses
        name the element and line).
    TotalsMismatchError
        A group's or payment information's ``NbOfTxs`` (``AM18``) or ``CtrlSum``
        (``AM10``) differs from its transactions.
    AmountError
        An amount in a currency without a known minor unit.
    """
    document = read_document(data, (MESSAGE_DEFINITION,))
    initiation = document.find(document.root, "CstmrCdtTrfInitn")
    header = document.find(initiation, "GrpHdr")
    message_id = document.text(header, "MsgId")
    lines: list[Line] = []
    debtor_name = debtor_account = ""
    for payment in document.findall(initiation, "PmtInf"):
        debtor_name = debtor_name or document.text(payment, "Dbtr/Nm", required=False)
        debtor_account = debtor_account or _account(document, payment, "DbtrAcct")
        payment_lines = [_line(document, element, len(lines) + index + 1, payment)
                         for index, element in enumerate(document.findall(payment, "CdtTrfTxInf"))]
        _check_totals(document, payment, message_id, payment_lines)
        lines.extend(payment_lines)
    _check_totals(document, header, message_id, lines)
    control_text = document.text(header, "CtrlSum", required=False)
    return Batch(
        message_id=message_id,
        created_at=document.datetime(header, "CreDtTm"),
        number_of_transactions=len(lines),
        control_sum=money.to_decimal(control_text, element="CtrlSum") if control_text else None,
        initiating_party=document.text(header, "InitgPty/Nm", required=False),
        debtor_name=debtor_name,
        debtor_account=debtor_account,
        lines=tuple(lines),
    )


def _line(document: Document, element, number: int, payment) -> Line:
    amount_element = document.find(element, "Amt/InstdAmt")
    if amount_element is None:
        raise AmountError("only InstdAmt amounts are accepted (not EqvtAmt)",
                          element="Amt", line=element.sourceline)
    currency = amount_element.get("Ccy", "")
    amount = money.to_decimal(amount_element.text or "", element="InstdAmt",
                              line=amount_element.sourceline)
    try:
        amount_minor = money.parse_amount(amount_element.text or "", currency,
                                          element="InstdAmt", line=amount_element.sourceline)
    except AmountError:
        money.minor_unit(currency)  # an unknown currency refuses the file, not the line
        amount_minor = None
    return Line(
        line=number,
        source_line=element.sourceline or 0,
        payment_information_id=document.text(payment, "PmtInfId"),
        end_to_end_id=document.text(element, "PmtId/EndToEndId"),
        instruction_id=document.text(element, "PmtId/InstrId", required=False),
        amount=amount,
        amount_minor=amount_minor,
        currency=currency,
        creditor_name=document.text(element, "Cdtr/Nm", required=False),
        identity_number=document.text(element, "Cdtr/Id/PrvtId/Othr/Id", required=False),
        account=_account(document, element, "CdtrAcct"),
        programme_item=(document.text(element, "Purp/Cd", required=False)
                        or document.text(element, "Purp/Prtry", required=False)),
        remark=document.text(element, "RmtInf/Ustrd", required=False),
    )


def _account(document: Document, element, name: str) -> str:
    return (document.text(element, f"{name}/Id/Othr/Id", required=False)
            or document.text(element, f"{name}/Id/IBAN", required=False))


def _check_totals(document: Document, element, message_id: str, lines: list[Line]) -> None:
    count_text = document.text(element, "NbOfTxs", required=False)
    if count_text and int(count_text) != len(lines):
        raise TotalsMismatchError(
            f"NbOfTxs is {count_text} but there are {len(lines)} transactions",
            element=f"{_name(element)}/NbOfTxs",
            line=document.find(element, "NbOfTxs").sourceline,
            reason_code="AM18", message_id=message_id)
    control_text = document.text(element, "CtrlSum", required=False)
    if control_text:
        expected = money.to_decimal(control_text, element="CtrlSum")
        actual = sum((line.amount for line in lines), Decimal(0))
        if expected != actual:
            raise TotalsMismatchError(
                f"CtrlSum is {control_text} but the amounts sum to {money.format_decimal(actual)}",
                element=f"{_name(element)}/CtrlSum",
                line=document.find(element, "CtrlSum").sourceline,
                reason_code="AM10", message_id=message_id)


def _name(element) -> str:
    return element.tag.rsplit("}", 1)[-1]
