"""Tables with a header row: find the header, map Chinese or English column names to
fields, stream the data rows, and collect the totals a file declares.

A department file may start with a title and totals lines before the header
(``笔数,1000`` / ``NbOfTxs,1000``, ``总金额,12345.00`` / ``CtrlSum,12345.00``, as key-value
pairs in one or more rows) and may end with a totals row whose first non-empty cell is
``合计``/``总计``/``Total`` (amount in the amount column; a count such as ``共1000人`` in any
other cell). Blank rows are skipped. Line numbers count the non-blank data rows: 1 is the
first data row after the header.

What the module refuses, naming the row: no header in the first ``PREAMBLE_ROWS_MAX``
rows, a header missing a required column or naming a field twice, a data row with more
cells than the header (usually an unquoted comma, as in ``1,234.50``, which would shift
the amount ``1`` into place and the rest into later columns; spreadsheet exports are
rectangular, so even blank extra cells are refused), and any non-blank row after the
totals row.
"""

from __future__ import annotations

import operator
import re
import unicodedata
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

from adapters.errors import FileFormatError
from adapters.tabular_rows import Row

PREAMBLE_ROWS_MAX = 10
HEADER_MATCHES_MIN = 2

TOTALS_ROW_LABELS = frozenset({"合计", "总计", "总合计", "total", "totals"})
TOTALS_LABEL_CHARS_MAX = 12
DECLARED_COUNT_KEYS = frozenset({"nboftxs", "笔数", "总笔数", "总人数", "合计笔数", "人数"})
DECLARED_AMOUNT_KEYS = frozenset({"ctrlsum", "总金额", "合计金额", "金额合计", "总额"})
TOTALS_COUNT_PATTERN = re.compile(r"^(?:共)?(\d{1,9})(?:人|笔|条|户|行)$|^共(\d{1,9})$")

assert PREAMBLE_ROWS_MAX >= 1 and HEADER_MATCHES_MIN >= 1


def header_key(text: str) -> str:
    """A header cell reduced for lookup: NFKC (full-width forms to ASCII), case-folded,
    without spaces, underscores, hyphens or a trailing colon.

    >>> header_key(" 金额（元）"), header_key("ID_Number"), header_key("合计："), header_key("Card-No")
    ('金额(元)', 'idnumber', '合计', 'cardno')
    """
    key = unicodedata.normalize("NFKC", text).casefold()
    return "".join(key.split()).replace("_", "").replace("-", "").rstrip(":")


@dataclass(frozen=True)
class ColumnSpec:
    """The columns of one kind of table.

    Attributes
    ----------
    fields : tuple[str, ...]
        Field names in the order :class:`MappedRow` values are given.
    required : frozenset[str]
        Fields the header must have.
    aliases : Mapping[str, str]
        Header text (any spelling :func:`header_key` reduces alike) to field name.
    amount_field : str | None
        The field holding the amount of a totals row; ``None``: no totals in this table.
    """

    fields: tuple[str, ...]
    required: frozenset[str]
    aliases: Mapping[str, str]
    amount_field: str | None = None

    def __post_init__(self) -> None:
        assert self.required <= set(self.fields), "required fields must be fields"
        assert set(self.aliases.values()) <= set(self.fields), "aliases must name fields"
        object.__setattr__(self, "aliases", {header_key(k): v for k, v in self.aliases.items()})


class MappedRow(NamedTuple):
    """One data row: ``line`` (1-based), ``values`` in the spec's field order (``""`` for a
    missing column), ``numeric`` the fields whose cell was a spreadsheet number."""

    line: int
    values: tuple[str, ...]
    numeric: frozenset[str]


@dataclass(frozen=True)
class DeclaredTotals:
    """Totals a file states about itself; ``source`` says where (``header`` or
    ``totals row``). ``amount_text`` is the amount as written (parsed by the caller)."""

    source: str
    count: int | None
    amount_text: str | None


# The numeric fields of a row that has none (most rows: one object for all of them).
_NO_FIELDS: frozenset[str] = frozenset()


def _is_blank(cells: list[str]) -> bool:
    # Most rows start with a filled cell: no need to join them all.
    return not (cells and cells[0] and not cells[0].isspace()) and not "".join(cells).strip()


def _is_totals_label(cell: str) -> bool:
    # Only short cells need the (slower) header normalisation.
    return len(cell) <= TOTALS_LABEL_CHARS_MAX and header_key(cell) in TOTALS_ROW_LABELS


def _first_filled(cells: list[str]) -> str:
    for cell in cells:
        if cell.strip():
            return cell
    return ""


@dataclass
class Table:
    """The data rows of ``rows`` under ``spec``; iterate once.

    ``declared`` holds the totals found so far (complete once iteration ends);
    ``ignored_columns`` the header cells that map to no field (set once the header is read).
    ``name`` (the file name) prefixes every error message.
    """

    rows: Iterator[Row]
    spec: ColumnSpec
    name: str
    declared: list[DeclaredTotals] = field(default_factory=list)
    ignored_columns: tuple[str, ...] = ()
    _header_row: int = field(default=0, init=False, repr=False)

    def __iter__(self) -> Iterator[MappedRow]:
        positions, width = self._read_header()
        getter = operator.itemgetter(*positions) if len(positions) > 1 else None
        needed = max(positions) + 1
        index_to_field = dict(zip(positions, self.spec.fields))
        amount_position = (
            positions[self.spec.fields.index(self.spec.amount_field)]
            if self.spec.amount_field else None
        )
        totals_possible = self.spec.amount_field is not None
        line = 0
        for row_number, (cells, numeric) in enumerate(self.rows, start=self._header_row + 1):
            if _is_blank(cells):
                continue
            # Most rows start with a sequence number, which is never a totals label.
            if totals_possible and not cells[0].isdigit() and _is_totals_label(_first_filled(cells)):
                self._read_totals_row(cells, amount_position, row_number)
                self._refuse_rows_after_totals()
                return
            if len(cells) > width:
                raise FileFormatError(
                    f"{self.name}: row {row_number} has more cells than the header "
                    f"({len(cells)} > {width}): a value with an unquoted comma, or a value beside the table?"
                )
            if len(cells) < needed:
                cells = cells + [""] * (needed - len(cells))
            line += 1
            values = getter(cells) if getter else (cells[positions[0]],)
            mapped_numeric = (
                frozenset(index_to_field[i] for i in numeric if i in index_to_field)
                if numeric else _NO_FIELDS
            )
            yield MappedRow(line, values, mapped_numeric)

    def _read_header(self) -> tuple[list[int], int]:
        for row_number, (cells, _numeric) in enumerate(self.rows, start=1):
            if row_number > PREAMBLE_ROWS_MAX:
                break
            mapping = self._header_mapping(cells, row_number)
            if mapping is None:
                self._read_preamble(cells, row_number)
                continue
            self._header_row = row_number
            # A missing optional column reads as empty: position len(cells) is always "".
            positions = [mapping.get(f, len(cells)) for f in self.spec.fields]
            self.ignored_columns = tuple(
                c for i, c in enumerate(cells) if c.strip() and i not in mapping.values()
            )
            return positions, len(cells)
        expected = ", ".join(sorted(self.spec.required))
        raise FileFormatError(
            f"{self.name}: no header row in the first {PREAMBLE_ROWS_MAX} rows "
            f"(expected columns for: {expected})"
        )

    def _header_mapping(self, cells: list[str], row_number: int) -> dict[str, int] | None:
        mapping: dict[str, int] = {}
        for position, cell in enumerate(cells):
            name = self.spec.aliases.get(header_key(cell))
            if name is None:
                continue
            if name in mapping:
                raise FileFormatError(
                    f"{self.name}: header row {row_number} has two columns for {name} "
                    f"({cells[mapping[name]]!r} and {cell!r})"
                )
            mapping[name] = position
        if len(mapping) < HEADER_MATCHES_MIN:
            return None
        missing = self.spec.required - mapping.keys()
        if missing:
            raise FileFormatError(
                f"{self.name}: header row {row_number} lacks required column(s): "
                + ", ".join(sorted(missing))
            )
        return mapping

    def _read_preamble(self, cells: list[str], row_number: int) -> None:
        filled = [c for c in cells if c.strip()]
        count: int | None = None
        amount: str | None = None
        for key_cell, value in zip(filled[0::2], filled[1::2]):
            key = header_key(key_cell)
            if key in DECLARED_COUNT_KEYS:
                count = self._parse_count(value.strip(), row_number)
            elif key in DECLARED_AMOUNT_KEYS:
                amount = value.strip()
        if count is not None or amount is not None:
            self.declared.append(DeclaredTotals("header", count, amount))

    def _read_totals_row(self, cells: list[str], amount_position: int | None, row_number: int) -> None:
        amount = cells[amount_position].strip() if amount_position is not None and amount_position < len(cells) else ""
        count: int | None = None
        for position, cell in enumerate(cells):
            match = TOTALS_COUNT_PATTERN.match("".join(unicodedata.normalize("NFKC", cell).split()))
            if position != amount_position and match:
                count = int(match.group(1) or match.group(2))
        if not amount and count is None:
            raise FileFormatError(f"{self.name}: totals row {row_number} states no amount and no count")
        self.declared.append(DeclaredTotals("totals row", count, amount or None))

    def _refuse_rows_after_totals(self) -> None:
        for cells, _numeric in self.rows:
            if not _is_blank(cells):
                raise FileFormatError(f"{self.name}: a non-blank row follows the totals row")

    def _parse_count(self, text: str, row_number: int) -> int:
        digits = unicodedata.normalize("NFKC", text).replace(",", "")
        if not (digits.isascii() and digits.isdigit()):
            raise FileFormatError(f"{self.name}: row {row_number}: declared count {text!r} is not a whole number")
        return int(digits)
