"""pain.002.001.10 customer payment status report: what the engine tells a department
about its batch (group status, then one status per line, grouped by ``PmtInf``).

Status codes: ``ACCP`` accepted, ``RJCT`` rejected, ``ACSC`` paid, ``PART`` partly
accepted. Line reasons are the engine's own codes (``invalid_id_checksum``) as
``Prtry``, or ISO codes (``AC04``, ``AM05``) as ``Cd``.

:class:`Writer` streams a report of any length to a file (text templates, a line at a
time; validate the file with :func:`adapters.iso20022.schema.validate_file` before it
leaves); :func:`build` is the same writer into memory, validated, for small reports.
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import BinaryIO
from xml.sax.saxutils import escape

from adapters.errors import TotalsMismatchError
from adapters.iso20022 import money, reasons, schema
from adapters.iso20022.build import XML_DECLARATION, iso_datetime

MESSAGE_DEFINITION = "pain.002.001.10"
ADDITIONAL_INFORMATION_LENGTH_MAX = 105
# Lines rendered before they are written out together (memory stays at a few hundred kB).
LINES_PER_WRITE = 2_000


@dataclass(frozen=True, slots=True)
class LineStatus:
    """The status of one batch line (``TxInfAndSts``)."""

    payment_information_id: str
    end_to_end_id: str
    status: str
    reason_code: str = ""
    additional_information: str = ""


class Writer:
    """Writes one pain.002.001.10 to the binary ``stream`` as it goes: the group part now,
    then each line (:meth:`add`; lines of one ``PmtInf`` must come together), then the end
    (:meth:`close`). The caller validates what was written before it leaves
    (:func:`adapters.iso20022.schema.validate_file`): the writer checks only what the
    schema cannot (a ``PmtInf`` split in two).
    """

    def __init__(self, stream: BinaryIO, message_id: str, created_at: dt.datetime, original_message_id: str, *,
                 group_status: str, group_reason_code: str = "", group_additional_information: str = "",
                 original_number_of_transactions: int | None = None,
                 original_control_sum: Decimal | None = None,
                 original_message_definition: str = "pain.001.001.09") -> None:
        assert group_status in reasons.TRANSACTION_STATUSES, group_status
        self._stream = stream
        self._parts: list[str] = [
            f'<Document xmlns="{schema.namespace(MESSAGE_DEFINITION)}"><CstmrPmtStsRpt>'
            f"<GrpHdr><MsgId>{escape(message_id)}</MsgId><CreDtTm>{iso_datetime(created_at)}</CreDtTm></GrpHdr>"
            f"<OrgnlGrpInfAndSts><OrgnlMsgId>{escape(original_message_id)}</OrgnlMsgId>"
            f"<OrgnlMsgNmId>{escape(original_message_definition)}</OrgnlMsgNmId>"]
        if original_number_of_transactions is not None:
            self._parts.append(f"<OrgnlNbOfTxs>{original_number_of_transactions}</OrgnlNbOfTxs>")
        if original_control_sum is not None:
            self._parts.append(f"<OrgnlCtrlSum>{money.format_decimal(original_control_sum)}</OrgnlCtrlSum>")
        self._parts.append(f"<GrpSts>{group_status}</GrpSts>")
        self._parts.append(_reason(group_reason_code, group_additional_information))
        self._parts.append("</OrgnlGrpInfAndSts>")
        self._stream.write(XML_DECLARATION)
        self._payment: str | None = None
        self._payments_done: set[str] = set()
        self.lines = 0

    def add(self, line: LineStatus) -> None:
        """Append ``line``'s ``TxInfAndSts`` (under its ``OrgnlPmtInfAndSts``)."""
        if line.payment_information_id != self._payment:
            assert line.payment_information_id not in self._payments_done, "the lines of a PmtInf come together"
            if self._payment is not None:
                self._payments_done.add(self._payment)
                self._parts.append("</OrgnlPmtInfAndSts>")
            self._payment = line.payment_information_id
            self._parts.append(f"<OrgnlPmtInfAndSts><OrgnlPmtInfId>{escape(self._payment)}</OrgnlPmtInfId>")
        self._parts.append(f"<TxInfAndSts><OrgnlEndToEndId>{escape(line.end_to_end_id)}</OrgnlEndToEndId>"
                           f"<TxSts>{escape(line.status)}</TxSts>"
                           f"{_reason(line.reason_code, line.additional_information)}</TxInfAndSts>")
        self.lines += 1
        if len(self._parts) >= LINES_PER_WRITE:
            self._flush()

    def close(self) -> None:
        """End the document (the stream stays open)."""
        if self._payment is not None:
            self._parts.append("</OrgnlPmtInfAndSts>")
        self._parts.append("</CstmrPmtStsRpt></Document>")
        self._flush()

    def _flush(self) -> None:
        self._stream.write("".join(self._parts).encode("utf-8"))
        self._parts.clear()


def build(message_id: str, created_at: dt.datetime, original_message_id: str, *,
          group_status: str, lines: Sequence[LineStatus] = (), group_reason_code: str = "",
          group_additional_information: str = "",
          original_number_of_transactions: int | None = None,
          original_control_sum: Decimal | None = None,
          original_message_definition: str = "pain.001.001.09") -> bytes:
    """A validated pain.002.001.10 in memory (lines keep their order within each ``PmtInf``).

    Raises
    ------
    SchemaValidationError
        A value breaks the XSD (names element and reason).
    """
    order = {line.payment_information_id: None for line in lines}
    stream = io.BytesIO()
    writer = Writer(stream, message_id, created_at, original_message_id, group_status=group_status,
                    group_reason_code=group_reason_code, group_additional_information=group_additional_information,
                    original_number_of_transactions=original_number_of_transactions,
                    original_control_sum=original_control_sum,
                    original_message_definition=original_message_definition)
    for payment in order:
        for line in lines:
            if line.payment_information_id == payment:
                writer.add(line)
    writer.close()
    data = stream.getvalue()
    schema.parse_validated(data, MESSAGE_DEFINITION)
    return data


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


def _reason(code: str, information: str) -> str:
    """The ``StsRsnInf`` of a reason (``""`` for none): ``Cd`` for an ISO code, else ``Prtry``."""
    if not (code or information):
        return ""
    kind = "Cd" if reasons.is_iso_reason(code) else "Prtry"
    parts = [f"<StsRsnInf><Rsn><{kind}>{escape(code)}</{kind}></Rsn>" if code else "<StsRsnInf>"]
    # AddtlInf is Max105Text and repeatable: long explanations are split, not cut.
    for start in range(0, len(information), ADDITIONAL_INFORMATION_LENGTH_MAX):
        parts.append(f"<AddtlInf>{escape(information[start:start + ADDITIONAL_INFORMATION_LENGTH_MAX])}</AddtlInf>")
    parts.append("</StsRsnInf>")
    return "".join(parts)
