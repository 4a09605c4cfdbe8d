import io

import pytest

from adapters.batch_file import BatchLine
from engine.disbursement.lifecycle import LineStatus
from engine.disbursement.result_file import RESULT_COLUMNS, result_row, write_result_csv
from engine.disbursement.results import LineResult


def test_result_file_rows():
    lines = [BatchLine(1, "510121195803142150", "张三", "6222026465816998396", "¥100", "高龄津贴", "", "1"),
             BatchLine(2, "5.10121E+17", "=HYPERLINK(\"x\")", "6222026465816998396", "-50.00", "", "@note", "2")]
    stream = io.StringIO(newline="")
    count = write_result_csv(stream, [result_row(lines[0], LineStatus.accepted, LineResult.ok),
                                      result_row(lines[1], LineStatus.rejected, LineResult.id_in_scientific_notation)])
    assert count == 2
    assert stream.getvalue().splitlines() == [
        ",".join(RESULT_COLUMNS),
        "1,accepted,,1,张三,510121195803142150,6222026465816998396,¥100,高龄津贴,,",
        "2,rejected,id_in_scientific_notation,2,\"'=HYPERLINK(\"\"x\"\")\",5.10121E+17,6222026465816998396,-50.00,,'@note,",
    ]


def test_rejected_lines_must_have_a_reason():
    with pytest.raises(AssertionError):
        result_row(BatchLine(1, "", "", "", ""), LineStatus.rejected, LineResult.ok)
