"""pacs.008.001.08: exact XML, streaming chunks with exact totals, strict parsing."""

import datetime as dt
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.errors import AmountError, SchemaValidationError, TotalsMismatchError
from adapters.iso20022 import ids, money, pacs008
from iso_samples import sample

HEADER = pacs008.GroupHeader(
    created_at=dt.datetime(2026, 11, 30, 19, 0, tzinfo=dt.timezone.utc),
    settlement_date=dt.date(2026, 12, 1), instructing_agent="ONECARD", instructed_agent="ICBC",
    debtor_name="Finance Bureau <Subsidy> & Co", debtor_account="FUND-001")
TRANSFER = pacs008.CreditTransfer(ids.end_to_end_id(1), 10, "CNY", "张三", "6222020000000001",
                                  "2026-11 subsidy")
EXPECTED = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pacs.008.001.08"><FIToFICstmrCdtTrf>'
    "<GrpHdr><MsgId>P008A</MsgId><CreDtTm>2026-11-30T19:00:00Z</CreDtTm><NbOfTxs>1</NbOfTxs>"
    "<CtrlSum>0.10</CtrlSum><IntrBkSttlmDt>2026-12-01</IntrBkSttlmDt>"
    "<SttlmInf><SttlmMtd>CLRG</SttlmMtd></SttlmInf>"
    "<InstgAgt><FinInstnId><Othr><Id>ONECARD</Id></Othr></FinInstnId></InstgAgt>"
    "<InstdAgt><FinInstnId><Othr><Id>ICBC</Id></Othr></FinInstnId></InstdAgt></GrpHdr>"
    "<CdtTrfTxInf><PmtId><EndToEndId>OC00000000000000000000000013</EndToEndId></PmtId>"
    '<IntrBkSttlmAmt Ccy="CNY">0.10</IntrBkSttlmAmt><ChrgBr>SLEV</ChrgBr>'
    "<Dbtr><Nm>Finance Bureau &lt;Subsidy&gt; &amp; Co</Nm></Dbtr>"
    "<DbtrAcct><Id><Othr><Id>FUND-001</Id></Othr></Id></DbtrAcct>"
    "<DbtrAgt><FinInstnId><Othr><Id>ONECARD</Id></Othr></FinInstnId></DbtrAgt>"
    "<CdtrAgt><FinInstnId><Othr><Id>ICBC</Id></Othr></FinInstnId></CdtrAgt>"
    "<Cdtr><Nm>张三</Nm></Cdtr>"
    "<CdtrAcct><Id><Othr><Id>6222020000000001</Id></Othr></Id></CdtrAcct>"
    "<Purp><Cd>GOVT</Cd></Purp><RmtInf><Ustrd>2026-11 subsidy</Ustrd></RmtInf></CdtTrfTxInf>"
    "</FIToFICstmrCdtTrf></Document>"
).encode()


def test_build_gives_exact_xml():
    assert pacs008.build(HEADER, [TRANSFER], "P008A") == EXPECTED


def test_round_trip_keeps_every_field():
    message = pacs008.parse(EXPECTED)
    assert message.transfers == (TRANSFER,)
    assert (message.message_id, message.settlement_date, message.instructing_agent,
            message.instructed_agent, message.control_sum) == (
        "P008A", dt.date(2026, 12, 1), "ONECARD", "ICBC", Decimal("0.10"))


def test_chunks_have_exact_counts_and_control_sums():
    transfers = [pacs008.CreditTransfer(ids.end_to_end_id(n), fen, "CNY", f"Person {n}", f"62{n:014d}")
                 for n, fen in enumerate([10, 20, 30, 1, 99999999, 5, 7], start=1)]
    numbers = iter(range(100))
    messages = list(pacs008.iter_messages(HEADER, transfers, transactions_per_message_max=3,
                                          next_message_id=lambda: f"P008-{next(numbers)}"))
    assert [m.message_id for m in messages] == ["P008-0", "P008-1", "P008-2"]
    assert [m.control_sum for m in messages] == [Decimal("0.60"), Decimal("1000000.05"),
                                                  Decimal("0.07")]
    parsed = [pacs008.parse(m.xml) for m in messages]
    assert [len(m.transfers) for m in parsed] == [3, 3, 1]
    assert b"<NbOfTxs>3</NbOfTxs><CtrlSum>0.60</CtrlSum>" in messages[0].xml
    assert [t for m in parsed for t in m.transfers] == transfers


def test_no_transfers_no_message():
    assert list(pacs008.iter_messages(HEADER, [])) == []


def test_values_outside_the_schema_are_refused_naming_the_element():
    too_long = pacs008.CreditTransfer("E1", 100, "CNY", "x" * 141, "1")
    with pytest.raises(SchemaValidationError, match=r"^Nm \(line 2\): \[facet 'maxLength'\]"):
        pacs008.build(HEADER, [too_long], "P008B")
    with pytest.raises(AmountError, match="must be a positive int"):
        pacs008.build(HEADER, [pacs008.CreditTransfer("E1", 0, "CNY", "a", "1")], "P008B")


def test_inbound_amount_with_too_many_decimals_is_refused_naming_element_and_line():
    data = sample("pacs.008.001.08_sample.xml").replace(
        b'<IntrBkSttlmAmt Ccy="USD">510000.74<', b'<IntrBkSttlmAmt Ccy="USD">510000.745<')
    with pytest.raises(AmountError,
                       match=r"^IntrBkSttlmAmt \(line 25\): 510000.745 has more decimals than USD allows \(2\)"):
        pacs008.parse(data)


@pytest.mark.parametrize("old, new, code", [
    (b"<NbOfTxs>1</NbOfTxs>", b"<NbOfTxs>2</NbOfTxs>", "AM18"),
    (b"<CtrlSum>0.10</CtrlSum>", b"<CtrlSum>0.11</CtrlSum>", "AM10"),
])
def test_wrong_totals_are_refused(old, new, code):
    with pytest.raises(TotalsMismatchError) as caught:
        pacs008.parse(EXPECTED.replace(old, new))
    assert caught.value.reason_code == code and caught.value.message_id == "P008A"


@pytest.mark.parametrize("name", ["pacs.008.001.08_sample.xml", "pacs.008.001.08_with_AppHdr_sample.xml"])
def test_samples_parse(name):
    message = pacs008.parse(sample(name))
    assert len(message.transfers) == 1
    assert message.transfers[0].end_to_end_id == "Scenario01EtoEId001"
    assert message.transfers[0].amount_minor in (51000074, 5174)


_XML_TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc")) | st.sampled_from("<>&\"'%"),
    min_size=1, max_size=140).filter(lambda text: text.strip() == text)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(_XML_TEXT, st.integers(min_value=1, max_value=10**17),
                          st.sampled_from(["CNY", "JPY", "BHD"])), min_size=1, max_size=5),
       _XML_TEXT)
def test_build_parse_round_trip_property(rows, debtor):
    header = pacs008.GroupHeader(HEADER.created_at, HEADER.settlement_date, "ONECARD", "ICBC",
                                 debtor, "FUND-001")
    transfers = [pacs008.CreditTransfer(ids.end_to_end_id(n), amount, currency, name, f"A{n}")
                 for n, (name, amount, currency) in enumerate(rows)]
    try:
        xml = pacs008.build(header, transfers, "P008P")
    except SchemaValidationError:
        return  # e.g. a name the XSD's Max140Text refuses (length counts differ from Python's)
    message = pacs008.parse(xml)
    assert message.transfers == tuple(transfers)
    assert message.control_sum == sum(
        (money.as_decimal(t.amount_minor, t.currency) for t in transfers), Decimal(0))
