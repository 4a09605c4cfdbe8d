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


def _cli(args, cwd, environ):
    import os
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    env = {k: v for k, v in os.environ.items() if k not in ("ONECARD_REFERENCE_DATA", "ONECARD_ISO20022_XSD")}
    env |= {"PYTHONPATH": str(repo)} | environ
    return subprocess.run([sys.executable, "-m", "engine.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True)


def test_iso_schemas_follow_the_reference_data_folder_from_any_directory(tmp_path, shared_data):
    sample = shared_data / "iso20022" / "samples" / "pacs.002.001.10_sample.xml"
    (tmp_path / "data" / "iso20022").mkdir(parents=True)
    (tmp_path / "data" / "iso20022" / "xsd").symlink_to(shared_data / "iso20022" / "xsd")
    done = _cli(["iso", "validate", str(sample)], tmp_path, {"ONECARD_REFERENCE_DATA": str(tmp_path / "data")})
    assert (done.returncode, done.stdout.strip()) == (0, f"{sample}: valid pacs.002.001.10")
    done = _cli(["iso", "validate", str(sample)], tmp_path, {"ONECARD_REFERENCE_DATA": str(tmp_path / "nope")})
    assert (done.returncode, done.stderr.strip()) == (
        1, f"onecard: reference data folder {tmp_path / 'nope'} (from ONECARD_REFERENCE_DATA) does not exist")


def test_the_fare_engine_of_serve_follows_the_reference_data_folder(tmp_path, monkeypatch, shared_data):
    from engine.app import TapSettings, build_services
    from engine.fares.errors import FareRulesError

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ONECARD_REFERENCE_DATA", str(tmp_path))
    with pytest.raises(FareRulesError, match=str(tmp_path / "transit")):
        build_services(None, None, TapSettings())
    monkeypatch.setenv("ONECARD_REFERENCE_DATA", str(shared_data))
    assert build_services(None, None, TapSettings()).taps is not None
