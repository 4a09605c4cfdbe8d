"""pacs.002.001.10 FI to FI payment status report: built by simbank (a bank's answer to
our pacs.008), parsed by the engine.

Parsing accepts the variants banks send (field-pitfalls): a default namespace, a prefix,
an AppHdr beside the Document, unknown envelope content; the original message id is read
from ``OrgnlGrpInfAndSts`` or, per transaction, from ``TxInfAndSts/OrgnlGrpInf``.
Duplicate and out-of-order statuses are returned as received: the caller applies them
idempotently by EndToEndId (a final status wins over an interim one, see
:data:`adapters.iso20022.reasons.FINAL_STATUSES`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from adapters.errors import MessageError
from adapters.iso20022 import reasons
from adapters.iso20022.build import Builder, iso_datetime
from adapters.iso20022.document import read_document

MESSAGE_DEFINITION = "pacs.002.001.10"


@dataclass(frozen=True, slots=True)
class TransactionStatus:
    """One ``TxInfAndSts``.

    Attributes
    ----------
    original_end_to_end_id : str
        The EndToEndId of the instruction ("" when the bank sent only a UETR).
    status : str
        ``ACSC``, ``ACSP``, ``RJCT``, ... (:data:`reasons.TRANSACTION_STATUSES`).
    reason_code : str
        ``AC04`` etc., "" when none; codes outside the ISO table travel as ``Prtry``.
    original_message_id : str
        The MsgId of the pacs.008 that carried it ("" to use the group's).
    additional_information : str
        0-105 characters of ``AddtlInf``.
    """

    original_end_to_end_id: str
    status: str
    reason_code: str = ""
    original_message_id: str = ""
    additional_information: str = ""


@dataclass(frozen=True, slots=True)
class StatusReport:
    """A parsed (or built) pacs.002: group status and the transaction statuses in order."""

    message_id: str
    created_at: dt.datetime
    original_message_id: str
    original_message_definition: str
    group_status: str
    group_reason_code: str
    transactions: tuple[TransactionStatus, ...]


def build(message_id: str, created_at: dt.datetime, original_message_id: str,
          transactions: Sequence[TransactionStatus], *, group_status: str = "",
          group_reason_code: str = "",
          original_message_definition: str = "pacs.008.001.08") -> bytes:
    """A validated pacs.002.001.10.

    ``group_status`` (e.g. ``RJCT`` for a whole message refused, ``ACCP``/``PART``) is
    omitted when empty; ``transactions`` may be empty for a group-only status.

    Raises
    ------
    SchemaValidationError
        A value breaks the XSD (names element and reason).
    """
    for item in (*transactions,):
        assert item.status in reasons.TRANSACTION_STATUSES, item.status
    builder = Builder(MESSAGE_DEFINITION)
    document = builder.document()
    report = builder.add(document, "FIToFIPmtStsRpt")
    header = builder.add(report, "GrpHdr")
    builder.add(header, "MsgId", message_id)
    builder.add(header, "CreDtTm", iso_datetime(created_at))
    group = builder.add(report, "OrgnlGrpInfAndSts")
    builder.add(group, "OrgnlMsgId", original_message_id)
    builder.add(group, "OrgnlMsgNmId", original_message_definition)
    if group_status:
        builder.add(group, "GrpSts", group_status)
    if group_reason_code:
        builder.reason(builder.add(group, "StsRsnInf"), group_reason_code)
    for item in transactions:
        element = builder.add(report, "TxInfAndSts")
        if item.original_message_id and item.original_message_id != original_message_id:
            original = builder.add(element, "OrgnlGrpInf")
            builder.add(original, "OrgnlMsgId", item.original_message_id)
            builder.add(original, "OrgnlMsgNmId", original_message_definition)
        builder.add(element, "OrgnlEndToEndId", item.original_end_to_end_id)
        builder.add(element, "TxSts", item.status)
        if item.reason_code or item.additional_information:
            information = builder.add(element, "StsRsnInf")
            if item.reason_code:
                builder.reason(information, item.reason_code)
            if item.additional_information:
                builder.add(information, "AddtlInf", item.additional_information)
    return builder.finish(document)


def parse(data: bytes) -> StatusReport:
    """Parse and validate a received pacs.002.001.10.

    Raises
    ------
    MessageError
        Malformed, another message or version, invalid against the XSD, a status code
        outside :data:`reasons.TRANSACTION_STATUSES`, or no original message id at all
        (subclasses name the element and line).
    """
    document = read_document(data, (MESSAGE_DEFINITION,))
    report = document.find(document.root, "FIToFIPmtStsRpt")
    header = document.find(report, "GrpHdr")
    group = document.find(report, "OrgnlGrpInfAndSts")
    original_message_id = original_definition = group_status = group_reason = ""
    if group is not None:
        original_message_id = document.text(group, "OrgnlMsgId")
        original_definition = document.text(group, "OrgnlMsgNmId")
        group_status = document.text(group, "GrpSts", required=False)
        group_reason = _reason(document, group)
    transactions = []
    for element in document.findall(report, "TxInfAndSts"):
        own_id = document.text(element, "OrgnlGrpInf/OrgnlMsgId", required=False)
        original_definition = original_definition or document.text(
            element, "OrgnlGrpInf/OrgnlMsgNmId", required=False)
        if not (own_id or original_message_id):
            raise MessageError("no original message id (OrgnlGrpInfAndSts or OrgnlGrpInf)",
                               element="TxInfAndSts/OrgnlGrpInf", line=element.sourceline)
        status = document.text(element, "TxSts", required=False) or group_status
        if status not in reasons.TRANSACTION_STATUSES:
            raise MessageError(f"unknown transaction status {status!r}", element="TxSts",
                               line=element.sourceline)
        transactions.append(TransactionStatus(
            original_end_to_end_id=document.text(element, "OrgnlEndToEndId", required=False),
            status=status,
            reason_code=_reason(document, element),
            original_message_id=own_id or original_message_id,
            additional_information=document.text(element, "StsRsnInf/AddtlInf",
                                                 required=False),
        ))
    return StatusReport(
        message_id=document.text(header, "MsgId"),
        created_at=document.datetime(header, "CreDtTm"),
        original_message_id=original_message_id or (
            transactions[0].original_message_id if transactions else ""),
        original_message_definition=original_definition,
        group_status=group_status,
        group_reason_code=group_reason,
        transactions=tuple(transactions),
    )


def resolve(statuses: Iterable[TransactionStatus]
            ) -> tuple[dict[str, TransactionStatus], list[TransactionStatus]]:
    """The status that stands for each EndToEndId, from statuses in arrival order.

    Duplicates and out-of-order arrivals are harmless: the first final status
    (``ACSC``/``RJCT``) of an EndToEndId wins and is never replaced by an interim one
    (``ACSP``, ``PDNG``) that arrives later; an interim status stands only until a final
    one arrives. A second, *different* final status is returned in ``conflicts`` (for an
    operator) and changes nothing.

    >>> standing, conflicts = resolve([TransactionStatus("E1", "ACSC"),
    ...     TransactionStatus("E1", "ACSP"), TransactionStatus("E1", "ACSC")])
    >>> standing["E1"].status, conflicts
    ('ACSC', [])
    """
    standing: dict[str, TransactionStatus] = {}
    conflicts: list[TransactionStatus] = []
    for item in statuses:
        current = standing.get(item.original_end_to_end_id)
        if current is None or current.status not in reasons.FINAL_STATUSES:
            standing[item.original_end_to_end_id] = item
        elif item.status in reasons.FINAL_STATUSES and item.status != current.status:
            conflicts.append(item)
    return standing, conflicts


def _reason(document, element) -> str:
    return (document.text(element, "StsRsnInf/Rsn/Cd", required=False)
            or document.text(element, "StsRsnInf/Rsn/Prtry", required=False))
