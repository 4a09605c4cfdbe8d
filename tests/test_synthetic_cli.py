import datetime
import json

from adapters.batch_file import TabularBatchFile
from adapters.cardholder_file import cardholder_lines
from engine.cli import main
from engine.disbursement.bank_card import BinTable
from engine.disbursement.registry import ImportResult, check_cardholder_rows
from engine.disbursement.validation import BatchValidator, ValidationContext, validate_source

TODAY = datetime.date(2026, 1, 1)


def test_batch_and_its_registry_validate_as_planned(tmp_path, capsys):
    batch, cardholders = tmp_path / "batch.csv", tmp_path / "cardholders.csv"
    code = main(["synthetic", "batch", str(batch), "--lines", "40", "--encoding", "gbk", "--bad", "name_mismatch=2",
                 "--bad", "card_not_active=1", "--bad", "duplicate_in_batch=1", "--cardholders", str(cardholders),
                 "--json"])
    assert code == 0
    assert json.loads(capsys.readouterr().out)["paths"] == [str(batch), str(cardholders)]
    rows = [r for r in check_cardholder_rows(cardholder_lines(cardholders), BinTable.load(), TODAY)]
    assert {r.result for r in rows} == {ImportResult.ok}
    registry = {r.id_number: r for r in rows}

    def lookup(number):
        from engine.disbursement.registry import CardholderRecord

        row = registry.get(number)
        return row and CardholderRecord(row.id_number, row.name, row.status, row.card_number,
                                        row.card_number[-4:], row.bank_code, row.categories)

    source = TabularBatchFile(batch)
    validator = BatchValidator(ValidationContext(lookup, lambda _: False, lambda pan: pan, 50_000, TODAY))
    list(validate_source(source, validator))
    summary = validator.finish(source.declared_totals())
    assert summary.results == {"ok": 36, "name_mismatch": 2, "card_not_active": 1, "duplicate_in_batch": 1}


def test_bad_arguments_are_usage_errors(tmp_path, capsys):
    assert main(["synthetic", "batch", str(tmp_path / "b.csv"), "--bad", "ok=1"]) == 2
    assert main(["synthetic", "batch", str(tmp_path / "b.csv"), "--lines", "2", "--bad", "amount_precision=5"]) == 2
    assert main(["synthetic", "cardholders", str(tmp_path / "c.csv"), "--count", "0"]) == 2
    assert "onecard: " in capsys.readouterr().err
