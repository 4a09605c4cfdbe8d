"""The CLI refuses bad input at the argument layer (exit 2) or before any change (exit 1),
with the field and reason on stderr: never an internal error, never a half-done change."""

from __future__ import annotations

import json

import pytest

from engine.cli import main

HUGE = "99999999999999999999"
ID_RANGE = "must be an integer from 1 to 9223372036854775807"


def _usage_error(capsys, argv) -> str:
    """stderr of a command argparse refuses (exit 2)."""
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    return capsys.readouterr().err.splitlines()[-1]


@pytest.mark.parametrize("argv", [
    ["batch", "show", HUGE], ["batch", "approve", HUGE, "--as", "bob"], ["batch", "cancel", HUGE, "--as", "bob"],
    ["batch", "execute", HUGE], ["batch", "report", HUGE, "--format", "csv"], ["batch", "show", "0"],
    ["cycle", "show", HUGE], ["cycle", "settle", "-1"], ["cycle", "list", "--limit", HUGE],
])
def test_ids_out_of_range_are_refused_by_argument(capsys, argv):
    name = "--limit" if "--limit" in argv else ("cycle_id" if argv[0] == "cycle" else "id")
    assert _usage_error(capsys, argv).endswith(f"error: argument {name}: {ID_RANGE}")


@pytest.mark.parametrize("argv, message", [
    (["programme", "create", "BAD CODE!", "--kind", "subsidy", "--name", "x", "--per-person-max", "1"],
     "argument code: must be 1 to 32 characters of A-Z a-z 0-9 _ -, got 'BAD CODE!'"),
    (["programme", "create", "A" * 33, "--kind", "subsidy", "--name", "x", "--per-person-max", "1"],
     f"argument code: must be 1 to 32 characters of A-Z a-z 0-9 _ -, got '{'A' * 33}'"),
    (["programme", "create", "P1", "--kind", "subsidy", "--name", "", "--per-person-max", "1"],
     "argument --name: must be 1 to 128 printable characters, not empty"),
    (["batch", "submit", "f.csv", "--programme", "P1", "--period", "2026-11", "--as", ""],
     "argument --as: must be a user name, not empty or only spaces"),
    (["batch", "submit", "f.csv", "--programme", "P1", "--period", "2026-11", "--as", "   "],
     "argument --as: must be a user name, not empty or only spaces"),
    (["batch", "cancel", "1", "--as", "\u3000"], "argument --as: must be a user name, not empty or only spaces"),
    (["batch", "approve", "1", "--as", "mak\u200ber"],
     "argument --as: must not contain control or invisible characters (U+200B at 4)"),
    (["batch", "execute", "1", "--as", "ops\tteam"],
     "argument --as: must not contain control or invisible characters (U+0009 at 4)"),
    (["batch", "approve", "1", "--as", "checker", "--hash", "00"],
     "argument --hash: must be 64 hex digits (the batch's SHA-256 content hash), got 2 characters"),
    (["batch", "approve", "1", "--as", "checker", "--hash", "g" * 64],
     "argument --hash: must be 64 hex digits (the batch's SHA-256 content hash), got 64 characters"),
    (["batch", "list", "--programme", "高龄"],
     "argument --programme: must be 1 to 32 characters of A-Z a-z 0-9 _ -, got '高龄'"),
    (["batch", "list", "--limit", "0"], "argument --limit: must be an integer from 1 to 1000"),
    (["banks", "add", "HUGEC", "--name", "x", "--cap-minor", HUGE],
     "argument --cap-minor: must be an integer number of fen from 0 to 9223372036854775807"),
    (["banks", "add", "X1", "--name", ""], "argument --name: must be 1 to 128 printable characters, not empty"),
    (["transit", "gate-add", "G0002", "--network", "metro", "--operator-account", "123"],
     "argument --operator-account: must be a ledger account id of 32 hex digits (as printed by onecard)"),
])
def test_bad_arguments_are_refused_before_the_database(capsys, argv, message):
    assert _usage_error(capsys, argv).endswith(f"error: {message}")


@pytest.mark.parametrize("argv, message", [
    (["programme", "create", "P1", "--kind", "subsidy", "--name", "x", "--per-person-max", HUGE],
     "--per-person-max: at most 92233720368547758.07 yuan"),
    (["batch", "submit", "f.csv", "--programme", "P1", "--period", "0000-01", "--as", "alice"],
     "--period: must be a month from 2000-01 to 2099-12, got '0000-01'"),
])
def test_bad_values_are_refused_before_the_database(capsys, argv, message):
    assert main(argv) == 2
    assert capsys.readouterr().err == f"onecard: {message}\n"


def test_a_garbage_database_url_is_a_clear_refusal(capsys, monkeypatch):
    monkeypatch.setenv("ONECARD_DATABASE_URL", "garbage")
    assert main(["audit"]) == 1
    assert capsys.readouterr().err == (
        "onecard: ONECARD_DATABASE_URL: not a PostgreSQL URL (postgresql://USER:PASSWORD@HOST:PORT/DATABASE)\n")


@pytest.fixture
def home(db_url, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ONECARD_DATABASE_URL", db_url)
    monkeypatch.setenv("ONECARD_HOME", str(tmp_path))
    monkeypatch.delenv("ONECARD_HSM_BACKEND", raising=False)
    assert main(["keys", "init"]) == 0
    for label in ("pan-token", "field-enc"):
        assert main(["keys", "generate", "--label", label, "--type", label]) == 0
    assert main(["banks", "add", "ICBC", "--name", "中国工商银行四川省分行"]) == 0
    capsys.readouterr()
    return tmp_path


def _run(capsys, argv, stdin=None, monkeypatch=None):
    if stdin is not None:
        import io
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_account_ids_have_one_text_form_from_operator_to_gate(home, capsys):
    code, out, _ = _run(capsys, ["banks", "add-operator", "metro", "--bank", "ICBC"])
    account = out.strip()
    assert code == 0 and len(account) == 32 and account == account.upper()
    code, out, _ = _run(capsys, ["banks", "list", "--json"])
    [bank] = json.loads(out)
    assert len(bank["settlement_account_id"]) == 32 and bank["settlement_account_id"].isupper()
    code, out, _ = _run(capsys, ["banks", "add-payer", "fund", "--bank", "ICBC", "--json"])
    payer = json.loads(out)["account_id"]
    # The printed id is what gate-add takes (either case); a payer's account is not an operator's.
    assert _run(capsys, ["transit", "gate-add", "G0001", "--network", "metro",
                         "--operator-account", account.lower()])[::2] == (0, "")
    assert _run(capsys, ["transit", "gate-add", "G0002", "--network", "metro", "--operator-account", payer]) == (
        1, "", f"onecard: account {payer}: not a registered operator account (a funding account)\n")
    assert _run(capsys, ["transit", "gate-add", "G0003", "--network", "metro", "--operator-account", "0" * 31 + "7"]) == (
        1, "", f"onecard: account {'0' * 31}7: not a registered operator account (no registered account)\n")


def test_issuer_add_needs_an_imk_ac_key_of_the_key_service_and_a_bank(home, capsys):
    assert _run(capsys, ["transit", "issuer-add", "622000", "ICBC", "nokey"]) == (
        2, "", "onecard: key_label 'nokey': no such key in the key service (onecard keys list)\n")
    assert _run(capsys, ["transit", "issuer-add", "622000", "ICBC", "pan-token"]) == (
        2, "", "onecard: key_label 'pan-token': is a pan-token key; an issuer needs an imk-ac key\n")


def test_enrolment_checks_the_profile_and_refuses_a_conflicting_repeat(home, capsys, monkeypatch):
    pan = "6222020000000000000"
    assert _run(capsys, ["transit", "enrol-card", "--bank", "ICBC", "--birth-date", "2030-01-01"], pan, monkeypatch)[
        2].startswith("onecard: --birth-date: must be from 1900-01-01 to today, got 2030-01-01")
    code, _, err = _run(capsys, ["transit", "enrol-card", "--bank", "ICBC", "--entitlement", "bogus"], pan, monkeypatch)
    assert code == 2 and err.startswith("onecard: --entitlement 'bogus': must be one of ")
    assert "student" in err
    code, token, err = _run(capsys, ["transit", "enrol-card", "--bank", "ICBC", "--entitlement", "student"], pan,
                            monkeypatch)
    assert (code, err) == (0, "")
    # The identical enrolment again is a no-op with the same token; another bank is refused.
    assert _run(capsys, ["transit", "enrol-card", "--bank", "ICBC", "--entitlement", "student"], pan,
                monkeypatch) == (0, token, "")
    assert main(["banks", "add", "BOC", "--name", "Bank of China"]) == 0
    capsys.readouterr()
    assert _run(capsys, ["transit", "enrol-card", "--bank", "BOC", "--entitlement", "student"], pan, monkeypatch) == (
        1, "", f"onecard: --bank: card {token.strip()} is enrolled already with another value (ICBC); "
               "nothing changed\n")


@pytest.mark.parametrize("argv, message", [
    (["banks", "add", "PUSH1", "--name", "x", "--delivery", "push", "--endpoint", "ftp://x"],
     "onecard: endpoint: must be an https:// URL for delivery 'push' (http:// only to a loopback address), "
     "got 'ftp://x'\n"),
    (["banks", "add", "PUSH2", "--name", "x", "--delivery", "push", "--endpoint", "http://bank.example"],
     "onecard: endpoint: must be an https:// URL for delivery 'push' (http:// only to a loopback address), "
     "got 'http://bank.example'\n"),
])
def test_bank_registration_checks_its_endpoint(home, capsys, argv, message):
    assert _run(capsys, argv) == (1, "", message)


def test_reconcile_refuses_an_unknown_bank(home, capsys, shared_data):
    statement = shared_data / "iso20022" / "samples" / "camt.053.001.08_sample.xml"
    assert _run(capsys, ["reconcile", str(statement), "--bank", "NOPE"]) == (
        1, "", "onecard: bank_code 'NOPE': no such bank\n")


def test_banks_list_aligns_chinese_names_by_display_width(home, capsys):
    assert main(["banks", "add", "BOC", "--name", "Bank of China"]) == 0
    capsys.readouterr()
    code, out, _ = _run(capsys, ["banks", "list"])
    from rich.cells import cell_len

    assert code == 0
    assert [cell_len(line.split(" cap ")[0]) for line in out.splitlines()] == [47, 47]


@pytest.mark.parametrize("argv", [["serve", "--port", HUGE], ["banks", "serve", "--port", "65536"],
                                  ["simbank", "--bank-code", "ICBC", "--port", "-1"]])
def test_ports_out_of_range_are_refused_by_argument(capsys, argv):
    assert _usage_error(capsys, argv).endswith("error: argument --port: must be a TCP port from 0 to 65535")
