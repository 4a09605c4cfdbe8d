"""User names: one normal form for storing and comparing (NFKC, case folding, spaces)."""

import unicodedata

import pytest
from hypothesis import given, strategies as st

from engine.disbursement.users import USER_CHARACTERS_MAX, normalise_user
from engine.errors import FieldError


@pytest.mark.parametrize("text, stored", [
    ("maker", "maker"), ("Maker", "maker"), ("ＭＡＫＥＲ", "maker"), ("ｍａｋｅｒ", "maker"), ("  maker\u3000", "maker"),
    ("\u00a0maker", "maker"), ("Zhang  San", "zhang san"), ("Straße", "strasse"), ("张三", "张三"), ("ﬁnance", "finance"),
    ("Ⅻ", "xii"), ("x" * USER_CHARACTERS_MAX, "x" * USER_CHARACTERS_MAX),
])
def test_stored_form(text, stored):
    assert normalise_user(text) == stored


@pytest.mark.parametrize("text, message", [
    ("", "user: must be a user name, not empty or only spaces"),
    ("   ", "user: must be a user name, not empty or only spaces"),
    ("\u3000\u00a0", "user: must be a user name, not empty or only spaces"),
    ("a\tb", "user: must not contain control or invisible characters (U+0009 at 2)"),
    ("a\nb", "user: must not contain control or invisible characters (U+000A at 2)"),
    ("\u200bmaker", "user: must not contain control or invisible characters (U+200B at 1)"),
    ("mak\u00ader", "user: must not contain control or invisible characters (U+00AD at 4)"),
    ("ma\u2028ker", "user: must not contain control or invisible characters (U+2028 at 3)"),
    ("x" * 65, "user: must be at most 64 characters, got 65"),
    ("㍿" * 20, "user: must be at most 64 characters, got 80"),
    (" " * 300, "user: must be at most 64 characters, got 300"),
])
def test_refused(text, message):
    with pytest.raises(FieldError) as refused:
        normalise_user(text)
    assert str(refused.value) == message


@given(st.text(max_size=80))
def test_normal_form_is_stable_and_clean(text):
    try:
        stored = normalise_user(text)
    except FieldError:
        return
    assert normalise_user(stored) == stored
    assert 1 <= len(stored) <= USER_CHARACTERS_MAX and stored == stored.strip() and "  " not in stored
    assert all(unicodedata.category(c)[0] not in "CZ" or c == " " for c in stored)


@given(st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=40))
def test_width_and_case_make_no_other_user(text):
    wide = "".join(chr(ord(c) + 0xFEE0) for c in text)
    assert normalise_user(wide.upper()) == normalise_user(text.lower()) == normalise_user(f" {text} ")
