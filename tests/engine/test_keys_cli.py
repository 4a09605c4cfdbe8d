"""``onecard keys ...`` and ``onecard hsm check-vectors``: the ceremony and the vector runner."""

from __future__ import annotations

import json
import os

import pytest

from engine.cli import main

COMPONENT_1 = "11" * 16
COMPONENT_2 = "1032547698BADCFEEFCDAB8967452301"  # XOR COMPONENT_1 = 0123..3210, KCV 08D7B4


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("ONECARD_HOME", str(tmp_path))
    monkeypatch.delenv("ONECARD_HSM_BACKEND", raising=False)
    assert main(["keys", "init"]) == 0
    return tmp_path


def _import(*extra: str) -> list[str]:
    return [
        "keys",
        "import",
        "--label",
        "imk-bank1",
        "--type",
        "imk-ac",
        "--alg",
        "3des",
        "--scheme",
        "emv-csk-3des",
        "--component",
        COMPONENT_1,
        "--component",
        COMPONENT_2,
        *extra,
    ]


def test_ceremony_imports_and_lists(home, capsys) -> None:
    capsys.readouterr()
    assert (
        main(_import("--kcv", "08d7b4", "--component-kcv", "82E136", "--component-kcv", "8A6416"))
        == 0
    )
    out = capsys.readouterr().out
    assert out.splitlines() == [
        "component 1 KCV 82E136",
        "component 2 KCV 8A6416",
        "key KCV 08D7B4",
        "imk-bank1",
    ]
    assert main(["keys", "list", "--json"]) == 0
    (listed,) = json.loads(capsys.readouterr().out)
    assert {k: listed[k] for k in ("label", "key_type", "alg", "kcv", "version", "scheme")} == {
        "label": "imk-bank1",
        "key_type": "imk-ac",
        "alg": "3DES",
        "kcv": "08D7B4",
        "version": 1,
        "scheme": "emv-csk-3des",
    }
    assert main(["keys", "list"]) == 0
    table = capsys.readouterr().out
    assert "imk-bank1" in table and "08D7B4" in table
    assert COMPONENT_1 not in table.upper() and "0123456789ABCDEF" not in table.upper()


@pytest.mark.parametrize(
    "extra, message, code",
    [
        (["--kcv", "08D7B5"], "key KCV is 08D7B4, expected 08D7B5; nothing imported", 1),
        (
            ["--kcv", "08D7B4", "--component-kcv", "82E136", "--component-kcv", "000000"],
            "component 2 KCV is 8A6416",
            1,
        ),
        (["--kcv", "08D7B4", "--component-kcv", "82E136"], "one --component-kcv per component", 1),
        (["--kcv", "0G"], "--kcv must be hex digits", 2),
    ],
)
def test_ceremony_refusals_import_nothing(home, capsys, extra, message, code) -> None:
    assert main(_import(*extra)) == code
    error = capsys.readouterr().err
    assert message in error
    assert COMPONENT_2 not in error.upper()
    assert main(["keys", "list", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []


def test_one_component_is_not_enough(home, capsys) -> None:
    argv = [
        "keys",
        "import",
        "--label",
        "x",
        "--type",
        "imk-ac",
        "--alg",
        "3des",
        "--scheme",
        "emv-csk-3des",
        "--component",
        COMPONENT_1,
        "--kcv",
        "82E136",
    ]
    assert main(argv) == 1
    assert "give 2 to 9 components, got 1" in capsys.readouterr().err


def test_generate_and_rotate(home, capsys) -> None:
    assert main(["keys", "generate", "--label", "fields", "--type", "field-enc"]) == 0
    assert main(["keys", "rotate", "--label", "fields"]) == 0
    assert "fields version 2" in capsys.readouterr().out
    assert main(_import("--kcv", "08D7B4")) == 0
    assert main(["keys", "rotate", "--label", "imk-bank1"]) == 1
    assert "imk-ac keys do not rotate" in capsys.readouterr().err


def test_refuses_an_unsafe_master_key(home, capsys) -> None:
    os.chmod(home / "keys" / "master.key", 0o644)
    assert main(["keys", "list"]) == 1
    assert "accessible by group or others (mode 0644)" in capsys.readouterr().err


def test_check_vectors_passes_the_shared_file(shared_data, capsys) -> None:
    assert main(["hsm", "check-vectors", str(shared_data / "emv" / "vectors.json")]) == 0
    assert capsys.readouterr().out.splitlines() == ["73 passed, 0 failed"]


def test_check_vectors_reports_each_failing_case(shared_data, tmp_path, capsys) -> None:
    cases = json.loads((shared_data / "emv" / "vectors.json").read_text())
    cases[0]["arqc_hex"] = "00" * 8
    cases[1]["arpc"][0]["arpc_hex"] = "00" * 8
    negative = next(c for c in cases if c["expect"] == "invalid")
    negative["expect"] = "valid"
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(cases))
    assert main(["hsm", "check-vectors", str(path)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        f"FAIL {cases[0]['id']}: ARQC did not verify"
        + "".join(
            f"; arpc[{n}] refused: no ARPC for an ARQC that did not verify (arqc_mismatch)"
            for n in range(3)
        ),
        f"FAIL {cases[1]['id']}: arpc[0] (method 1) differs",
        f"FAIL {negative['id']}: ARQC did not verify",
        "70 passed, 3 failed",
    ]
