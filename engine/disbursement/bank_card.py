"""Bank card numbers (ISO/IEC 7812 PAN): normalise, Luhn, issuing bank from the BIN table.

The BIN table is ``identity/cn_bank_bin/bin.csv`` (+ ``name.csv``) in the reference data
(``bin,bank,type,length``; 1,709 rows, prefixes of 3 to 10 digits). A few prefixes are
shared by two issuers with different card lengths, so a number matches the longest
prefix *whose card length equals the number's length*. Luhn checks use
``stdnum.luhn``. Luhn alone cannot catch a truncated number; the length check does.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass

from stdnum import luhn

from engine.disbursement.errors import CardNumberError
from engine.disbursement.text import normalise_after
from engine.reference_data import reference_file

BIN_FILE = "identity/cn_bank_bin/bin.csv"
BANK_NAME_FILE = "identity/cn_bank_bin/name.csv"
PAN_LENGTH_MIN = 12
PAN_LENGTH_MAX = 19

assert PAN_LENGTH_MIN < PAN_LENGTH_MAX


@dataclass(frozen=True)
class BinEntry:
    """One row of the BIN table: ``prefix`` digits, ``bank_code`` (``ICBC``), ``bank_name``
    (中国工商银行), ``card_type`` (``DC`` debit, ``CC`` credit, ``SCC``, ``PC``), ``length``
    of the issuer's card numbers in digits."""

    prefix: str
    bank_code: str
    bank_name: str
    card_type: str
    length: int


def compact_pan(text: str) -> str:
    """``text`` in ASCII without surrounding or separating spaces and hyphens.

    >>> compact_pan(" ６２２２ 0264-6581 6998 396 ")
    '6222026465816998396'
    """
    return normalise_after(text, lambda cell: cell.replace(" ", "").replace("-", ""))


class BinTable:
    """The BIN table, indexed for longest-prefix lookups.

    Parameters
    ----------
    entries : list[BinEntry]
        The rows; see :meth:`load` for the reference table.
    """

    def __init__(self, entries: list[BinEntry]) -> None:
        assert entries, "a BIN table needs entries"
        self.entries = entries
        self._by_prefix: dict[str, dict[int, BinEntry]] = {}
        for entry in entries:
            self._by_prefix.setdefault(entry.prefix, {})[entry.length] = entry
        self._prefix_lengths = sorted({len(p) for p in self._by_prefix}, reverse=True)

    @classmethod
    def load(cls, environ: dict[str, str] | None = None) -> "BinTable":
        """The reference BIN table (``ONECARD_REFERENCE_DATA``; see :mod:`engine.reference_data`).

        Raises
        ------
        ReferenceDataError
            The reference data or one of the two files is missing.
        """
        with open(reference_file(BANK_NAME_FILE, environ), encoding="utf-8", newline="") as stream:
            names = {row["bank"]: row["name"] for row in csv.DictReader(stream)}
        with open(reference_file(BIN_FILE, environ), encoding="utf-8", newline="") as stream:
            entries = [
                BinEntry(row["bin"], row["bank"], names.get(row["bank"], row["bank"]),
                         row["type"], int(row["length"]))
                for row in csv.DictReader(stream)
            ]
        return cls(entries)

    def lookup(self, pan: str) -> BinEntry:
        """The issuer of a compact ``pan`` (see :func:`compact_pan`), after checking it.

        Raises
        ------
        CardNumberError
            Not 12 to 19 digits, Luhn check failed, no BIN matches, or the matching BINs
            issue numbers of another length. The message never contains the number.
        """
        if not (pan.isascii() and pan.isdigit()) or not PAN_LENGTH_MIN <= len(pan) <= PAN_LENGTH_MAX:
            raise CardNumberError(
                f"card number must be {PAN_LENGTH_MIN} to {PAN_LENGTH_MAX} digits, got {len(pan)} characters"
            )
        if not luhn.is_valid(pan):
            raise CardNumberError("card number fails the Luhn check")
        lengths_seen: set[int] = set()
        for prefix_length in self._prefix_lengths:
            by_length = self._by_prefix.get(pan[:prefix_length])
            if by_length is None:
                continue
            entry = by_length.get(len(pan))
            if entry is not None:
                return entry
            lengths_seen.update(by_length)
        if lengths_seen:
            expected = "/".join(str(n) for n in sorted(lengths_seen))
            raise CardNumberError(f"card number has {len(pan)} digits; its BIN issues {expected}")
        raise CardNumberError("card number's BIN is not in the BIN table")

    def bins_of(self, bank_codes: set[str], card_type: str = "DC") -> list[BinEntry]:
        """Rows of the given banks and card type with 6-digit prefixes, sorted by prefix."""
        return sorted(
            (e for e in self.entries
             if e.bank_code in bank_codes and e.card_type == card_type and len(e.prefix) == 6),
            key=lambda e: (e.prefix, e.length),
        )
