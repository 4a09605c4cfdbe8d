"""pain.002.001.10 customer payment status report: what the engine tells a department
about its batch (group status, then one status per line, grouped by ``PmtInf``).

Status codes: ``ACCP`` accepted, ``RJCT`` rejected, ``ACSC`` paid, ``PART`` partly
accepted. Line reasons are the engine's own codes (``invalid_id_checksum``) as
``Prtry``, or ISO codes (``AC04``, ``AM05``) as ``Cd``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from adapters.errors import TotalsMismatchError
from adapters.iso20022 import money, reasons
from adapters.iso20022.build import Builder, iso_datetime

MESSAGE_DEFINITION = "pain.002.001.10"
ADDITIONAL_INFORMATION_LENGTH_MAX = 105


@dataclass(frozen=True, slots=True)
class LineStatus:
    """The status of one batch line (``TxInfAndSts``)."""

    payment_information_id: str
    end_to_end_id: str
    status: str
    reason_code: str = ""
    additional_information: str = ""


def build(message_id: str, created_at: dt.datetime, original_message_id: str, *,
          group_status: str, lines: Sequence[LineStatus] = (), group_reason_code: str = "",
          group_additional_information: str = "",
          original_number_of_transactions: int | None = None,
          original_control_sum: Decimal | None = None,
          original_message_definition: str = "pain.001.001.09") -> bytes:
    """A validated pain.002.001.10 (lines keep their order within each ``PmtInf``).

    Raises
    ------
    SchemaValidationError
        A value breaks the XSD (names element and reason).
    """
    assert group_status in reasons.TRANSACTION_STATUSES, group_status
    builder = Builder(MESSAGE_DEFINITION)
    document = builder.document()
    report = builder.add(document, "CstmrPmtStsRpt")
    header = builder.add(report, "GrpHdr")
    builder.add(header, "MsgId", message_id)
    builder.add(header, "CreDtTm", iso_datetime(created_at))
    group = builder.add(report, "OrgnlGrpInfAndSts")
    builder.add(group, "OrgnlMsgId", original_message_id)
    builder.add(group, "OrgnlMsgNmId", original_message_definition)
    if original_number_of_transactions is not None:
        builder.add(group, "OrgnlNbOfTxs", str(original_number_of_transactions))
    if original_control_sum is not None:
        builder.add(group, "OrgnlCtrlSum", money.format_decimal(original_control_sum))
    builder.add(group, "GrpSts", group_status)
    if group_reason_code or group_additional_information:
        _reason(builder, group, group_reason_code, group_additional_information)
    payments: dict[str, object] = {}
    for line in lines:
        payment = payments.get(line.payment_information_id)
        if payment is None:
            payment = builder.add(report, "OrgnlPmtInfAndSts")
            builder.add(payment, "OrgnlPmtInfId", line.payment_information_id)
            payments[line.payment_information_id] = payment
        element = builder.add(payment, "TxInfAndSts")
        builder.add(element, "OrgnlEndToEndId", line.end_to_end_id)
        builder.add(element, "TxSts", line.status)
        if line.reason_code or line.additional_information:
            _reason(builder, element, line.reason_code, line.additional_information)
    return builder.finish(document)


def build_group_rejection(message_id: str, created_at: dt.datetime,
                          error: TotalsMismatchError) -> bytes:
    """The pain.002 ``RJCT`` of a whole batch refused for its totals (``AM10`` wrong
    ``CtrlSum``, ``AM18`` wrong ``NbOfTxs``), quoting the reason.

    >>> from adapters.errors import TotalsMismatchError
    >>> error = TotalsMismatchError("CtrlSum is 0.70 but the amounts sum to 0.60",
    ...     element="GrpHdr/CtrlSum", line=7, reason_code="AM10", message_id="B1")
    >>> b"<GrpSts>RJCT</GrpSts><StsRsnInf><Rsn><Cd>AM10</Cd>" in build_group_rejection(
    ...     "N002X", dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc), error)
    True
    """
    return build(message_id, created_at, error.message_id, group_status="RJCT",
                 group_reason_code=error.reason_code,
                 group_additional_information=str(error))


def _reason(builder: Builder, parent, code: str, information: str) -> None:
    element = builder.add(parent, "StsRsnInf")
    if code:
        builder.reason(element, code)
    # AddtlInf is Max105Text and repeatable: long explanations are split, not cut.
    for start in range(0, len(information), ADDITIONAL_INFORMATION_LENGTH_MAX):
        builder.add(element, "AddtlInf",
                    information[start:start + ADDITIONAL_INFORMATION_LENGTH_MAX])
