"""Reading the small CSV rule files (GTFS text files, fare bands, station networks).

One reader for all of them so that encoding (UTF-8 with or without BOM), comment lines,
blank cells and error messages (file, row, field) are handled the same everywhere.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

from engine.fares.errors import FareRulesError

# A rules file larger than this is not a fare table; refuse it rather than load it.
ROWS_MAX = 1_000_000


class Row:
    """One data row: ``row["field"]`` is the stripped text or ``None`` when empty.

    ``where(field)`` gives ``"file row N field"`` for error messages (N counts the header
    as row 1, as spreadsheet tools show it).
    """

    __slots__ = ("_cells", "_file", "_number")

    def __init__(self, file: str, number: int, cells: dict[str, str | None]) -> None:
        self._file = file
        self._number = number
        self._cells = cells

    def __getitem__(self, field: str) -> str | None:
        return self._cells.get(field)

    def where(self, field: str) -> str:
        return f"{self._file} row {self._number} {field}"

    def required(self, field: str) -> str:
        """The field's text; raises FareRulesError naming the field when it is empty."""
        value = self._cells.get(field)
        if value is None:
            raise FareRulesError(f"{self.where(field)}: required field is empty")
        return value

    def integer(self, field: str, *, default: int | None = None, minimum: int | None = None) -> int | None:
        """The field as an int (``default`` when empty); refuses non-integers and values below ``minimum``."""
        value = self._cells.get(field)
        if value is None:
            return default
        try:
            number = int(value)
        except ValueError:
            raise FareRulesError(f"{self.where(field)}: {value!r} is not an integer") from None
        if minimum is not None and number < minimum:
            raise FareRulesError(f"{self.where(field)}: {number} is below {minimum}")
        return number


def read_rows(path: Path, required_fields: tuple[str, ...], *, comments: bool = False) -> Iterator[Row]:
    """Yield the rows of the CSV file at ``path`` (UTF-8, optional BOM).

    Parameters
    ----------
    path : Path
        The file.
    required_fields : tuple of str
        Columns that must be in the header (GTFS "Required" fields).
    comments : bool
        Skip lines starting with ``#`` (our own data files carry their sources that way;
        GTFS files never do).

    Raises
    ------
    FareRulesError
        The file does not exist, a required column is missing, a row has more cells than the header, or the file
        has more than :data:`ROWS_MAX` rows.
    """
    name = path.name
    try:
        handle = path.open(encoding="utf-8-sig", newline="")
    except FileNotFoundError:
        raise FareRulesError(f"{path}: file not found") from None
    with handle:
        lines = (line for line in handle if not (comments and line.lstrip().startswith("#")))
        reader = csv.reader(lines)
        try:
            header = [cell.strip() for cell in next(reader)]
        except StopIteration:
            raise FareRulesError(f"{name}: file is empty (no header)") from None
        missing = [field for field in required_fields if field not in header]
        if missing:
            raise FareRulesError(f"{name}: missing required column(s) {', '.join(missing)}")
        for number, cells in enumerate(reader, start=2):
            if not any(cell.strip() for cell in cells):
                continue
            if number > ROWS_MAX:
                raise FareRulesError(f"{name}: more than {ROWS_MAX} rows")
            if len(cells) > len(header):
                raise FareRulesError(f"{name} row {number}: {len(cells)} cells for {len(header)} columns")
            values = {field: (cell.strip() or None) for field, cell in zip(header, cells)}
            yield Row(name, number, values)
