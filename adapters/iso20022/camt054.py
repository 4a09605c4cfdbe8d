"""camt.054.001.08 bank to customer debit/credit notification: a bank's intraday notice of
single bookings on the engine's account, read for early reconciliation (entries as in
camt.053, see :mod:`report_entry`)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from adapters.iso20022 import report_entry
from adapters.iso20022.document import read_document
from adapters.iso20022.report_entry import StatementEntry

MESSAGE_DEFINITION = "camt.054.001.08"


@dataclass(frozen=True, slots=True)
class Notification:
    """A parsed camt.054: the entries of every ``Ntfctn`` in order."""

    message_id: str
    created_at: dt.datetime
    account: str
    entries: tuple[StatementEntry, ...]


def parse(data: bytes) -> Notification:
    """Parse and validate a received camt.054.001.08.

    Raises
    ------
    MessageError
        Malformed, another message or version, invalid against the XSD, or an amount with
        too many decimals (subclasses name the element and line).
    """
    document = read_document(data, (MESSAGE_DEFINITION,))
    body = document.find(document.root, "BkToCstmrDbtCdtNtfctn")
    header = document.find(body, "GrpHdr")
    account = ""
    entries: list[StatementEntry] = []
    for notification in document.findall(body, "Ntfctn"):
        account = account or (document.text(notification, "Acct/Id/Othr/Id", required=False)
                              or document.text(notification, "Acct/Id/IBAN", required=False))
        for item in document.findall(notification, "Ntry"):
            entries.extend(report_entry.read(document, item))
    return Notification(document.text(header, "MsgId"), document.datetime(header, "CreDtTm"),
                        account, tuple(entries))
