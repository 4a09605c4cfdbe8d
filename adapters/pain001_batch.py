"""A pain.001.001.09 batch as a :class:`adapters.batch_file.BatchSource`.

The ISO 20022 reader (:class:`adapters.iso20022.pain001.Reader`) streams and checks the
file (XSD, exact ``NbOfTxs``/``CtrlSum`` of the group and of each ``PmtInf``); this module
only maps each transaction to the same :class:`~adapters.batch_file.BatchLine` a CSV or
XLSX line becomes, so validation does not know where a line came from:

| BatchLine | pain.001 |
| --- | --- |
| ``line`` | position of the ``CdtTrfTxInf`` in the file, from 1 |
| ``id_number`` | ``Cdtr/Id/PrvtId/Othr/Id`` |
| ``name`` | ``Cdtr/Nm`` |
| ``card_number`` | ``CdtrAcct/Id`` |
| ``amount`` | ``Amt/InstdAmt`` as written (yuan) |
| ``item`` | ``Purp/Cd`` or ``Purp/Prtry`` |
| ``remark`` | ``RmtInf/Ustrd`` |
| ``sequence`` | ``PmtId/EndToEndId`` |

Disbursements pay yuan: a transaction in any other currency refuses the whole file.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from adapters.batch_file import BatchLine
from adapters.columns import DeclaredTotals
from adapters.errors import FileFormatError
from adapters.iso20022.pain001 import Reader

CURRENCY = "CNY"


class Pain001BatchFile:
    """A pain.001.001.09 batch file (:class:`adapters.batch_file.BatchSource`).

    Raises (while iterating)
    ------------------------
    MessageError
        Any refusal of :class:`adapters.iso20022.pain001.Reader` (malformed, wrong version,
        schema, ``TotalsMismatchError`` with its ISO reason code for the pain.002 RJCT).
    FileFormatError
        A transaction not in CNY (line and currency named).
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.name = self.path.name
        self._reader = Reader(self.path)

    def lines(self) -> Iterator[BatchLine]:
        """The transactions as batch lines, numbered from 1 in document order; iterate once."""
        for transaction in self._reader:
            if transaction.currency != CURRENCY:
                raise FileFormatError(
                    f"{self.name}: transaction {transaction.line} (EndToEndId "
                    f"{transaction.end_to_end_id}) is in {transaction.currency}; batches pay {CURRENCY}"
                )
            yield BatchLine(
                transaction.line, transaction.identity_number, transaction.creditor_name,
                transaction.account, str(transaction.amount), transaction.programme_item,
                transaction.remark, transaction.end_to_end_id,
            )

    def declared_totals(self) -> list[DeclaredTotals]:
        """The group header's ``NbOfTxs`` and ``CtrlSum`` (already enforced by the reader;
        checked again by validation like any file's totals)."""
        header = self._reader.header
        if header is None:
            return []
        control_sum = None if header.control_sum is None else str(header.control_sum)
        return [DeclaredTotals("GrpHdr", header.number_of_transactions, control_sum)]
