"""``onecard programme create`` repeated, ``batch list``, ``batch show`` times, and the
maker-checker and hash refusals through the CLI: exact stdout/stderr and exit codes."""

import json
import re

import pytest

from engine.cli import main


@pytest.fixture
def home(db_url, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ONECARD_DATABASE_URL", db_url)
    monkeypatch.setenv("ONECARD_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("ONECARD_HSM_BACKEND", raising=False)
    assert main(["keys", "init"]) == 0
    for label, key_type in [("cardholder-id-hash", "bank-mac"), ("pan-token", "pan-token"),
                            ("field-enc", "field-enc")]:
        assert main(["keys", "generate", "--label", label, "--type", key_type]) == 0
    assert main(["banks", "add", "CCB", "--name", "中国建设银行"]) == 0
    capsys.readouterr()
    return tmp_path


def _run(capsys, argv):
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


CREATE = ["programme", "create", "DUP1", "--kind", "subsidy", "--name", "dup", "--per-person-max", "500"]


def test_department_users_are_stored_in_normal_form(home, capsys):
    code, out, err = _run(capsys, ["programme", "user-add", "Alice", "--department", "civil", "--json"])
    assert (code, json.loads(out)["device_id"]) == (0, "alice")
    assert err == "onecard: user stored as 'alice' (sign with this id)\n"
    assert _run(capsys, ["programme", "user-add", "ａｌｉｃｅ", "--department", "civil"]) == (
        1, "", "onecard: device_id: 'alice' exists already\n")
    assert _run(capsys, ["programme", "user-add", "   ", "--department", "civil"]) == (
        2, "", "onecard: device_id: must be a user name, not empty or only spaces\n")

