"""pacs.004 payment return (.001.09 and .001.10): a bank returns credited money, e.g. the
card account was closed after the credit (``AC04``). Built by simbank, parsed by the
engine, which reverses the posting to the funding account by the EndToEndId.

Both versions are built and parsed; the fields used are the same in each.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from adapters.errors import MessageError, TotalsMismatchError
from adapters.iso20022 import money
from adapters.iso20022.build import Builder, iso_datetime
from adapters.iso20022.document import read_document

MESSAGE_DEFINITIONS = ("pacs.004.001.09", "pacs.004.001.10")


@dataclass(frozen=True, slots=True)
class PaymentReturn:
    """One returned transaction (``TxInf``).

    ``amount_minor`` is ``RtrdIntrBkSttlmAmt`` (> 0); ``reason_code`` the return reason
    (``AC04``, ``CUST``, ...); ``original_message_id`` the MsgId of the returned pacs.008.
    """

    return_id: str
    original_message_id: str
    original_end_to_end_id: str
    amount_minor: int
    currency: str
    reason_code: str
    additional_information: str = ""


@dataclass(frozen=True, slots=True)
class ReturnMessage:
    """A parsed pacs.004."""

    message_id: str
    created_at: dt.datetime
    message_definition: str
    settlement_date: dt.date | None
    returns: tuple[PaymentReturn, ...]


def build(message_id: str, created_at: dt.datetime, settlement_date: dt.date,
          returns: Sequence[PaymentReturn], *,
          message_definition: str = "pacs.004.001.09") -> bytes:
    """A validated pacs.004 of ``returns`` (at least one), with exact ``NbOfTxs``/``CtrlSum``.

    Raises
    ------
    SchemaValidationError
        A value breaks the XSD.
    """
    assert message_definition in MESSAGE_DEFINITIONS and returns
    builder = Builder(message_definition)
    document = builder.document()
    body = builder.add(document, "PmtRtr")
    header = builder.add(body, "GrpHdr")
    builder.add(header, "MsgId", message_id)
    builder.add(header, "CreDtTm", iso_datetime(created_at))
    builder.add(header, "NbOfTxs", str(len(returns)))
    builder.add(header, "CtrlSum", money.format_decimal(_control_sum(returns)))
    builder.add(header, "IntrBkSttlmDt", settlement_date.isoformat())
    builder.add(header, "SttlmInf/SttlmMtd", "CLRG")
    for item in returns:
        element = builder.add(body, "TxInf")
        builder.add(element, "RtrId", item.return_id)
        original = builder.add(element, "OrgnlGrpInf")
        builder.add(original, "OrgnlMsgId", item.original_message_id)
        builder.add(original, "OrgnlMsgNmId", "pacs.008.001.08")
        builder.add(element, "OrgnlEndToEndId", item.original_end_to_end_id)
        builder.amount(element, "RtrdIntrBkSttlmAmt", item.amount_minor, item.currency)
        information = builder.add(element, "RtrRsnInf")
        builder.reason(information, item.reason_code)
        if item.additional_information:
            builder.add(information, "AddtlInf", item.additional_information)
    return builder.finish(document)


def parse(data: bytes) -> ReturnMessage:
    """Parse and validate a received pacs.004.001.09 or .10.

    Raises
    ------
    MessageError
        Malformed, another message or version, invalid, an amount with too many decimals,
        or a return without ``OrgnlEndToEndId`` (names the element and line).
    TotalsMismatchError
        ``NbOfTxs`` (``AM18``) or ``CtrlSum`` (``AM10``) differs from the returns.
    """
    document = read_document(data, MESSAGE_DEFINITIONS)
    body = document.find(document.root, "PmtRtr")
    header = document.find(body, "GrpHdr")
    message_id = document.text(header, "MsgId")
    group_original = document.text(body, "OrgnlGrpInf/OrgnlMsgId", required=False)
    returns = []
    for element in document.findall(body, "TxInf"):
        amount_minor, currency = document.amount(element, "RtrdIntrBkSttlmAmt")
        end_to_end_id = document.text(element, "OrgnlEndToEndId", required=False)
        if not end_to_end_id:
            raise MessageError("a return must name the OrgnlEndToEndId it returns",
                               element="TxInf/OrgnlEndToEndId", line=element.sourceline)
        returns.append(PaymentReturn(
            return_id=document.text(element, "RtrId", required=False),
            original_message_id=(document.text(element, "OrgnlGrpInf/OrgnlMsgId",
                                               required=False) or group_original),
            original_end_to_end_id=end_to_end_id,
            amount_minor=amount_minor,
            currency=currency,
            reason_code=(document.text(element, "RtrRsnInf/Rsn/Cd", required=False)
                         or document.text(element, "RtrRsnInf/Rsn/Prtry", required=False)),
            additional_information=document.text(element, "RtrRsnInf/AddtlInf",
                                                 required=False),
        ))
    _check_totals(document, header, message_id, returns)
    return ReturnMessage(
        message_id=message_id,
        created_at=document.datetime(header, "CreDtTm"),
        message_definition=document.message_definition,
        settlement_date=document.date(header, "IntrBkSttlmDt", required=False),
        returns=tuple(returns),
    )


def _control_sum(returns: Sequence[PaymentReturn]) -> Decimal:
    return sum((money.as_decimal(item.amount_minor, item.currency) for item in returns),
               Decimal(0))


def _check_totals(document, header, message_id: str, returns: list[PaymentReturn]) -> None:
    count_text = document.text(header, "NbOfTxs")
    if int(count_text) != len(returns):
        raise TotalsMismatchError(
            f"NbOfTxs is {count_text} but there are {len(returns)} returns",
            element="GrpHdr/NbOfTxs", line=document.find(header, "NbOfTxs").sourceline,
            reason_code="AM18", message_id=message_id)
    control_text = document.text(header, "CtrlSum", required=False)
    if control_text and money.to_decimal(control_text, element="CtrlSum") != _control_sum(returns):
        raise TotalsMismatchError(
            f"CtrlSum is {control_text} but the returns sum to "
            f"{money.format_decimal(_control_sum(returns))}",
            element="GrpHdr/CtrlSum", line=document.find(header, "CtrlSum").sourceline,
            reason_code="AM10", message_id=message_id)
