"""camt.053.001.08 bank to customer statement: simbank's statement of the account the
engine holds with it (built there), read by the engine for reconciliation.

Each booked payment is one ``Ntry`` with one ``TxDtls`` whose ``Refs/EndToEndId`` is the
instruction's EndToEndId; credit transfers paid out are ``DBIT`` (bank transaction code
``PMNT/ICDT/DMCT``), returns ``CRDT`` (``PMNT/ICDT/RRTN``). When parsing, an entry with
several ``TxDtls`` (batch booking) becomes one :class:`StatementEntry` per ``TxDtls`` with
that ``TxDtls/Amt``; an entry without ``TxDtls`` keeps an empty EndToEndId (reconciliation
reports it unmatched). Entries are read and written by :mod:`report_entry`, shared with
camt.054.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from adapters.iso20022 import report_entry
from adapters.iso20022.build import Builder, iso_datetime
from adapters.iso20022.document import Document, read_document
from adapters.iso20022.report_entry import CREDIT, DEBIT, StatementEntry

__all__ = ["CREDIT", "DEBIT", "Balance", "Statement", "StatementEntry", "build", "parse"]

MESSAGE_DEFINITION = "camt.053.001.08"


@dataclass(frozen=True, slots=True)
class Balance:
    """A statement balance: ``code`` ``OPBD`` (opening booked), ``CLBD`` (closing booked)
    and others as sent; ``amount_minor`` signed (negative for ``DBIT``)."""

    code: str
    amount_minor: int
    currency: str
    date: dt.date


@dataclass(frozen=True, slots=True)
class Statement:
    """A camt.053 statement (the first ``Stmt`` of the message)."""

    message_id: str
    created_at: dt.datetime
    statement_id: str
    account: str
    balances: tuple[Balance, ...]
    entries: tuple[StatementEntry, ...]


def build(statement: Statement) -> bytes:
    """A validated camt.053.001.08 of one statement.

    Raises
    ------
    SchemaValidationError
        A value breaks the XSD (e.g. no balance: at least one ``Bal`` is required).
    """
    builder = Builder(MESSAGE_DEFINITION)
    document = builder.document()
    body = builder.add(document, "BkToCstmrStmt")
    header = builder.add(body, "GrpHdr")
    builder.add(header, "MsgId", statement.message_id)
    builder.add(header, "CreDtTm", iso_datetime(statement.created_at))
    element = builder.add(body, "Stmt")
    builder.add(element, "Id", statement.statement_id)
    builder.add(element, "CreDtTm", iso_datetime(statement.created_at))
    builder.add(element, "Acct/Id/Othr/Id", statement.account)
    for balance in statement.balances:
        item = builder.add(element, "Bal")
        builder.add(item, "Tp/CdOrPrtry/Cd", balance.code)
        builder.amount(item, "Amt", abs(balance.amount_minor), balance.currency)
        builder.add(item, "CdtDbtInd", DEBIT if balance.amount_minor < 0 else CREDIT)
        builder.add(item, "Dt/Dt", balance.date.isoformat())
    for entry in statement.entries:
        report_entry.build(builder, element, entry)
    return builder.finish(document)


def parse(data: bytes) -> Statement:
    """Parse and validate a received camt.053.001.08 (its first statement).

    Raises
    ------
    MessageError
        Malformed, another message or version, invalid against the XSD, an amount with
        too many decimals, or a batch entry whose ``TxDtls`` lack amounts.
    """
    document = read_document(data, (MESSAGE_DEFINITION,))
    body = document.find(document.root, "BkToCstmrStmt")
    header = document.find(body, "GrpHdr")
    element = document.find(body, "Stmt")
    account = (document.text(element, "Acct/Id/Othr/Id", required=False)
               or document.text(element, "Acct/Id/IBAN", required=False))
    balances = tuple(_balance(document, item) for item in document.findall(element, "Bal"))
    entries = []
    for item in document.findall(element, "Ntry"):
        entries.extend(report_entry.read(document, item))
    return Statement(
        message_id=document.text(header, "MsgId"),
        created_at=document.datetime(header, "CreDtTm"),
        statement_id=document.text(element, "Id"),
        account=account,
        balances=balances,
        entries=tuple(entries),
    )


def _balance(document: Document, element) -> Balance:
    amount_minor, currency = document.amount(element, "Amt")
    sign = -1 if document.text(element, "CdtDbtInd") == DEBIT else 1
    date = document.date(element, "Dt/Dt", required=False) or \
        document.datetime(element, "Dt/DtTm").date()
    return Balance(code=(document.text(element, "Tp/CdOrPrtry/Cd", required=False)
                         or document.text(element, "Tp/CdOrPrtry/Prtry", required=False)),
                   amount_minor=sign * amount_minor, currency=currency, date=date)
