"""User names of the disbursement flow: one normal form, used both to store a name
(submitter, approver, canceller, department user) and to compare two of them (the
maker-checker rule, :func:`engine.disbursement.lifecycle.check_approval`).

A name that only looks like another must be the same user, or a maker could approve
their own batch as ``ｍａｋｅｒ`` (full-width) or ``MAKER``. So a name is normalised as
Unicode recommends for identifiers compared without regard to case or width (UAX #31,
"NFKC_Casefold" in spirit): NFKC, case folding, NFKC again (folding can undo the normal
form), then surrounding spaces removed and inner runs of spaces made one.

What it cannot do: tell apart letters of different scripts that look alike (Latin ``a``
and Cyrillic ``а`` stay two users); that needs a confusables table (UTS #39), which the
department's own user management is the better place for.
"""

from __future__ import annotations

import unicodedata

from engine.errors import FieldError

USER_CHARACTERS_MAX = 64
# Text longer than this is refused before normalising (padding spaces and width forms
# included, a real name is far shorter); it bounds the work done on hostile input.
USER_TEXT_CHARACTERS_MAX = 4 * USER_CHARACTERS_MAX

assert USER_TEXT_CHARACTERS_MAX >= USER_CHARACTERS_MAX


def normalise_user(text: str, field: str = "user") -> str:
    """The stored and compared form of a user name.

    Returns 1 to :data:`USER_CHARACTERS_MAX` characters (after normalising, since NFKC
    can lengthen a name), case-folded, without control, format, private-use or
    unassigned characters, with single spaces only between words.

    Raises
    ------
    FieldError
        Empty or only spaces, a control or invisible character, or too long; the message
        names ``field``.

    >>> normalise_user(" ＭＡＫＥＲ ")
    'maker'
    >>> normalise_user("Zhang  San") == normalise_user("zhang san")
    True
    >>> normalise_user("   ", "--as")
    Traceback (most recent call last):
    ...
    engine.errors.FieldError: --as: must be a user name, not empty or only spaces
    >>> normalise_user("mak\\u200ber", "--as")
    Traceback (most recent call last):
    ...
    engine.errors.FieldError: --as: must not contain control or invisible characters (U+200B at 4)
    """
    if len(text) > USER_TEXT_CHARACTERS_MAX:
        raise FieldError(field, f"must be at most {USER_CHARACTERS_MAX} characters, got {len(text)}")
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())
    for index, character in enumerate(folded):
        # Spaces of every kind became U+0020 or stay whitespace (tab, newline: category Cc).
        if unicodedata.category(character)[0] in "CZ" and character != " ":
            raise FieldError(field, f"must not contain control or invisible characters "
                                    f"(U+{ord(character):04X} at {index + 1})")
    value = " ".join(part for part in folded.split(" ") if part)
    if not value:
        raise FieldError(field, "must be a user name, not empty or only spaces")
    if len(value) > USER_CHARACTERS_MAX:
        raise FieldError(field, f"must be at most {USER_CHARACTERS_MAX} characters, got {len(value)}")
    return value
