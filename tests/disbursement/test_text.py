from hypothesis import given, strategies as st

from engine.disbursement.bank_card import compact_pan
from engine.disbursement.resident_id import normalise_id
from engine.disbursement.text import canonical_name, normalise_cell

FULL_WIDTH = str.maketrans("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
                           "０１２３４５６７８９ＡＢＣＤＥＦＧＨＩＪＫＬＭＮＯＰＱＲＳＴＵＶＷＸＹＺ"
                           "ａｂｃｄｅｆｇｈｉｊｋｌｍｎｏｐｑｒｓｔｕｖｗｘｙｚ")


@given(st.text(max_size=60))
def test_normalisers_never_raise_and_are_idempotent(text):
    for normalise in (normalise_cell, canonical_name, normalise_id, compact_pan):
        once = normalise(text)
        assert isinstance(once, str) and normalise(once) == once


@given(st.text(alphabet="0123456789Xx", min_size=1, max_size=20), st.sampled_from(["", " ", "\t", "　"]))
def test_full_width_and_spaces_normalise_like_ascii(text, padding):
    assert normalise_id(padding + text.translate(FULL_WIDTH) + padding) == text.upper()


@given(st.text(alphabet="张王李赵阿依古丽买提·•・ ", min_size=1, max_size=12))
def test_canonical_names_ignore_spacing_and_dot_style(name):
    assert canonical_name(name) == canonical_name(name.replace(" ", "").replace("•", "·").replace("・", "·"))
