"""Disbursement batch files (CSV or XLSX) as a stream of :class:`BatchLine` records.

Columns (Chinese or English headers, any order; ``*`` required):

| field | headers |
| --- | --- |
| ``sequence`` | 序号, no, seq |
| ``name`` * | 姓名, 户名, name |
| ``id_number`` * | 身份证号, 身份证号码, 公民身份号码, 社会保障号码, id_number |
| ``card_number`` * | 社会保障卡号, 社保卡号, 银行卡号, 卡号, 账号, card_number, account_number |
| ``amount`` * | 金额, 金额（元）, 发放金额, amount |
| ``item`` | 补贴项目, 项目, item |
| ``remark`` | 备注, remark |

Totals declared in the file (header key-value rows, a totals row; see
:mod:`adapters.columns`) come back as :class:`adapters.columns.DeclaredTotals`.

The seam for other formats is :class:`BatchSource`: a pain.001 file is read by
:class:`adapters.pain001_batch.Pain001BatchFile` into the same :class:`BatchLine` records,
with ``NbOfTxs``/``CtrlSum`` as declared totals; :func:`open_batch_file` picks the reader
by the file's content.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import msgspec

from adapters.columns import ColumnSpec, DeclaredTotals, Table
from adapters.errors import FileFormatError
from adapters.tabular_rows import file_rows
from adapters.text_encoding import UTF8_BOM

SNIFF_BYTES = 64

BATCH_COLUMNS = ColumnSpec(
    fields=("id_number", "name", "card_number", "amount", "item", "remark", "sequence"),
    required=frozenset({"id_number", "name", "card_number", "amount"}),
    aliases={
        "序号": "sequence", "no": "sequence", "seq": "sequence",
        "姓名": "name", "户名": "name", "name": "name",
        "身份证号": "id_number", "身份证号码": "id_number", "公民身份号码": "id_number",
        "社会保障号码": "id_number", "id_number": "id_number",
        "社会保障卡号": "card_number", "社保卡号": "card_number", "银行卡号": "card_number",
        "卡号": "card_number", "账号": "card_number", "card_number": "card_number",
        "account_number": "card_number",
        "金额": "amount", "金额（元）": "amount", "发放金额": "amount", "amount": "amount",
        "补贴项目": "item", "项目": "item", "item": "item",
        "备注": "remark", "remark": "remark",
    },
    amount_field="amount",
)


class BatchLine(msgspec.Struct, frozen=True, gc=False, array_like=True):
    """One payment line as written in the file, before normalisation (msgpack: an array
    in field order, half the bytes of a map and a third cheaper to decode, for the pipe
    of :mod:`engine.disbursement.reading`).

    Attributes
    ----------
    line : int
        1-based data line number (1 = the first line after the header; blank rows skipped).
    id_number, name, card_number, amount : str
        The cells as text; ``amount`` in yuan as written (``"1,234.50元"``).
    item, remark, sequence : str
        Optional columns, ``""`` when absent.
    numeric_fields : frozenset[str]
        Fields whose spreadsheet cell was a number (XLSX); an ``id_number`` here is refused.
    """

    line: int
    id_number: str
    name: str
    card_number: str
    amount: str
    item: str = ""
    remark: str = ""
    sequence: str = ""
    numeric_fields: frozenset[str] = frozenset()


class BatchSource(Protocol):
    """A batch file as lines plus the totals it declares (CSV, XLSX, pain.001).

    ``lines()`` is iterated once and numbers its lines 1, 2, 3, ... in file order (for
    pain.001: the ``CdtTrfTxInf`` elements in document order, across ``PmtInf`` blocks);
    ``declared_totals()`` is complete only after it is exhausted (a totals row comes last;
    pain.001 gives ``GrpHdr/NbOfTxs`` and ``CtrlSum``, and each ``PmtInf``'s, as entries).
    Malformed input raises an ``AdapterError`` naming the position.
    """

    name: str

    def lines(self) -> Iterator[BatchLine]: ...

    def declared_totals(self) -> list[DeclaredTotals]: ...


class TabularBatchFile:
    """A CSV or XLSX batch file (:class:`BatchSource`).

    Parameters
    ----------
    path : Path
        The file; XLSX is recognised by its content, anything else is read as CSV.
    encoding : str | None
        CSV encoding as declared by the user (``utf-8``, ``gbk``, ``gb18030``); ``None``
        detects it.

    Raises (while iterating)
    ------------------------
    FileEncodingError, FileFormatError
        See :mod:`adapters.text_encoding`, :mod:`adapters.columns`.
    """

    def __init__(self, path: Path, encoding: str | None = None) -> None:
        self.path = Path(path)
        self.name = self.path.name
        self.encoding = encoding
        self._table = Table(file_rows(self.path, encoding), BATCH_COLUMNS, self.name)

    def lines(self) -> Iterator[BatchLine]:
        """The data lines, numbered from 1; iterate once (raises while iterating, see above)."""
        for line, values, numeric in self._table:
            yield BatchLine(line, *values, numeric_fields=numeric)

    def declared_totals(self) -> list[DeclaredTotals]:
        """Header totals and the totals row, in file order (complete after :meth:`lines`)."""
        return list(self._table.declared)

    @property
    def ignored_columns(self) -> tuple[str, ...]:
        """Header cells that map to no field (kept for the report; not validated)."""
        return self._table.ignored_columns


def is_xml(path: Path) -> bool:
    """Whether the file starts (after an optional UTF-8 BOM and whitespace) with ``<``."""
    with open(path, "rb") as stream:
        head = stream.read(SNIFF_BYTES)
    return head.removeprefix(UTF8_BOM).lstrip().startswith(b"<")


def open_batch_file(path: Path, encoding: str | None = None) -> BatchSource:
    """The batch file at ``path`` as a :class:`BatchSource`: pain.001 XML, XLSX or CSV by content.

    Raises
    ------
    FileFormatError
        ``encoding`` given for an XML file (XML declares its own); other errors are raised
        while iterating (see :class:`TabularBatchFile` and
        :class:`adapters.pain001_batch.Pain001BatchFile`).
    """
    path = Path(path)
    if is_xml(path):
        if encoding is not None:
            raise FileFormatError(f"{path.name}: is XML (pain.001); --encoding applies to CSV only")
        # Imported here: the pain.001 module builds on this one.
        from adapters.pain001_batch import Pain001BatchFile

        return Pain001BatchFile(path)
    return TabularBatchFile(path, encoding)
