"""Cardholder registry files (CSV or XLSX) for ``onecard cardholders import``.

Columns (Chinese or English headers, any order; ``*`` required):

| field | headers |
| --- | --- |
| ``id_number`` * | 身份证号码, 身份证号, 社会保障号码, id_number |
| ``name`` * | 姓名, name |
| ``card_number`` * | 社会保障卡号, 社保卡号, 银行卡号, card_number |
| ``status`` | 状态, status (正常/active, 挂失/lost, 注销/closed; empty = active) |
| ``categories`` | 类别, categories (老年人/senior, 残疾人/disabled, 学生/student; ``;``-separated) |
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import msgspec

from adapters.columns import ColumnSpec, Table
from adapters.tabular_rows import file_rows

CARDHOLDER_COLUMNS = ColumnSpec(
    fields=("id_number", "name", "card_number", "status", "categories"),
    required=frozenset({"id_number", "name", "card_number"}),
    aliases={
        "身份证号码": "id_number", "身份证号": "id_number", "社会保障号码": "id_number",
        "id_number": "id_number",
        "姓名": "name", "name": "name",
        "社会保障卡号": "card_number", "社保卡号": "card_number", "银行卡号": "card_number",
        "card_number": "card_number",
        "状态": "status", "status": "status",
        "类别": "categories", "categories": "categories",
    },
)


class CardholderLine(msgspec.Struct, frozen=True):
    """One cardholder row as written (cells as text; ``line`` 1 = first data row)."""

    line: int
    id_number: str
    name: str
    card_number: str
    status: str = ""
    categories: str = ""
    numeric_fields: frozenset[str] = frozenset()


def cardholder_lines(path: Path, encoding: str | None = None) -> Iterator[CardholderLine]:
    """The rows of a cardholder file at ``path`` (XLSX by content, else CSV in ``encoding``,
    detected when ``None``).

    Raises (while iterating)
    ------------------------
    FileEncodingError, FileFormatError
        See :mod:`adapters.text_encoding`, :mod:`adapters.columns`.
    """
    path = Path(path)
    for line, values, numeric in Table(file_rows(path, encoding), CARDHOLDER_COLUMNS, path.name):
        yield CardholderLine(line, *values, numeric_fields=numeric)
