"""pain.001.001.09 in (exact totals, per-line precision) and pain.002.001.10 out."""

import datetime as dt
import io
from decimal import Decimal

import pytest

from adapters.errors import (AmountError, MalformedMessageError, SchemaValidationError,
                             TotalsMismatchError, UnsupportedMessageError)
from adapters.iso20022 import pain001, pain002, schema
from iso_samples import sample

CREATED_AT = dt.datetime(2026, 11, 30, 19, 0, tzinfo=dt.timezone.utc)


def _batch(amounts, *, count=None, control_sum=None, currency="CNY"):
    lines = "".join(
        f"<CdtTrfTxInf><PmtId><EndToEndId>L{n}</EndToEndId></PmtId>"
        f'<Amt><InstdAmt Ccy="{currency}">{amount}</InstdAmt></Amt>'
        f"<Cdtr><Nm>Person {n}</Nm><Id><PrvtId><Othr><Id>11010519491231002X</Id>"
        f"<SchmeNm><Cd>NIDN</Cd></SchmeNm></Othr></PrvtId></Id></Cdtr>"
        f"<CdtrAcct><Id><Othr><Id>6222020000000{n:03d}</Id></Othr></Id></CdtrAcct>"
        f"<Purp><Prtry>ELDERLY</Prtry></Purp><RmtInf><Ustrd>row {n}</Ustrd></RmtInf></CdtTrfTxInf>"
        for n, amount in enumerate(amounts, start=1))
    count = len(amounts) if count is None else count
    control = f"<CtrlSum>{control_sum}</CtrlSum>" if control_sum else ""
    return (
        '<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.001.001.09"><CstmrCdtTrfInitn>'
        f"<GrpHdr><MsgId>DEPT-2026-11</MsgId><CreDtTm>2026-11-30T10:00:00+08:00</CreDtTm>"
        f"<NbOfTxs>{count}</NbOfTxs>{control}<InitgPty><Nm>Finance Bureau</Nm></InitgPty></GrpHdr>"
        "<PmtInf><PmtInfId>PI-1</PmtInfId><PmtMtd>TRF</PmtMtd><ReqdExctnDt><Dt>2026-12-01</Dt>"
        "</ReqdExctnDt><Dbtr><Nm>Subsidy Fund</Nm></Dbtr><DbtrAcct><Id><Othr><Id>FUND-001</Id>"
        "</Othr></Id></DbtrAcct><DbtrAgt><FinInstnId><Othr><Id>ONECARD</Id></Othr></FinInstnId>"
        f"</DbtrAgt>{lines}</PmtInf></CstmrCdtTrfInitn></Document>"
    ).encode()


def test_exact_control_sum_of_tenths_is_accepted():
    batch = pain001.parse(_batch(["0.10", "0.20", "0.30"], control_sum="0.60"))
    assert batch.control_sum == Decimal("0.60")
    assert [line.amount_minor for line in batch.lines] == [10, 20, 30]
    first = batch.lines[0]
    assert (first.line, first.identity_number, first.account, first.programme_item, first.remark,
            first.creditor_name, first.payment_information_id) == (
        1, "11010519491231002X", "6222020000000001", "ELDERLY", "row 1", "Person 1", "PI-1")
    assert batch.debtor_account == "FUND-001" and batch.initiating_party == "Finance Bureau"


def test_wrong_control_sum_gets_a_group_rejection():
    with pytest.raises(TotalsMismatchError) as caught:
        pain001.parse(_batch(["0.10", "0.20", "0.30"], control_sum="0.70"))
    error = caught.value
    assert (error.reason_code, error.element, error.line, error.message_id) == (
        "AM10", "GrpHdr/CtrlSum", 1, "DEPT-2026-11")
    assert str(error) == "GrpHdr/CtrlSum (line 1): CtrlSum is 0.70 but the amounts sum to 0.60"
    assert pain002.build_group_rejection("N002A", CREATED_AT, error) == (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.002.001.10"><CstmrPmtStsRpt>'
        "<GrpHdr><MsgId>N002A</MsgId><CreDtTm>2026-11-30T19:00:00Z</CreDtTm></GrpHdr>"
        "<OrgnlGrpInfAndSts><OrgnlMsgId>DEPT-2026-11</OrgnlMsgId><OrgnlMsgNmId>pain.001.001.09"
        "</OrgnlMsgNmId><GrpSts>RJCT</GrpSts><StsRsnInf><Rsn><Cd>AM10</Cd></Rsn>"
        "<AddtlInf>GrpHdr/CtrlSum (line 1): CtrlSum is 0.70 but the amounts sum to 0.60</AddtlInf>"
        "</StsRsnInf></OrgnlGrpInfAndSts></CstmrPmtStsRpt></Document>").encode()


def test_wrong_count_is_am18():
    with pytest.raises(TotalsMismatchError, match="NbOfTxs is 4 but there are 3") as caught:
        pain001.parse(_batch(["1.00", "2.00", "3.00"], count=4))
    assert caught.value.reason_code == "AM18"


def test_sample_has_a_wrong_count_and_is_refused():
    # The shared sample declares NbOfTxs 2 but carries 5 transactions.
    with pytest.raises(TotalsMismatchError, match=r"NbOfTxs \(line 8\): NbOfTxs is 2 but there are 5"):
        pain001.parse(sample("pain.001.001.09_sample.xml"))
    fixed = sample("pain.001.001.09_sample.xml").replace(b"<NbOfTxs>2<", b"<NbOfTxs>5<")
    batch = pain001.parse(fixed)
    assert sum(line.amount_minor for line in batch.lines) == 110000
    assert [line.end_to_end_id for line in batch.lines][:2] == ["PaymentID6789", "PaymentID4321"]


def test_too_many_decimals_marks_the_line_not_the_file():
    batch = pain001.parse(_batch(["12.345", "1.00"], control_sum="13.345"))
    assert [(line.amount, line.amount_minor) for line in batch.lines] == [
        (Decimal("12.345"), None), (Decimal("1.00"), 100)]


def test_unknown_currency_refuses_the_file():
    with pytest.raises(AmountError, match="XTS"):
        pain001.parse(_batch(["1.00"], currency="XTS"))


def test_line_statuses_are_grouped_by_payment_information():
    xml = pain002.build("N002B", CREATED_AT, "DEPT-2026-11", group_status="PART",
                        original_number_of_transactions=2, original_control_sum=Decimal("0.30"),
                        lines=[pain002.LineStatus("PI-1", "L1", "ACCP"),
                               pain002.LineStatus("PI-1", "L2", "RJCT", "invalid_id_checksum",
                                                  "line 2")])
    assert xml.endswith(
        b"<OrgnlNbOfTxs>2</OrgnlNbOfTxs><OrgnlCtrlSum>0.30</OrgnlCtrlSum><GrpSts>PART</GrpSts>"
        b"</OrgnlGrpInfAndSts><OrgnlPmtInfAndSts><OrgnlPmtInfId>PI-1</OrgnlPmtInfId>"
        b"<TxInfAndSts><OrgnlEndToEndId>L1</OrgnlEndToEndId><TxSts>ACCP</TxSts></TxInfAndSts>"
        b"<TxInfAndSts><OrgnlEndToEndId>L2</OrgnlEndToEndId><TxSts>RJCT</TxSts><StsRsnInf>"
        b"<Rsn><Prtry>invalid_id_checksum</Prtry></Rsn><AddtlInf>line 2</AddtlInf></StsRsnInf>"
        b"</TxInfAndSts></OrgnlPmtInfAndSts></CstmrPmtStsRpt></Document>")


def test_long_additional_information_is_split_not_cut():
    xml = pain002.build("N002C", CREATED_AT, "B", group_status="RJCT", group_reason_code="FF01",
                        group_additional_information="y" * 200)
    assert xml.count(b"<AddtlInf>") == 2 and xml.count(b"y") == 200


def test_reader_streams_from_a_file_with_the_header_first(tmp_path):
    path = tmp_path / "batch.xml"
    path.write_bytes(_batch(["0.10", "0.20", "0.30"], control_sum="0.60"))
    reader = pain001.Reader(path)
    seen = []
    for line in reader:
        seen.append((line.line, line.amount_minor, reader.header.message_id))
    assert seen == [(1, 10, "DEPT-2026-11"), (2, 20, "DEPT-2026-11"), (3, 30, "DEPT-2026-11")]
    assert reader.header.control_sum == Decimal("0.60") and reader.debtor_name == "Subsidy Fund"


def test_each_payment_information_is_checked_when_it_ends():
    two = _batch(["1.00", "2.00"]).replace(
        b"<PmtMtd>TRF</PmtMtd>", b"<PmtMtd>TRF</PmtMtd><NbOfTxs>2</NbOfTxs><CtrlSum>3.01</CtrlSum>")
    reader = pain001.Reader(io.BytesIO(two))
    with pytest.raises(TotalsMismatchError, match=r"^PmtInf/CtrlSum \(line 1\): CtrlSum is 3.01 but the amounts sum to 3.00"):
        list(reader)


def test_schema_errors_name_the_exact_line_after_streaming():
    data = _batch(["1.00", "2.00"]).replace(b"><", b">\n<")
    bad = data.replace(b"<Nm>Person 2</Nm>", b"<Nm></Nm>")
    with pytest.raises(SchemaValidationError, match=r"^Nm \(line 76\): \[facet 'minLength'\]"):
        pain001.parse(bad)


def test_other_versions_and_envelopes_are_refused():
    data = _batch(["1.00"])
    with pytest.raises(UnsupportedMessageError, match="pain.001.001.03 is not supported"):
        pain001.parse(data.replace(b"pain.001.001.09", b"pain.001.001.03"))
    with pytest.raises(MalformedMessageError, match="must be a bare ISO 20022 Document"):
        pain001.parse(b"<Envelope>" + data + b"</Envelope>")
    with pytest.raises(MalformedMessageError, match="not well-formed"):
        pain001.parse(data[:-20])
    with pytest.raises(MalformedMessageError, match="DOCTYPE is not allowed"):
        pain001.parse(b'<!DOCTYPE Document [<!ENTITY x "1.00">]>' + data)


@pytest.mark.parametrize("root, reason", [
    (b"Doc:Document", "namespace prefix 'Doc' is not declared"),
    (b"Doc:", "'Doc:' is not a valid element name"),
    (b"Doc:Doc:Document", "'Doc:Doc:Document' is not a valid element name"),
])
def test_a_root_with_a_bad_prefix_is_a_clear_error(root, reason):
    # lxml's streaming parser hands such a root over as a raw name, not a syntax error.
    from iso_samples import prefixed

    data = prefixed(sample("pain.001.001.09_sample.xml"))
    data = data.replace(b"Doc:Document", root, 1)
    if root == b"Doc:Document":
        data = data.replace(b' xmlns:Doc="urn:iso:std:iso:20022:tech:xsd:pain.001.001.09"', b"")
    with pytest.raises(MalformedMessageError) as caught:
        pain001.parse(data)
    # libxml2 numbers an element by the line its start tag ends on (the sample's root
    # start tag spans two lines).
    assert (caught.value.element, caught.value.reason, caught.value.line) == (
        root.decode(), reason, 2)


def test_streamed_report_is_validated_from_the_file(tmp_path):
    path = tmp_path / "report.xml"
    with open(path, "wb") as stream:
        writer = pain002.Writer(stream, "N002D", CREATED_AT, "B", group_status="PART",
                                original_number_of_transactions=3)
        for n, status in enumerate(("ACSC", "RJCT", "ACCP"), 1):
            writer.add(pain002.LineStatus("PI-1", f"L{n}", status, "AC04" if status == "RJCT" else ""))
        writer.close()
    schema.validate_file(path, pain002.MESSAGE_DEFINITION)
    assert path.read_bytes() == pain002.build(
        "N002D", CREATED_AT, "B", group_status="PART", original_number_of_transactions=3,
        lines=[pain002.LineStatus("PI-1", f"L{n}", s, "AC04" if s == "RJCT" else "")
               for n, s in enumerate(("ACSC", "RJCT", "ACCP"), 1)])
    valid = path.read_bytes()
    # A status outside the code set (more than 4 characters) is refused by the streaming check.
    path.write_bytes(valid.replace(b"<TxSts>ACCP</TxSts>", b"<TxSts>ACCEPT</TxSts>"))
    with pytest.raises(SchemaValidationError, match="TxSts") as refused:
        schema.validate_file(path, pain002.MESSAGE_DEFINITION)
    assert refused.value.element == "TxSts"
    path.write_bytes(valid[:-20])
    with pytest.raises(MalformedMessageError, match="not well-formed"):
        schema.validate_file(path, pain002.MESSAGE_DEFINITION)
