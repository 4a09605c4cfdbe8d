"""Normalising text cells: full-width forms, surrounding spaces, names.

Department files come from Excel and WPS on Chinese-language systems: digits and letters
may be full-width (``５１０１``), cells may carry spaces or tabs (a leading tab is a common
trick to keep Excel from turning an identity number into a number), and names of
minority cardholders contain a middle dot written several ways.
"""

from __future__ import annotations

import re
import unicodedata

# Middle dots seen in minority names (阿依古丽·买买提), all compared as U+00B7. A regex,
# since str.translate with a dict is slow on non-ASCII text and most names have no dot.
OTHER_MIDDLE_DOTS = re.compile("[\u2022\u30fb\u2027\u2219\u22c5.]")
MIDDLE_DOT = "\u00b7"


def normalise_cell(text: str) -> str:
    """``text`` in NFKC (full-width digits, letters and punctuation to ASCII), stripped.

    >>> normalise_cell("　５１０１ｘ\\t")
    '5101x'
    """
    if text.isascii():
        return text.strip()
    return unicodedata.normalize("NFKC", text).strip()


def normalise_after(text: str, change) -> str:
    """``change`` applied to the normalised cell, then normalised again.

    Removing separators or changing case can put a base letter next to a combining mark
    (``U¯`` becomes ``U`` + U+0304, which NFKC composes) or whitespace at an end (``-\t5``);
    normalising again keeps every normaliser idempotent.

    >>> normalise_after("U\u00af", lambda s: s.replace(" ", ""))
    'Ū'
    """
    cell = normalise_cell(text)
    changed = change(cell)
    return cell if changed == cell else normalise_cell(changed)


def canonical_name(text: str) -> str:
    """A personal name reduced for comparison: NFKC, no whitespace, one kind of middle dot.

    Two names are the same person's name when their canonical forms are equal; nothing
    else (no pinyin, no traditional/simplified mapping) is assumed.

    >>> canonical_name(" 张 三 ") == canonical_name("张三")
    True
    >>> canonical_name("阿依古丽•买买提") == canonical_name("阿依古丽·买买提")
    True
    """
    name = normalise_after(text, _without_whitespace)
    return OTHER_MIDDLE_DOTS.sub(MIDDLE_DOT, name) if OTHER_MIDDLE_DOTS.search(name) else name


def _without_whitespace(text: str) -> str:
    return "".join(text.split())
