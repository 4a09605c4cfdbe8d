"""The key ceremony refuses components that make no key: repeated components, an all-zero
result, and (3DES) equal halves or weak DES halves; the CLI stores nothing then."""

import pytest

from engine.cli import main
from hsm.ceremony import combine_components
from hsm.ciphers import key_check_value
from hsm.errors import CeremonyError

C = bytes.fromhex("e8eb517e5649ffbc1b99b1319d7b326c")
ZERO_KEY_KCV = bytes.fromhex("8CA64D")  # KCV of the all-zero 3DES key


@pytest.mark.parametrize("components, message", [
    ([C, C], "component 2 is the same as component 1 (their XOR is zero); nothing imported"),
    ([C, bytes(16), C], "component 3 is the same as component 1 (their XOR is zero); nothing imported"),
    ([C, bytes.fromhex("11" * 16), bytes(b ^ 0x11 for b in C)],
     "the components XOR to an all-zero key; nothing imported"),
    ([bytes.fromhex("0123456789ABCDEF0123456789ABCDEF"), bytes.fromhex("11" * 16)],
     "the key's two halves are equal (3DES would be single DES); nothing imported"),
    ([bytes.fromhex("00000000000000000123456789ABCDEF"), bytes.fromhex("0101010101010101" + "00" * 8)],
     "the key's left half is a weak or semi-weak DES key; nothing imported"),
    ([bytes.fromhex("0123456789ABCDEF00000000000000FF"), bytes.fromhex("00" * 8 + "E0FEE0FEF1FEF1" + "01")],
     "the key's right half is a weak or semi-weak DES key; nothing imported"),
])
def test_degenerate_keys_are_refused(components, message):
    with pytest.raises(CeremonyError) as refused:
        combine_components("3DES", components, [], ZERO_KEY_KCV)
    assert str(refused.value) == message


def test_equal_halves_are_a_3des_rule_only():
    half = bytes.fromhex("0123456789ABCDEF")
    components = [half + half, bytes(15) + b"\x01"]
    key = half + half[:7] + b"\xee"
    assert combine_components("AES-128", components, [], key_check_value("AES-128", key))[0] == key


def test_cli_refuses_identical_components_and_stores_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ONECARD_HOME", str(tmp_path))
    monkeypatch.delenv("ONECARD_HSM_BACKEND", raising=False)
    assert main(["keys", "init"]) == 0
    capsys.readouterr()
    component = C.hex()
    assert main(["keys", "import", "--label", "x4", "--type", "imk-ac", "--alg", "3des", "--scheme", "pboc-3des",
                 "--component", component, "--component", component, "--kcv", "8CA64D"]) == 1
    assert capsys.readouterr().err == (
        "onecard: component 2 is the same as component 1 (their XOR is zero); nothing imported\n")
    assert main(["keys", "list", "--json"]) == 0
    assert capsys.readouterr().out == "[]\n"
