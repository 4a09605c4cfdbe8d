"""camt.053.001.08 bank to customer statement: simbank's statement of the account the
engine holds with it (built there), read by the engine for reconciliation.

Each booked payment is one ``Ntry`` with one ``TxDtls`` whose ``Refs/EndToEndId`` is the
instruction's EndToEndId; credit transfers paid out are ``DBIT`` (bank transaction code
``PMNT/ICDT/DMCT``), returns ``CRDT`` (``PMNT/ICDT/RRTN``). When parsing, an entry with
several ``TxDtls`` (batch booking) becomes one :class:`StatementEntry` per ``TxDtls`` with
that ``TxDtls/Amt``; an entry without ``TxDtls`` keeps an empty EndToEndId (reconciliation
reports it unmatched).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from adapters.errors import MessageError
from adapters.iso20022.build import Builder, iso_datetime
from adapters.iso20022.document import Document, read_document

MESSAGE_DEFINITION = "camt.053.001.08"
CREDIT = "CRDT"
DEBIT = "DBIT"


@dataclass(frozen=True, slots=True)
class StatementEntry:
    """One booked movement.

    ``amount_minor`` > 0 with ``credit_debit`` ``CRDT``/``DBIT`` giving its direction;
    ``domain_family_subfamily`` the bank transaction code, e.g. ``"PMNT/ICDT/DMCT"``.
    """

    end_to_end_id: str
    amount_minor: int
    currency: str
    credit_debit: str
    value_date: dt.date | None
    booking_date: dt.date | None
    account_servicer_reference: str = ""
    status: str = "BOOK"
    domain_family_subfamily: str = "PMNT/ICDT/DMCT"


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
        _build_entry(builder, element, entry)
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
        entries.extend(_entries(document, item))
    return Statement(
        message_id=document.text(header, "MsgId"),
        created_at=document.datetime(header, "CreDtTm"),
        statement_id=document.text(element, "Id"),
        account=account,
        balances=balances,
        entries=tuple(entries),
    )


def _build_entry(builder: Builder, parent, entry: StatementEntry) -> None:
    assert entry.credit_debit in (CREDIT, DEBIT)
    item = builder.add(parent, "Ntry")
    builder.amount(item, "Amt", entry.amount_minor, entry.currency)
    builder.add(item, "CdtDbtInd", entry.credit_debit)
    builder.add(item, "Sts/Cd", entry.status)
    if entry.booking_date:
        builder.add(item, "BookgDt/Dt", entry.booking_date.isoformat())
    if entry.value_date:
        builder.add(item, "ValDt/Dt", entry.value_date.isoformat())
    if entry.account_servicer_reference:
        builder.add(item, "AcctSvcrRef", entry.account_servicer_reference)
    domain, family, subfamily = entry.domain_family_subfamily.split("/")
    code = builder.add(item, "BkTxCd/Domn")
    builder.add(code, "Cd", domain)
    family_element = builder.add(code, "Fmly")
    builder.add(family_element, "Cd", family)
    builder.add(family_element, "SubFmlyCd", subfamily)
    builder.add(item, "NtryDtls/TxDtls/Refs/EndToEndId", entry.end_to_end_id)


def _balance(document: Document, element) -> Balance:
    amount_minor, currency = document.amount(element, "Amt")
    sign = -1 if document.text(element, "CdtDbtInd") == DEBIT else 1
    date = document.date(element, "Dt/Dt", required=False) or \
        document.datetime(element, "Dt/DtTm").date()
    return Balance(code=(document.text(element, "Tp/CdOrPrtry/Cd", required=False)
                         or document.text(element, "Tp/CdOrPrtry/Prtry", required=False)),
                   amount_minor=sign * amount_minor, currency=currency, date=date)


def _entries(document: Document, element) -> list[StatementEntry]:
    amount_minor, currency = document.amount(element, "Amt")
    domain = document.find(element, "BkTxCd/Domn")
    code = "" if domain is None else "/".join((
        document.text(domain, "Cd"), document.text(domain, "Fmly/Cd"),
        document.text(domain, "Fmly/SubFmlyCd")))
    common = {
        "credit_debit": document.text(element, "CdtDbtInd"),
        "value_date": _date(document, element, "ValDt"),
        "booking_date": _date(document, element, "BookgDt"),
        "account_servicer_reference": document.text(element, "AcctSvcrRef", required=False),
        "status": (document.text(element, "Sts/Cd", required=False)
                   or document.text(element, "Sts/Prtry", required=False)),
        "domain_family_subfamily": code,
    }
    details = document.findall(element, "NtryDtls/TxDtls")
    if len(details) <= 1:
        end_to_end_id = document.text(details[0], "Refs/EndToEndId", required=False) \
            if details else ""
        return [StatementEntry(end_to_end_id, amount_minor, currency, **common)]
    entries = []
    for detail in details:
        if document.find(detail, "Amt") is None:
            raise MessageError("every TxDtls of a batch entry needs its own Amt",
                               element="TxDtls/Amt", line=detail.sourceline)
        detail_minor, detail_currency = document.amount(detail, "Amt")
        entries.append(StatementEntry(
            document.text(detail, "Refs/EndToEndId", required=False), detail_minor,
            detail_currency, **common))
    return entries


def _date(document: Document, element, name: str) -> dt.date | None:
    found = document.find(element, name)
    if found is None:
        return None
    return document.date(found, "Dt", required=False) or document.datetime(found, "DtTm").date()
