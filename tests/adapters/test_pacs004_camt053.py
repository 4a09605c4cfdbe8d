"""pacs.004 (.09/.10) and camt.053.001.08: exact XML, samples, round trips."""

import datetime as dt

import pytest

from adapters.errors import AmountError, MessageError, TotalsMismatchError
from adapters.iso20022 import camt053, camt054, pacs004
from iso_samples import sample

CREATED_AT = dt.datetime(2026, 11, 30, 19, 0, tzinfo=dt.timezone.utc)
RETURN = pacs004.PaymentReturn("R1", "P008A", "OC00000000000000000000000014", 1234, "CNY", "AC04",
                               "account closed")


@pytest.mark.parametrize("definition", pacs004.MESSAGE_DEFINITIONS)
def test_pacs004_exact_xml_and_round_trip(definition):
    xml = pacs004.build("P004A", CREATED_AT, dt.date(2026, 12, 1), [RETURN],
                        message_definition=definition)
    assert xml == (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<Document xmlns="urn:iso:std:iso:20022:tech:xsd:{definition}"><PmtRtr><GrpHdr>'
        "<MsgId>P004A</MsgId><CreDtTm>2026-11-30T19:00:00Z</CreDtTm><NbOfTxs>1</NbOfTxs>"
        "<CtrlSum>12.34</CtrlSum><IntrBkSttlmDt>2026-12-01</IntrBkSttlmDt>"
        "<SttlmInf><SttlmMtd>CLRG</SttlmMtd></SttlmInf></GrpHdr><TxInf><RtrId>R1</RtrId>"
        "<OrgnlGrpInf><OrgnlMsgId>P008A</OrgnlMsgId><OrgnlMsgNmId>pacs.008.001.08</OrgnlMsgNmId>"
        "</OrgnlGrpInf><OrgnlEndToEndId>OC00000000000000000000000014</OrgnlEndToEndId>"
        '<RtrdIntrBkSttlmAmt Ccy="CNY">12.34</RtrdIntrBkSttlmAmt><RtrRsnInf><Rsn><Cd>AC04</Cd>'
        "</Rsn><AddtlInf>account closed</AddtlInf></RtrRsnInf></TxInf></PmtRtr></Document>"
    ).encode()
    parsed = pacs004.parse(xml)
    assert parsed.returns == (RETURN,) and parsed.message_definition == definition


def test_pacs004_sample_parses():
    parsed = pacs004.parse(sample("pacs.004.001.10_sample.xml"))
    assert [(r.original_end_to_end_id, r.amount_minor, r.currency, r.reason_code)
            for r in parsed.returns] == [("Scenario01EtoEId001", 15100074, "USD", "DUPL")]


def test_pacs004_wrong_control_sum_and_missing_end_to_end_id():
    xml = pacs004.build("P004A", CREATED_AT, dt.date(2026, 12, 1), [RETURN])
    with pytest.raises(TotalsMismatchError, match="AM10|CtrlSum"):
        pacs004.parse(xml.replace(b"<CtrlSum>12.34<", b"<CtrlSum>12.35<"))
    with pytest.raises(MessageError, match="OrgnlEndToEndId"):
        pacs004.parse(xml.replace(b"<OrgnlEndToEndId>OC00000000000000000000000014</OrgnlEndToEndId>", b""))


STATEMENT = camt053.Statement(
    message_id="C053A", created_at=CREATED_AT, statement_id="ICBC-2026-12-01-2",
    account="ONECARD-ICBC",
    balances=(camt053.Balance("OPBD", 0, "CNY", dt.date(2026, 12, 1)),
              camt053.Balance("CLBD", -1200, "CNY", dt.date(2026, 12, 1))),
    entries=(camt053.StatementEntry("E1", 1234, "CNY", "DBIT", dt.date(2026, 12, 1),
                                    dt.date(2026, 12, 1), "BK-1"),
             camt053.StatementEntry("E0", 34, "CNY", "CRDT", dt.date(2026, 12, 1),
                                    dt.date(2026, 12, 1), "RTR-2", "BOOK", "PMNT/ICDT/RRTN")))


def test_camt053_round_trip_and_entry_xml():
    xml = camt053.build(STATEMENT)
    assert camt053.parse(xml) == STATEMENT
    assert (b'<Ntry><Amt Ccy="CNY">12.34</Amt><CdtDbtInd>DBIT</CdtDbtInd><Sts><Cd>BOOK</Cd></Sts>'
            b"<BookgDt><Dt>2026-12-01</Dt></BookgDt><ValDt><Dt>2026-12-01</Dt></ValDt>"
            b"<AcctSvcrRef>BK-1</AcctSvcrRef><BkTxCd><Domn><Cd>PMNT</Cd><Fmly><Cd>ICDT</Cd>"
            b"<SubFmlyCd>DMCT</SubFmlyCd></Fmly></Domn></BkTxCd><NtryDtls><TxDtls><Refs>"
            b"<EndToEndId>E1</EndToEndId></Refs></TxDtls></NtryDtls></Ntry>") in xml
    assert (b'<Bal><Tp><CdOrPrtry><Cd>CLBD</Cd></CdOrPrtry></Tp><Amt Ccy="CNY">12.00</Amt>'
            b"<CdtDbtInd>DBIT</CdtDbtInd><Dt><Dt>2026-12-01</Dt></Dt></Bal>") in xml


def test_camt053_sample_parses():
    statement = camt053.parse(sample("camt.053.001.08_sample.xml"))
    assert statement.account == "NL26VAYB8060476890"
    assert [(b.code, b.amount_minor, b.currency) for b in statement.balances] == [
        ("OPBD", 1815, "EUR"), ("CLBD", -2700, "SEK"), ("OPAV", 3500, "CHF"), ("CLAV", -2700, "JPY")]
    assert [(e.end_to_end_id, e.amount_minor, e.currency, e.credit_debit, e.value_date)
            for e in statement.entries] == [
        ("MUELL/FINP/RA12345", 885, "EUR", "CRDT", dt.date(2015, 1, 2))]


def test_camt053_amount_with_too_many_decimals_names_the_element():
    data = sample("camt.053.001.08_sample.xml").replace(b'<Amt Ccy="EUR">8.85<', b'<Amt Ccy="EUR">8.855<')
    with pytest.raises(AmountError, match=r"^Amt \(line 111\): 8.855 has more decimals than EUR"):
        camt053.parse(data)


def test_camt054_sample_batch_entry_gives_one_item_per_transaction():
    notification = camt054.parse(sample("camt.054.001.08_sample.xml"))
    assert notification.account == "CH2801234000123456789"
    assert [(e.end_to_end_id, e.amount_minor, e.currency, e.credit_debit, e.value_date)
            for e in notification.entries] == [
        ("UXC06170000006PI00001EE00001", 310, "CHF", "DBIT", dt.date(2007, 10, 18)),
        ("UXC06170000006PI00001EE00002", 320, "CHF", "DBIT", dt.date(2007, 10, 18)),
        ("UXC06170000006PI00001EE00002", 320, "CHF", "DBIT", dt.date(2007, 10, 18)),
    ]


def test_camt054_batch_entry_without_amounts_is_refused():
    data = sample("camt.054.001.08_sample.xml").replace(b'<Amt Ccy="CHF">3.2</Amt>\n            <CdtDbtInd>', b'<CdtDbtInd>', 1)
    with pytest.raises(MessageError, match=r"^TxDtls/Amt \(line 187\): every TxDtls of a batch entry needs its own Amt"):
        camt054.parse(data)
