"""``onecard programme create`` repeated, ``batch list``, ``batch show`` times, and the
maker-checker and hash refusals through the CLI: exact stdout/stderr and exit codes."""

import json
import re

import pytest

from engine.cli import main


@pytest.fixture
def home(cli_home, capsys):
    assert main(["banks", "add", "CCB", "--name", "中国建设银行"]) == 0
    capsys.readouterr()
    return cli_home


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


def test_list_show_approve_through_the_cli(home, capsys, tmp_path):
    batch, cardholders = home / "b.csv", home / "c.csv"
    assert main(["synthetic", "batch", str(batch), "--lines", "5", "--cardholders", str(cardholders)]) == 0
    assert main(["cardholders", "import", str(cardholders)]) == 0
    assert main(["programme", "create", "ELDERLY", "--kind", "subsidy", "--name", "高龄津贴",
                 "--per-person-max", "500"]) == 0
    capsys.readouterr()
    assert _run(capsys, ["batch", "list"]) == (0, "no batches\n", "")
    ids = []
    for period in ("2026-11", "2026-12"):
        code, out, _ = _run(capsys, ["batch", "submit", str(batch), "--programme", "ELDERLY", "--period", period,
                                     "--as", "Ｍａｋｅｒ", "--json"])
        assert code == 0
        ids.append(json.loads(out)["id"])
        content_sha256 = json.loads(out)["content_sha256"]
    assert _run(capsys, ["batch", "submit", str(batch), "--programme", "ELDERLY", "--period", "2026-12",
                         "--as", "maker"]) == (
        1, "", f"onecard: the same batch content was already submitted as batch {ids[1]} for period 2026-12; "
               "cancel it first to submit it again\n")
    assert _run(capsys, ["batch", "cancel", str(ids[1]), "--as", "maker"])[0] == 0
    code, out, _ = _run(capsys, ["batch", "submit", str(batch), "--programme", "ELDERLY", "--period", "2026-12",
                                 "--as", "maker", "--json"])
    ids.append(json.loads(out)["id"])

    code, out, _ = _run(capsys, ["batch", "list"])
    lines = out.splitlines()
    assert code == 0 and lines[0].split() == ["id", "state", "programme", "period", "lines", "accepted", "yuan",
                                              "submitted", "by"]
    assert [line.split()[:4] for line in lines[1:]] == [
        [str(ids[2]), "validated", "ELDERLY", "2026-12"], [str(ids[1]), "cancelled", "ELDERLY", "2026-12"],
        [str(ids[0]), "validated", "ELDERLY", "2026-11"]]
    assert all(line.split()[-1] == "maker" for line in lines[1:])
    code, out, _ = _run(capsys, ["batch", "list", "--programme", "ELDERLY", "--state", "validated", "--limit", "1",
                                 "--json"])
    assert [(b["id"], b["state"], b["period"]) for b in json.loads(out)] == [(ids[2], "validated", "2026-12")]
    assert _run(capsys, ["batch", "list", "--programme", "NOPE"]) == (1, "", "onecard: no programme NOPE\n")
    for limit in ("0", "1001"):
        with pytest.raises(SystemExit) as exited:
            main(["batch", "list", "--limit", limit])
        assert exited.value.code == 2
        assert capsys.readouterr().err.endswith("argument --limit: must be an integer from 1 to 1000\n")
    report = tmp_path / "no-such-folder" / "r.csv"
    assert _run(capsys, ["batch", "report", str(ids[0]), "--format", "csv", "--output", str(report)]) == (
        1, "", f"onecard: {report}: No such file or directory\n")
    assert _run(capsys, ["batch", "report", str(ids[0]), "--format", "csv", "--output", str(tmp_path)]) == (
        1, "", f"onecard: {tmp_path}: Is a directory\n")

    # Look-alike approvers are the submitter; a malformed hash is a usage error, a wrong one a conflict.
    for approver in ("ｍａｋｅｒ", "MAKER", " maker "):
        assert _run(capsys, ["batch", "approve", str(ids[0]), "--as", approver]) == (
            1, "", "onecard: the approver must be a different user from the submitter (maker)\n")
    assert _run(capsys, ["batch", "approve", str(ids[0]), "--as", "checker", "--hash", "0" * 64]) == (
        1, "", f"onecard: content_sha256 does not match the batch's content hash ({content_sha256[:12]}...); "
               "review it again\n")
    assert _run(capsys, ["batch", "approve", str(ids[0]), "--as", "checker", "--hash", content_sha256.upper()]) == (
        0, f"batch {ids[0]}: approved by checker\n", "")

    code, out, _ = _run(capsys, ["batch", "show", str(ids[0])])
    history = out.splitlines()[3:]
    assert [re.sub(r"at \S+$", "at T", line) for line in history] == [
        "1. received by maker at T", "2. validated by system at T", "3. approved by checker at T"]
    assert all(re.fullmatch(r".* at \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line) for line in history)
    code, out, _ = _run(capsys, ["batch", "show", str(ids[0]), "--json"])
    shown = json.loads(out)
    assert all(isinstance(h["at_ms"], int) for h in shown["history"])
    assert history[0].endswith(" at " + _iso(shown["history"][0]["at_ms"]))


def _iso(at_ms):
    import datetime as dt
    at = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(milliseconds=at_ms)
    return at.isoformat(timespec="milliseconds").replace("+00:00", "Z")
