"""pacs.008.001.08 FI to FI customer credit transfer: the payment instructions the
engine sends each issuing bank (built here, parsed by simbank).

Building is streaming: :func:`iter_messages` cuts any iterable of transfers into messages
of at most :data:`TRANSACTIONS_PER_MESSAGE_MAX` transactions, renders each transaction
from one text template (several times faster than creating lxml elements, measured) and
validates every message against the XSD by parsing it back, in a second thread while the
next message renders, before yielding it: memory stays bounded by a few messages and
nothing unvalidated leaves. Each message is one group
(``GrpHdr`` with exact ``NbOfTxs``, ``CtrlSum`` and ``TtlIntrBkSttlmAmt``), settled by
clearing (``SttlmMtd`` ``CLRG``) on one settlement date, charges ``SLEV``.

Agents are identified by their bank code under ``FinInstnId/Othr/Id``; accounts by
``Othr/Id`` (card numbers, not IBANs).
"""

from __future__ import annotations

import datetime as dt
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from xml.sax.saxutils import escape

from decimal import Decimal

import msgspec

from adapters.errors import AmountError, TotalsMismatchError
from adapters.iso20022 import ids, money, schema
from adapters.iso20022.build import XML_DECLARATION, iso_datetime
from adapters.iso20022.document import Document, read_document

MESSAGE_DEFINITION = "pacs.008.001.08"
# 5,000 transactions make a message of about 3 MB whose parsed tree, while it is
# validated, takes about 30 MB. Measured peak memory above the interpreter for 60,000
# transfers: 125 MB with 10,000 per message, 58 MB with 5,000.
TRANSACTIONS_PER_MESSAGE_MAX = 5_000
# Messages waiting behind the one being validated (memory is a few messages at most).
VALIDATIONS_IN_FLIGHT_MAX = 1
# Validator threads shared by every run: starting a thread per run cost more than
# validating a message of 1,000 transactions (py-spy, disbursement execution builds one
# message per bank and 1,000 lines). Two, as callers may build on two threads at once.
VALIDATOR_THREADS = 2

assert 0 < TRANSACTIONS_PER_MESSAGE_MAX * 1_000 < schema.MESSAGE_BYTES_MAX


class CreditTransfer(msgspec.Struct, frozen=True, gc=False):
    """One ``CdtTrfTxInf``. A msgspec Struct (built a million times for a large
    disbursement batch: a seventh of a frozen dataclass's cost, measured).

    Attributes
    ----------
    end_to_end_id : str
        1-35 characters (:func:`adapters.iso20022.ids.end_to_end_id` of the transfer id).
    amount_minor : int
        ``IntrBkSttlmAmt`` in minor units, > 0.
    currency : str
        ISO 4217 code with a known minor unit.
    creditor_name : str
        1-140 characters (the cardholder).
    creditor_account : str
        1-34 characters (card or account number, ``CdtrAcct/Id/Othr/Id``).
    remittance_information : str
        0-140 characters (``RmtInf/Ustrd``), omitted when empty.
    """

    end_to_end_id: str
    amount_minor: int
    currency: str
    creditor_name: str
    creditor_account: str
    remittance_information: str = ""


@dataclass(frozen=True, slots=True)
class GroupHeader:
    """What every message of one instruction run shares.

    ``purpose`` is an ExternalPurpose1Code (``GOVT`` subsidy, ``BENE`` benefit, ``SALA``
    wages); ``instructing_agent`` is the engine's member code, ``instructed_agent`` the
    receiving bank's; the debtor is the payer (programme fund or wage escrow).
    """

    created_at: dt.datetime
    settlement_date: dt.date
    instructing_agent: str
    instructed_agent: str
    debtor_name: str
    debtor_account: str
    purpose: str = "GOVT"


@dataclass(frozen=True, slots=True)
class Message:
    """One built (validated) or parsed pacs.008 message.

    ``control_sum`` is the exact sum of the amounts (``CtrlSum``); ``xml`` the message
    bytes; ``transfers`` is empty for built messages (streaming) and full for parsed ones.
    """

    message_id: str
    created_at: dt.datetime
    settlement_date: dt.date
    instructing_agent: str
    instructed_agent: str
    transfers: tuple[CreditTransfer, ...]
    control_sum: Decimal
    xml: bytes = b""


# The per-transaction text; the group's fields are filled in once per run (see _template)
# and the five per-transaction fields with one %-format per transaction.
_TRANSACTION = (
    "<CdtTrfTxInf><PmtId><EndToEndId>%s</EndToEndId></PmtId>"
    "<IntrBkSttlmAmt Ccy=\"%s\">%s</IntrBkSttlmAmt><ChrgBr>SLEV</ChrgBr>"
    "<Dbtr><Nm>{debtor}</Nm></Dbtr>"
    "<DbtrAcct><Id><Othr><Id>{debtor_account}</Id></Othr></Id></DbtrAcct>"
    "<DbtrAgt><FinInstnId><Othr><Id>{instructing}</Id></Othr></FinInstnId></DbtrAgt>"
    "<CdtrAgt><FinInstnId><Othr><Id>{instructed}</Id></Othr></FinInstnId></CdtrAgt>"
    "<Cdtr><Nm>%s</Nm></Cdtr>"
    "<CdtrAcct><Id><Othr><Id>%s</Id></Othr></Id></CdtrAcct>"
    "<Purp><Cd>{purpose}</Cd></Purp>%s</CdtTrfTxInf>"
)


def iter_messages(header: GroupHeader, transfers: Iterable[CreditTransfer], *,
                  next_message_id: Callable[[], str] = lambda: ids.new_message_id("P008"),
                  transactions_per_message_max: int = TRANSACTIONS_PER_MESSAGE_MAX,
                  ) -> Iterator[Message]:
    """Cut ``transfers`` into validated pacs.008 messages (streaming).

    Yields :class:`Message` with ``xml`` set and ``transfers`` empty (to keep memory to one
    message); a run of zero transfers yields nothing.

    Raises
    ------
    AmountError
        A non-positive amount, or one in an unknown currency.
    SchemaValidationError
        A value breaks the XSD (e.g. a name over 140 characters); names element and line.
    """
    assert transactions_per_message_max > 0
    template = _template(header)
    chunk: list[str] = []
    totals_minor: dict[str, int] = {}
    # libxml2 parses and validates without holding the GIL, so a validator thread checks
    # message k while this one renders message k+1; messages still come out in order, each
    # only after its validation passed.
    in_flight: deque[tuple[Message, Future]] = deque()
    for transfer in transfers:
        chunk.append(_render(transfer, template))
        currency = transfer.currency
        totals_minor[currency] = totals_minor.get(currency, 0) + transfer.amount_minor
        if len(chunk) == transactions_per_message_max:
            in_flight.append(_submit(header, chunk, totals_minor, next_message_id()))
            chunk, totals_minor = [], {}
            if len(in_flight) > VALIDATIONS_IN_FLIGHT_MAX:
                yield _validated(in_flight.popleft())
    if chunk:
        in_flight.append(_submit(header, chunk, totals_minor, next_message_id()))
    while in_flight:
        yield _validated(in_flight.popleft())


def build(header: GroupHeader, transfers: Iterable[CreditTransfer], message_id: str) -> bytes:
    """One validated pacs.008 message of every transfer (at most
    :data:`TRANSACTIONS_PER_MESSAGE_MAX`); see :func:`iter_messages`."""
    messages = list(iter_messages(header, transfers, next_message_id=lambda: message_id))
    assert len(messages) == 1, "build() takes one message's worth of transfers"
    return messages[0].xml


def parse(data: bytes) -> Message:
    """Parse and validate a received pacs.008.001.08 (bare, prefixed or enveloped).

    Raises
    ------
    MessageError
        Any refusal (subclasses name the element and line): malformed, unsupported
        version, invalid against the XSD, an amount with too many decimals.
    TotalsMismatchError
        ``NbOfTxs`` (``AM18``) or ``CtrlSum`` (``AM10``) differs from the transactions.
    """
    document = read_document(data, (MESSAGE_DEFINITION,))
    group = document.find(document.root, "FIToFICstmrCdtTrf")
    header = document.find(group, "GrpHdr")
    message_id = document.text(header, "MsgId")
    transfers = []
    settlement_date = document.date(header, "IntrBkSttlmDt", required=False)
    instructing = instructed = ""
    for element in document.findall(group, "CdtTrfTxInf"):
        amount_minor, currency = document.amount(element, "IntrBkSttlmAmt")
        settlement_date = settlement_date or document.date(element, "IntrBkSttlmDt",
                                                           required=False)
        instructing = instructing or _agent(document, element, "DbtrAgt")
        instructed = instructed or _agent(document, element, "CdtrAgt")
        transfers.append(CreditTransfer(
            end_to_end_id=document.text(element, "PmtId/EndToEndId"),
            amount_minor=amount_minor,
            currency=currency,
            creditor_name=document.text(element, "Cdtr/Nm", required=False),
            creditor_account=_account(document, element, "CdtrAcct"),
            remittance_information=document.text(element, "RmtInf/Ustrd", required=False),
        ))
    _check_totals(document, header, message_id, transfers)
    return Message(
        message_id=message_id,
        created_at=document.datetime(header, "CreDtTm"),
        settlement_date=settlement_date or document.datetime(header, "CreDtTm").date(),
        instructing_agent=_agent(document, header, "InstgAgt") or instructing,
        instructed_agent=_agent(document, header, "InstdAgt") or instructed,
        transfers=tuple(transfers),
        control_sum=_control_sum(transfers),
        xml=data,
    )


def _template(header: GroupHeader) -> str:
    fields = {
        "debtor": header.debtor_name,
        "debtor_account": header.debtor_account,
        "instructing": header.instructing_agent,
        "instructed": header.instructed_agent,
        "purpose": header.purpose,
    }
    # Escape, then double any % so the %-format per transaction leaves them as they are.
    return _TRANSACTION.format(**{key: _escape(value).replace("%", "%%")
                                  for key, value in fields.items()})


def _render(transfer: CreditTransfer, template: str) -> str:
    if type(transfer.amount_minor) is not int or transfer.amount_minor <= 0:
        raise AmountError(f"{transfer.end_to_end_id}: amount must be a positive int",
                          element="IntrBkSttlmAmt")
    amount = money.format_amount(transfer.amount_minor, transfer.currency)
    fields = (transfer.end_to_end_id, transfer.currency, amount, transfer.creditor_name,
              transfer.creditor_account)
    if _needs_escape("".join(fields) + transfer.remittance_information):
        fields = tuple(_escape(field) for field in fields)
        remittance = _escape(transfer.remittance_information)
    else:
        remittance = transfer.remittance_information
    if remittance:
        remittance = f"<RmtInf><Ustrd>{remittance}</Ustrd></RmtInf>"
    return template % (*fields, remittance)


def _needs_escape(text: str) -> bool:
    # Most transactions need no escaping; one scan of all their text decides.
    return "&" in text or "<" in text or ">" in text or '"' in text


def _escape(text: str) -> str:
    return escape(text, {'"': "&quot;"}) if _needs_escape(text) else text


_VALIDATORS = ThreadPoolExecutor(max_workers=VALIDATOR_THREADS, thread_name_prefix="pacs008-xsd")


def _submit(header: GroupHeader, chunk: list[str],
            totals_minor: dict[str, int], message_id: str) -> tuple[Message, Future]:
    control_sum = sum((money.as_decimal(total, currency)
                       for currency, total in totals_minor.items()), Decimal(0))
    message = _message(header, chunk, control_sum, message_id)
    return message, _VALIDATORS.submit(_validate, message.xml)


def _validate(xml: bytes) -> None:
    # Returns nothing so the parsed tree (several times the message's size) is freed as
    # soon as it was checked, not kept by the Future until the message is yielded.
    schema.parse_validated(xml, MESSAGE_DEFINITION)


def _validated(pending: tuple[Message, Future]) -> Message:
    message, validation = pending
    validation.result()
    return message


def _message(header: GroupHeader, chunk: list[str], control_sum: Decimal,
             message_id: str) -> Message:
    head = (
        f'<Document xmlns="{schema.namespace(MESSAGE_DEFINITION)}"><FIToFICstmrCdtTrf>'
        f"<GrpHdr><MsgId>{escape(message_id)}</MsgId>"
        f"<CreDtTm>{iso_datetime(header.created_at)}</CreDtTm>"
        f"<NbOfTxs>{len(chunk)}</NbOfTxs><CtrlSum>{money.format_decimal(control_sum)}</CtrlSum>"
        f"<IntrBkSttlmDt>{header.settlement_date.isoformat()}</IntrBkSttlmDt>"
        "<SttlmInf><SttlmMtd>CLRG</SttlmMtd></SttlmInf>"
        f"<InstgAgt><FinInstnId><Othr><Id>{escape(header.instructing_agent)}</Id></Othr>"
        "</FinInstnId></InstgAgt>"
        f"<InstdAgt><FinInstnId><Othr><Id>{escape(header.instructed_agent)}</Id></Othr>"
        "</FinInstnId></InstdAgt></GrpHdr>"
    )
    xml = XML_DECLARATION + (head + "".join(chunk) + "</FIToFICstmrCdtTrf></Document>").encode()
    return Message(message_id=message_id, created_at=header.created_at,
                   settlement_date=header.settlement_date,
                   instructing_agent=header.instructing_agent,
                   instructed_agent=header.instructed_agent, transfers=(),
                   control_sum=control_sum, xml=xml)


def _agent(document: Document, element, name: str) -> str:
    found = document.find(element, f"{name}/FinInstnId")
    if found is None:
        return ""
    for path in ("Othr/Id", "BICFI", "ClrSysMmbId/MmbId"):
        value = document.text(found, path, required=False)
        if value:
            return value
    return ""


def _account(document: Document, element, name: str) -> str:
    return (document.text(element, f"{name}/Id/Othr/Id", required=False)
            or document.text(element, f"{name}/Id/IBAN", required=False))


def _check_totals(document: Document, header, message_id: str,
                  transfers: list[CreditTransfer]) -> None:
    count_text = document.text(header, "NbOfTxs")
    if int(count_text) != len(transfers):
        raise TotalsMismatchError(
            f"NbOfTxs is {count_text} but the message has {len(transfers)} transactions",
            element="NbOfTxs", line=document.find(header, "NbOfTxs").sourceline,
            reason_code="AM18", message_id=message_id)
    control_text = document.text(header, "CtrlSum", required=False)
    if control_text:
        expected = money.to_decimal(control_text, element="CtrlSum")
        actual = _control_sum(transfers)
        if expected != actual:
            raise TotalsMismatchError(
                f"CtrlSum is {control_text} but the transactions sum to {actual}",
                element="CtrlSum", line=document.find(header, "CtrlSum").sourceline,
                reason_code="AM10", message_id=message_id)


def _control_sum(transfers: Iterable[CreditTransfer]) -> Decimal:
    return sum((money.as_decimal(t.amount_minor, t.currency) for t in transfers), Decimal(0))
