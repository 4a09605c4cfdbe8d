import datetime

import pytest

from adapters.batch_file import BatchLine, TabularBatchFile
from adapters.errors import FileFormatError, TotalsMismatchError
from adapters.pain001_batch import Pain001BatchFile
from engine.disbursement.registry import CardholderRecord, CardStatus
from engine.disbursement.results import LineResult
from engine.disbursement.validation import BatchValidator, ValidationContext, validate_source

TODAY = datetime.date(2026, 1, 1)
ZHANG = CardholderRecord("510121195803142150", "张三", CardStatus.active, "6222026465816998396", "8396", "ICBC")
WANG = CardholderRecord("51340119720505003X", "王\U0002001a", CardStatus.active, "6214825837354017807", "7807", "CDCB")
REGISTRY = {r.id_number: r for r in (ZHANG, WANG)}
TRANSACTIONS = [("L1", "510121195803142150", "张三", "6222026465816998396", "300.00", "CNY"),
                ("L2", "510121195803142150", "张三", "6222026465816998396", "300.00", "CNY"),
                ("L3", "51340119720505003X", "王\U0002001a", "6214825837354017807", "12.345", "CNY")]


def pain001(tmp_path, transactions, *, count=None, control_sum=None):
    body = "".join(
        f"<CdtTrfTxInf><PmtId><EndToEndId>{e2e}</EndToEndId></PmtId>"
        f'<Amt><InstdAmt Ccy="{currency}">{amount}</InstdAmt></Amt>'
        f"<Cdtr><Nm>{name}</Nm><Id><PrvtId><Othr><Id>{id_number}</Id>"
        f"<SchmeNm><Cd>NIDN</Cd></SchmeNm></Othr></PrvtId></Id></Cdtr>"
        f"<CdtrAcct><Id><Othr><Id>{card}</Id></Othr></Id></CdtrAcct>"
        f"<Purp><Prtry>高龄津贴</Prtry></Purp><RmtInf><Ustrd>备注</Ustrd></RmtInf></CdtTrfTxInf>"
        for e2e, id_number, name, card, amount, currency in transactions)
    control = f"<CtrlSum>{control_sum}</CtrlSum>" if control_sum else ""
    xml = (
        '<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.001.001.09"><CstmrCdtTrfInitn>'
        "<GrpHdr><MsgId>DEPT-2026-11</MsgId><CreDtTm>2026-11-30T10:00:00+08:00</CreDtTm>"
        f"<NbOfTxs>{len(transactions) if count is None else count}</NbOfTxs>{control}"
        "<InitgPty><Nm>财政局</Nm></InitgPty></GrpHdr>"
        "<PmtInf><PmtInfId>PI-1</PmtInfId><PmtMtd>TRF</PmtMtd><ReqdExctnDt><Dt>2026-12-01</Dt>"
        "</ReqdExctnDt><Dbtr><Nm>Subsidy Fund</Nm></Dbtr><DbtrAcct><Id><Othr><Id>FUND-001</Id>"
        "</Othr></Id></DbtrAcct><DbtrAgt><FinInstnId><Othr><Id>ONECARD</Id></Othr></FinInstnId>"
        f"</DbtrAgt>{body}</PmtInf></CstmrCdtTrfInitn></Document>")
    path = tmp_path / "batch.xml"
    path.write_bytes(xml.encode())
    return path


def validate(source):
    validator = BatchValidator(ValidationContext(REGISTRY.get, lambda _: False,
                                                 lambda pan: pan, 50_000, TODAY))
    outcomes = list(validate_source(source, validator))
    return outcomes, validator.finish(source.declared_totals())


def test_pain001_lines_are_batch_lines(tmp_path):
    source = Pain001BatchFile(pain001(tmp_path, TRANSACTIONS, control_sum="612.345"))
    outcomes, summary = validate(source)
    assert outcomes[0].line == BatchLine(1, "510121195803142150", "张三", "6222026465816998396", "300.00",
                                         "高龄津贴", "备注", "L1")
    assert [o.result for o in outcomes] == [LineResult.ok, LineResult.duplicate_in_batch, LineResult.amount_precision]
    assert outcomes[2].line.name == "王\U0002001a"
    assert summary.lines_count == 3 and summary.accepted_minor == 30_000


def test_same_batch_as_pain001_and_csv_has_the_same_content_hash(tmp_path):
    xml_summary = validate(Pain001BatchFile(pain001(tmp_path, TRANSACTIONS)))[1]
    csv_path = tmp_path / "batch.csv"
    rows = ["序号,身份证号,姓名,银行卡号,金额,补贴项目,备注"] + [
        f"{e2e},{i},{n},{c},{a},高龄津贴,备注" for e2e, i, n, c, a, _ in TRANSACTIONS]
    csv_path.write_bytes("\n".join(rows).encode("gb18030"))
    assert validate(TabularBatchFile(csv_path))[1] == xml_summary


def test_wrong_group_totals_refuse_the_file(tmp_path):
    source = Pain001BatchFile(pain001(tmp_path, TRANSACTIONS, count=4))
    with pytest.raises(TotalsMismatchError) as caught:
        validate(source)
    assert caught.value.reason_code == "AM18"


def test_other_currency_refuses_the_file(tmp_path):
    transactions = TRANSACTIONS[:1] + [("L2", "510121195803142150", "张三", "6222026465816998396", "5.00", "USD")]
    with pytest.raises(FileFormatError, match="transaction 2 .*L2.* is in USD"):
        validate(Pain001BatchFile(pain001(tmp_path, transactions)))


def test_open_batch_file_picks_the_reader_by_content(tmp_path):
    from adapters.batch_file import open_batch_file

    xml = pain001(tmp_path, TRANSACTIONS)
    assert isinstance(open_batch_file(xml), Pain001BatchFile)
    bom = tmp_path / "bom.xml"
    bom.write_bytes(b"\xef\xbb\xbf\n  " + xml.read_bytes())
    assert [line.line for line in open_batch_file(bom).lines()] == [1, 2, 3]
    with pytest.raises(FileFormatError, match="CSV only"):
        open_batch_file(xml, "gbk")
    csv_path = tmp_path / "b.csv"
    csv_path.write_text("身份证号,姓名,银行卡号,金额\n", encoding="utf-8")
    assert isinstance(open_batch_file(csv_path), TabularBatchFile)
