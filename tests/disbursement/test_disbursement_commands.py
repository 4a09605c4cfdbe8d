import asyncio
import csv
import json

import asyncpg

from engine.cli import main


def test_batch_check_lists_every_bad_line_and_writes_the_result_file(tmp_path, capsys):
    batch, cardholders, result = tmp_path / "b.csv", tmp_path / "c.csv", tmp_path / "r.csv"
    assert main(["synthetic", "batch", str(batch), "--lines", "30", "--encoding", "gbk", "--bad", "amount_precision=1",
                 "--bad", "invalid_id_checksum=1", "--bad", "duplicate_in_batch=1", "--cardholders", str(cardholders)]) == 0
    capsys.readouterr()
    assert main(["batch", "check", str(batch), "--cardholders", str(cardholders), "--per-person-max", "500",
                 "--result", str(result), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["lines"], report["accepted"]) == (30, 27)
    assert sorted(r["reason"] for r in report["rejected"]) == ["amount_precision", "duplicate_in_batch",
                                                                "invalid_id_checksum"]
    with open(result, encoding="utf-8-sig", newline="") as stream:
        rows = list(csv.DictReader(stream))
    assert [int(r["line"]) for r in rows] == list(range(1, 31))
    assert {r["status"] for r in rows} == {"accepted", "rejected"}
    assert {r["reason"] for r in rows if r["status"] == "rejected"} == {r["reason"] for r in report["rejected"]}


def test_batch_check_refuses_a_file_whose_totals_do_not_match(tmp_path, capsys):
    batch, cardholders = tmp_path / "b.csv", tmp_path / "c.csv"
    main(["synthetic", "batch", str(batch), "--lines", "5", "--cardholders", str(cardholders)])
    text = batch.read_text(encoding="utf-8").replace("合计,共5人", "合计,共6人")
    batch.write_text(text, encoding="utf-8")
    capsys.readouterr()
    assert main(["batch", "check", str(batch), "--cardholders", str(cardholders), "--per-person-max", "500"]) == 1
    assert "totals row declares 6 lines, the file has 5" in capsys.readouterr().err


def test_cardholders_check_reports_rows_without_numbers(tmp_path, capsys):
    path = tmp_path / "c.csv"
    path.write_text("身份证号码,姓名,社会保障卡号,状态\n510121195803142151,张三,6222026465816998396,正常\n"
                    "510121195803142150,张三,6222026465816998396,正常\n", encoding="utf-8")
    # Bad rows are outcomes, not a failure of the command: exit 0.
    assert main(["cardholders", "check", str(path)]) == 0
    out = capsys.readouterr().out
    assert "2 rows: 1 ok, 1 rejected" in out and "line 1: invalid_id_checksum" in out
    assert "510121195803142151" not in out and "6222026465816998396" not in out


def test_unreadable_file_is_a_clear_refusal(tmp_path, capsys):
    path = tmp_path / "c.csv"
    path.write_bytes(b"\xff\xfe\xfd\x00")
    assert main(["cardholders", "check", str(path)]) == 1
    assert "not valid UTF-8" in capsys.readouterr().err


def test_import_programme_submit_approve_through_the_cli(cli_home, db_url, tmp_path, capsys):
    batch, cardholders = tmp_path / "b.csv", tmp_path / "c.csv"
    assert main(["synthetic", "batch", str(batch), "--lines", "25", "--encoding", "gbk",
                 "--bad", "name_mismatch=2", "--cardholders", str(cardholders)]) == 0
    assert main(["cardholders", "import", str(cardholders), "--json"]) == 0
    assert main(["programme", "create", "ELDERLY", "--kind", "subsidy", "--name", "高龄津贴",
                 "--per-person-max", "500"]) == 0
    capsys.readouterr()

    assert main(["batch", "submit", str(batch), "--programme", "ELDERLY", "--period", "2026-11",
                 "--as", "maker", "--json"]) == 0
    submitted = json.loads(capsys.readouterr().out)
    assert (submitted["lines"], submitted["accepted"]) == (25, 23)
    batch_id = str(submitted["id"])
    assert main(["batch", "submit", str(batch), "--programme", "ELDERLY", "--period", "2026-11",
                 "--as", "maker"]) == 1
    assert f"already submitted as batch {batch_id}" in capsys.readouterr().err
    assert main(["batch", "approve", batch_id, "--as", "maker"]) == 1
    assert "different user" in capsys.readouterr().err
    assert main(["batch", "approve", batch_id, "--as", "checker"]) == 0
    capsys.readouterr()
    assert main(["batch", "show", batch_id, "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["state"] == "approved" and [h["state"] for h in shown["history"]] == [
        "received", "validated", "approved"]
    assert main(["batch", "show", "999"]) == 1

    # Fund the programme (short of the batch first), execute, report.
    async def bank_codes():
        connection = await asyncpg.connect(db_url)
        try:
            return [r["bank_code"] for r in await connection.fetch(
                "SELECT DISTINCT bank_code FROM disbursement_cardholders ORDER BY 1")]
        finally:
            await connection.close()

    for code in asyncio.run(bank_codes()) + ["CCBFUND"]:
        assert main(["banks", "add", code, "--name", code]) in (0, 1)
    capsys.readouterr()
    assert main(["programme", "fund", "ELDERLY", "1.00", "--bank", "CCBFUND", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["available_minor"] == 100
    assert main(["batch", "execute", batch_id, "--as", "checker"]) == 1
    assert "nothing was posted" in capsys.readouterr().err
    assert main(["programme", "fund", "ELDERLY", f"{submitted['accepted_minor'] / 100:.2f}"]) == 0
    capsys.readouterr()
    assert main(["batch", "execute", batch_id, "--as", "checker", "--json"]) == 0
    executed = json.loads(capsys.readouterr().out)
    assert (executed["state"], executed["lines"], executed["amount_minor"]) == (
        "executed", 23, submitted["accepted_minor"])
    assert main(["batch", "execute", batch_id]) == 1
    assert "is executed" in capsys.readouterr().err
    result = tmp_path / "result.csv"
    assert main(["batch", "report", batch_id, "--format", "csv", "--output", str(result)]) == 0
    with open(result, encoding="utf-8-sig", newline="") as stream:
        rows = list(csv.DictReader(stream))
    assert [int(r["line"]) for r in rows] == list(range(1, 26))
    assert sorted((r["status"], r["reason"]) for r in rows if r["status"] != "accepted") == [
        ("rejected", "name_mismatch")] * 2
    assert main(["batch", "report", batch_id, "--format", "pain002"]) == 0
    assert b"<GrpSts>PART</GrpSts>" in capsys.readouterr().out.encode()
