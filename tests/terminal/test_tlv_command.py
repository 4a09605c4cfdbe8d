"""``onecard tlv decode``: tree with names, JSON, and clean errors."""

import json

from engine.cli import main


def test_decode_prints_tree_with_tag_names(capsys):
    assert main(["tlv", "decode", "6f1a840e315041592e5359532e4444463031 a5088801025f2d02656e"]) == 0
    assert capsys.readouterr().out == (
        "6F File Control Information (FCI) Template (26)\n"
        "  84 Dedicated File (DF) Name (14) 315041592E5359532E4444463031\n"
        "  A5 File Control Information (FCI) Proprietary Template (8)\n"
        "    88 Short File Identifier (SFI) (1) 02\n"
        "    5F2D Language Preference (2) 656E\n"
    )


def test_decode_json(capsys):
    assert main(["tlv", "decode", "--json", "77059F36020001"]) == 0
    assert json.loads(capsys.readouterr().out) == [{"tag": "77", "name": "Response Message Template Format 2", "length": 5,
                                "children": [{"tag": "9F36", "name": "Application Transaction Counter (ATC)",
                                              "length": 2, "value": "0001"}]}]


def test_malformed_data_is_a_refusal_with_offset(capsys):
    assert main(["tlv", "decode", "5A0512"]) == 1
    assert capsys.readouterr().err == "onecard: offset 0: tag 5A value truncated (length 5, 1 bytes left)\n"
    assert main(["tlv", "decode", "5A0"]) == 2
    assert "HEX: not an even number of hex digits" in capsys.readouterr().err
