import pytest

from engine.errors import ReferenceDataError
from engine.reference_data import CHECKOUT_DEFAULT, reference_data_dir, reference_file


def test_default_is_shared_data_beside_the_checkout(shared_data):
    assert reference_data_dir({}).resolve() == shared_data.resolve() == CHECKOUT_DEFAULT.resolve()


def test_environment_variable_wins(tmp_path):
    (tmp_path / "identity").mkdir()
    assert reference_data_dir({"ONECARD_REFERENCE_DATA": str(tmp_path)}) == tmp_path


def test_missing_folder_or_file_is_a_clear_error(tmp_path, monkeypatch):
    with pytest.raises(ReferenceDataError, match="ONECARD_REFERENCE_DATA"):
        reference_data_dir({"ONECARD_REFERENCE_DATA": str(tmp_path / "nope")})
    with pytest.raises(ReferenceDataError, match="bin.csv is missing"):
        reference_file("identity/cn_bank_bin/bin.csv", {"ONECARD_REFERENCE_DATA": str(tmp_path)})
    monkeypatch.setattr("engine.reference_data.CHECKOUT_DEFAULT", tmp_path / "absent")
    with pytest.raises(ReferenceDataError, match="set ONECARD_REFERENCE_DATA"):
        reference_data_dir({})
