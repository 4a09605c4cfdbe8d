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


def test_create_with_fund_again_funds_nothing(home, capsys):
    code, out, err = _run(capsys, [*CREATE, "--fund", "10", "--bank", "CCB", "--json"])
    assert (code, err) == (0, "")
    assert json.loads(out) == {"code": "DUP1", "kind": "subsidy", "name": "dup", "per_person_max_minor": 50_000,
                               "created": True, "available_minor": 1_000}
    code, out, err = _run(capsys, [*CREATE, "--fund", "10", "--bank", "CCB", "--json"])
    assert (code, json.loads(out)["created"], json.loads(out)["available_minor"]) == (0, False, 1_000)
    assert err == "onecard: programme DUP1 exists: not funded again (to add funds: onecard programme fund)\n"
    assert _run(capsys, [*CREATE, "--fund", "10", "--bank", "CCB"]) == (0, "DUP1\n", err)
    # Funding is what `programme fund` is for.
    code, out, _ = _run(capsys, ["programme", "fund", "DUP1", "10", "--json"])
    assert (code, json.loads(out)["available_minor"]) == (0, 2_000)
    # A conflicting repeat is refused naming the field, nothing funded.
    for option, value, field in (("--kind", "wage", "kind"), ("--name", "other", "name"),
                                 ("--per-person-max", "600", "per_person_max_minor")):
        argv = [*CREATE, "--fund", "10", "--bank", "CCB"]
        argv[argv.index(option) + 1] = value
        assert _run(capsys, argv) == (1, "", f"onecard: programme DUP1 exists with a different {field}\n")
    code, out, _ = _run(capsys, ["programme", "fund", "DUP1", "0.01", "--json"])
    assert json.loads(out)["available_minor"] == 2_001


def test_create_checks_funding_arguments_before_creating(home, capsys):
    argv = ["programme", "create", "NEW1", "--kind", "subsidy", "--name", "n", "--per-person-max", "500"]
    assert _run(capsys, [*argv, "--fund", "10"]) == (
        2, "", "onecard: --fund needs --bank: the bank of the programme's funding account\n")
    assert _run(capsys, [*argv, "--fund", "0", "--bank", "CCB"]) == (2, "", "onecard: --fund: must be more than 0\n")
    assert _run(capsys, [*argv, "--fund", "10", "--bank", "NOPE"]) == (
        1, "", "onecard: bank_code 'NOPE': no such bank\n")
    # None of these created the programme: the first good call creates and funds it.
    code, out, _ = _run(capsys, [*argv, "--fund", "10", "--bank", "CCB", "--json"])
    assert (code, json.loads(out)["created"], json.loads(out)["available_minor"]) == (0, True, 1_000)


def test_a_programme_keeps_its_department(home, capsys):
    assert _run(capsys, [*CREATE, "--department", "civil"])[0] == 0
    assert _run(capsys, [*CREATE, "--department", "civil"])[::2] == (0, "")
    assert _run(capsys, [*CREATE, "--department", "labour"]) == (
        1, "", "onecard: programme DUP1 exists with a different department (civil)\n")


def test_department_users_are_stored_in_normal_form(home, capsys):
    code, out, err = _run(capsys, ["programme", "user-add", "Alice", "--department", "civil", "--json"])
    assert (code, json.loads(out)["device_id"]) == (0, "alice")
    assert err == "onecard: user stored as 'alice' (sign with this id)\n"
    assert _run(capsys, ["programme", "user-add", "ａｌｉｃｅ", "--department", "civil"]) == (
        1, "", "onecard: device_id: 'alice' exists already\n")
    assert _run(capsys, ["programme", "user-add", "   ", "--department", "civil"]) == (
        2, "", "onecard: device_id: must be a user name, not empty or only spaces\n")

