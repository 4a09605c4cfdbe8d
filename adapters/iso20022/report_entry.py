"""One ``Ntry`` (ReportEntry10) of camt.053 statements and camt.054 notifications: read
and written the same way for both.

Each booked payment is one ``Ntry`` with one ``TxDtls`` whose ``Refs/EndToEndId`` is the
instruction's EndToEndId. When reading, an entry with several ``TxDtls`` (batch booking)
becomes one :class:`StatementEntry` per ``TxDtls`` with that ``TxDtls/Amt``; an entry
without ``TxDtls`` keeps an empty EndToEndId.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from adapters.errors import MessageError
from adapters.iso20022.build import Builder
from adapters.iso20022.document import Document

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


def build(builder: Builder, parent, entry: StatementEntry) -> None:
    """Append one ``Ntry`` with one ``TxDtls`` for ``entry`` under ``parent``."""
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


def read(document: Document, element) -> list[StatementEntry]:
    """The entries of one ``Ntry`` element (one per ``TxDtls`` of a batch entry)."""
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
