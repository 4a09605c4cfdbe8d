import msgspec
import pytest

from adapters.batch_file import BatchLine, TabularBatchFile
from adapters.columns import DeclaredTotals
from adapters.errors import FileEncodingError, FileFormatError

HEADER = "序号,姓名,身份证号,社会保障卡号,金额（元）,补贴项目,备注"
ROWS = ["1,张三,510121195803142150,6222026465816998396,300.00,高龄津贴,",
        "2,王\U0002001a,51340119720505003X,6214825837354017807,\"1,000.50\",高龄津贴,补发"]
GBK_ROWS = [ROWS[0], ROWS[1].replace("\U0002001a", "五")]
TOTALS_ROW = "合计,共2人,,,\"1,300.50\",,"


def write(tmp_path, text, encoding="utf-8", name="batch.csv"):
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def read(path, encoding=None):
    source = TabularBatchFile(path, encoding)
    return list(source.lines()), source.declared_totals()


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "gbk", "gb18030"])
def test_same_batch_in_every_encoding_gives_identical_rows_and_totals(tmp_path, encoding):
    text = "\r\n".join([HEADER, *GBK_ROWS, TOTALS_ROW]) + "\r\n"
    lines, totals = read(write(tmp_path, text, encoding))
    expected, expected_totals = read(write(tmp_path, text, "utf-8", "reference.csv"))
    assert lines == expected and totals == expected_totals == [DeclaredTotals("totals row", 2, "1,300.50")]
    assert lines[0] == BatchLine(1, "510121195803142150", "张三", "6222026465816998396", "300.00", "高龄津贴", "", "1")
    assert lines[1].name == "王五" and lines[1].amount == "1,000.50"


def test_bom_is_not_part_of_the_first_header(tmp_path):
    text = "身份证号,姓名,银行卡号,金额\n510121195803142150,张三,6222026465816998396,1\n"
    lines, _ = read(write(tmp_path, text, "utf-8-sig"))
    assert lines[0].id_number == "510121195803142150"


def test_gb18030_keeps_rare_characters(tmp_path):
    lines, _ = read(write(tmp_path, "\n".join([HEADER, *ROWS]) + "\n", "gb18030"))
    assert lines[1].name == "王\U0002001a"


def test_declared_encoding_wins_and_is_checked(tmp_path):
    path = write(tmp_path, "\n".join([HEADER, *GBK_ROWS]) + "\n", "gbk")
    assert read(path, "gbk")[0][1].name == "王五"
    with pytest.raises(FileEncodingError):
        read(path, "utf-8")


def test_undecodable_file_is_refused_before_any_line(tmp_path):
    path = tmp_path / "batch.csv"
    path.write_bytes(("\n".join([HEADER, *GBK_ROWS]) + "\n").encode("gbk") + b"\xff\xff\n")
    source = TabularBatchFile(path)
    with pytest.raises(FileEncodingError):
        next(source.lines())


def test_english_headers_any_order_and_ignored_columns(tmp_path):
    text = "Amount,ID Number,Card_Number,Name,Phone\n12.5,510121195803142150,6222026465816998396,张三,13800000000\n"
    source = TabularBatchFile(write(tmp_path, text))
    [line] = list(source.lines())
    assert (line.amount, line.id_number, line.name, line.item) == ("12.5", "510121195803142150", "张三", "")
    assert source.ignored_columns == ("Phone",)


def test_title_and_header_totals_before_the_header(tmp_path):
    text = "\n".join(["2026年11月高龄津贴发放表", "笔数,2,总金额,1300.50", "", HEADER, *ROWS, ""])
    lines, totals = read(write(tmp_path, text))
    assert len(lines) == 2 and totals == [DeclaredTotals("header", 2, "1300.50")]


def test_ctrlsum_and_nboftxs_keys(tmp_path):
    text = "\n".join(["NbOfTxs,2", "CtrlSum,1300.50", HEADER, *ROWS])
    assert read(write(tmp_path, text))[1] == [DeclaredTotals("header", 2, None), DeclaredTotals("header", None, "1300.50")]


def test_blank_rows_are_skipped_and_lines_numbered_from_the_first_data_row(tmp_path):
    text = "\n".join([HEADER, ",,,,,,", ROWS[0], "", " ,\u3000,\t,,,,", ROWS[1], ",,,,,,", "\u3000,,,,,,"])
    lines, _ = read(write(tmp_path, text))
    assert [line.line for line in lines] == [1, 2]
    assert lines[1].numeric_fields == frozenset()


@pytest.mark.parametrize(("text", "message"), [
    ("姓名,金额\n张三,1\n", "lacks required column"),
    ("a,b\n1,2\n", "no header row"),
    ("身份证号,身份证号码,姓名,银行卡号,金额\n", "two columns for id_number"),
    (HEADER + "\n1,张三,510121195803142150,6222026465816998396,1,000.50,高龄津贴,,\n", "more cells than the header"),
    ("\n".join([HEADER, ROWS[0], TOTALS_ROW, ROWS[1]]), "follows the totals row"),
    ("\n".join([HEADER, ROWS[0], "合计,,,,,,"]), "states no amount and no count"),
    ("笔数,两笔\n" + HEADER + "\n" + ROWS[0], "not a whole number"),
    (HEADER + "\n1,\"张三\n", "row"),
])
def test_malformed_files_are_refused_naming_the_problem(tmp_path, text, message):
    with pytest.raises(FileFormatError, match=message):
        read(write(tmp_path, text))


def test_a_batch_line_crosses_a_pipe_as_a_msgpack_array():
    line = BatchLine(3, "X", "张", "6", "1", numeric_fields=frozenset({"id_number"}))
    encoded = msgspec.msgpack.encode(line)
    assert encoded == b"\x99\x03\xa1X\xa3\xe5\xbc\xa0\xa16\xa11\xa0\xa0\xa0\x91\xa9id_number"
    assert msgspec.msgpack.decode(encoded, type=BatchLine) == line
