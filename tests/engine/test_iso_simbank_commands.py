"""``onecard iso validate`` and ``onecard simbank`` from the command line."""

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

from engine.cli import main

REPO = Path(__file__).resolve().parents[2]


def test_iso_validate_accepts_a_sample_and_names_the_bad_element(shared_data, tmp_path, capsys):
    good = shared_data / "iso20022" / "samples" / "pacs.002.001.10_sample.xml"
    assert main(["iso", "validate", str(good), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "file": str(good), "message_definition": "pacs.002.001.10", "valid": True}
    bad = tmp_path / "bad.xml"
    bad.write_bytes(good.read_bytes().replace(b"<TxSts>ACSC", b"<TxSts>ACSCX"))
    assert main(["iso", "validate", str(bad)]) == 1
    assert capsys.readouterr().err.startswith("onecard: TxSts (line 14): [facet 'maxLength']")


def test_simbank_command_serves_http_until_stopped():
    env = {key: value for key, value in os.environ.items() if key != "PYTHONUNBUFFERED"}
    env["PYTHONPATH"] = str(REPO)
    process = subprocess.Popen(
        [sys.executable, "-m", "engine.cli", "simbank", "--port", "0", "--bank-code", "TEST",
         "--json"], cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        started = json.loads(process.stdout.readline())
        assert started["bank_code"] == "TEST" and started["url"].startswith("http://127.0.0.1:")
        with urllib.request.urlopen(started["url"] + "/v1/camt053?date=2026-12-01", timeout=10) as reply:
            assert reply.status == 200
            assert b"<Acct><Id><Othr><Id>ONECARD-TEST</Id>" in reply.read()
    finally:
        process.terminate()
        process.wait(timeout=10)
        process.stdout.close()
        process.stderr.close()


def test_simbank_command_refuses_bad_rates(capsys):
    assert main(["simbank", "--bank-code", "X", "--error-rate", "1.5"]) == 2
    assert capsys.readouterr().err == "onecard: error_rate must be between 0 and 1, not 1.5\n"
    assert main(["simbank", "--bank-code", "X", "--reject-reason", "XX99"]) == 2
    assert capsys.readouterr().err.startswith(
        "onecard: reject_reason 'XX99' is not in the ISO reason table (AB05, AC01,")


def test_simbank_command_checks_tls_options(tmp_path, capsys):
    assert main(["simbank", "--bank-code", "X", "--tls-key", "k.pem"]) == 2
    assert capsys.readouterr().err == "onecard: --tls-key and --tls-client-ca need --tls-cert\n"
    assert main(["simbank", "--bank-code", "X", "--tls-cert", str(tmp_path / "none.pem")]) == 2
    assert "TLS files:" in capsys.readouterr().err
