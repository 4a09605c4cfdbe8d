"""pacs.002.001.10: exact XML, the namespace/envelope variants of field-pitfalls, versions."""

import datetime as dt

import pytest

from adapters.errors import (MalformedMessageError, MessageError, SchemaValidationError,
                             UnsupportedMessageError)
from adapters.iso20022 import pacs002
from iso_samples import (beside_app_header, in_unknown_envelope, prefix_declared_on_envelope,
                         prefixed, sample)

CREATED_AT = dt.datetime(2026, 11, 30, 19, 0, tzinfo=dt.timezone.utc)
STATUSES = [
    pacs002.TransactionStatus("OC00000000000000000000000006", "ACSC"),
    pacs002.TransactionStatus("OC00000000000000000000000014", "RJCT", "AC04",
                              additional_information="account closed"),
]
EXPECTED = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pacs.002.001.10"><FIToFIPmtStsRpt>'
    "<GrpHdr><MsgId>P002A</MsgId><CreDtTm>2026-11-30T19:00:00Z</CreDtTm></GrpHdr>"
    "<OrgnlGrpInfAndSts><OrgnlMsgId>P008A</OrgnlMsgId><OrgnlMsgNmId>pacs.008.001.08"
    "</OrgnlMsgNmId></OrgnlGrpInfAndSts>"
    "<TxInfAndSts><OrgnlEndToEndId>OC00000000000000000000000006</OrgnlEndToEndId>"
    "<TxSts>ACSC</TxSts></TxInfAndSts>"
    "<TxInfAndSts><OrgnlEndToEndId>OC00000000000000000000000014</OrgnlEndToEndId>"
    "<TxSts>RJCT</TxSts><StsRsnInf><Rsn><Cd>AC04</Cd></Rsn><AddtlInf>account closed"
    "</AddtlInf></StsRsnInf></TxInfAndSts>"
    "</FIToFIPmtStsRpt></Document>"
).encode()


def test_build_gives_exact_xml():
    assert pacs002.build("P002A", CREATED_AT, "P008A", STATUSES) == EXPECTED


def test_round_trip():
    report = pacs002.parse(EXPECTED)
    assert report.message_id == "P002A" and report.original_message_id == "P008A"
    assert report.created_at == CREATED_AT
    assert report.transactions == tuple(
        pacs002.TransactionStatus(s.original_end_to_end_id, s.status, s.reason_code, "P008A",
                                  s.additional_information) for s in STATUSES)


def test_proprietary_reason_and_group_rejection():
    xml = pacs002.build("P002B", CREATED_AT, "P008B", [], group_status="RJCT",
                        group_reason_code="FF01")
    assert b"<GrpSts>RJCT</GrpSts><StsRsnInf><Rsn><Cd>FF01</Cd></Rsn></StsRsnInf>" in xml
    xml = pacs002.build("P002C", CREATED_AT, "P008C",
                        [pacs002.TransactionStatus("E1", "RJCT", "card_not_active")])
    assert b"<Rsn><Prtry>card_not_active</Prtry></Rsn>" in xml
    assert pacs002.parse(xml).transactions[0].reason_code == "card_not_active"


def test_sample_parses():
    report = pacs002.parse(sample("pacs.002.001.10_sample.xml"))
    assert report.message_id == "20250310QMGFNP31000001"
    assert report.original_message_id == "20250310B1QDRCQR000001"
    assert [(t.status, t.original_message_id) for t in report.transactions] == [
        ("ACSC", "20250310B1QDRCQR000001")]


@pytest.mark.parametrize("variant", [prefixed, beside_app_header, in_unknown_envelope,
                                     prefix_declared_on_envelope])
@pytest.mark.parametrize("original", ["built", "sample"])
def test_variants_parse_identically(variant, original):
    data = EXPECTED if original == "built" else sample("pacs.002.001.10_sample.xml")
    assert pacs002.parse(variant(data)) == pacs002.parse(data)


def test_undeclared_prefix_is_a_clear_error():
    data = prefixed(EXPECTED).replace(b' xmlns:Doc="urn:iso:std:iso:20022:tech:xsd:pacs.002.001.10"', b"")
    with pytest.raises(MalformedMessageError, match="Namespace prefix Doc on Document is not defined"):
        pacs002.parse(data)


def test_unsupported_version_is_refused_explicitly():
    data = EXPECTED.replace(b"pacs.002.001.10", b"pacs.002.001.03")
    with pytest.raises(UnsupportedMessageError,
                       match=r"version pacs.002.001.03 is not supported \(supported: pacs.002.001.10\)"):
        pacs002.parse(data)


def test_other_message_is_refused():
    with pytest.raises(UnsupportedMessageError, match="expected pacs.002.001.10, got camt.053.001.08"):
        pacs002.parse(sample("camt.053.001.08_sample.xml"))


def test_invalid_status_names_element():
    data = EXPECTED.replace(b"<TxSts>ACSC</TxSts>", b"<TxSts>ACSCX</TxSts>")
    with pytest.raises(SchemaValidationError, match=r"^TxSts \(line 2\): \[facet 'maxLength'\]"):
        pacs002.parse(data)
    data = EXPECTED.replace(b"<TxSts>ACSC</TxSts>", b"<TxSts>OK</TxSts>")
    with pytest.raises(MessageError, match=r"^TxSts \(line 2\): unknown transaction status 'OK'"):
        pacs002.parse(data)


def test_missing_original_message_id_is_refused():
    data = EXPECTED.replace(
        b"<OrgnlGrpInfAndSts><OrgnlMsgId>P008A</OrgnlMsgId><OrgnlMsgNmId>pacs.008.001.08"
        b"</OrgnlMsgNmId></OrgnlGrpInfAndSts>", b"")
    with pytest.raises(MessageError, match="no original message id"):
        pacs002.parse(data)


def test_resolve_keeps_first_final_status_and_reports_conflicts():
    arrivals = [
        pacs002.TransactionStatus("E1", "ACSP"),
        pacs002.TransactionStatus("E2", "ACSC"),
        pacs002.TransactionStatus("E1", "ACSC"),
        pacs002.TransactionStatus("E2", "ACSP"),   # stale interim after the final
        pacs002.TransactionStatus("E2", "ACSC"),   # duplicate
        pacs002.TransactionStatus("E1", "RJCT", "AC04"),  # contradicts the final
    ]
    standing, conflicts = pacs002.resolve(arrivals)
    assert {key: value.status for key, value in standing.items()} == {"E1": "ACSC", "E2": "ACSC"}
    assert conflicts == [arrivals[5]]


def test_app_header_must_agree_with_the_document():
    data = beside_app_header(EXPECTED).replace(b"<MsgDefIdr>pacs.002.001.10<", b"<MsgDefIdr>pacs.008.001.08<")
    with pytest.raises(MessageError, match="AppHdr says pacs.008.001.08 but the Document is pacs.002.001.10"):
        pacs002.parse(data)
