"""Fixtures of the disbursement CLI tests."""

import pytest

from engine.cli import main


@pytest.fixture
def cli_home(db_url, tmp_path, monkeypatch):
    """An ONECARD_HOME under ``tmp_path`` on the test database, with the soft key store
    and the three data keys disbursement needs (made through ``onecard keys``)."""
    monkeypatch.setenv("ONECARD_DATABASE_URL", db_url)
    monkeypatch.setenv("ONECARD_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("ONECARD_HSM_BACKEND", raising=False)
    assert main(["keys", "init"]) == 0
    for label, key_type in [("cardholder-id-hash", "bank-mac"), ("pan-token", "pan-token"),
                            ("field-enc", "field-enc")]:
        assert main(["keys", "generate", "--label", label, "--type", key_type]) == 0
    return tmp_path
