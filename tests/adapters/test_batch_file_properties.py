import csv
import io

from hypothesis import given, settings, strategies as st, HealthCheck

from adapters.batch_file import TabularBatchFile

HEADER = ["序号", "姓名", "身份证号", "社会保障卡号", "金额（元）", "补贴项目", "备注"]
# Characters every supported encoding can write, including CSV's own specials.
CELL = st.text(alphabet=st.sampled_from(list("张三王五赵六 ,\"\n\r0123456789.xX-￥元，　abc")), max_size=12)


def _has_content(row):
    return "".join(row).strip() and not row[0].strip().startswith(("合计", "总计"))


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.lists(CELL, min_size=7, max_size=7).filter(_has_content), max_size=8),
       encoding=st.sampled_from(["utf-8", "utf-8-sig", "gbk", "gb18030"]))
def test_any_cells_survive_every_encoding(tmp_path, rows, encoding):
    text = io.StringIO()
    csv.writer(text).writerows([HEADER, *rows])
    path = tmp_path / "batch.csv"
    path.write_bytes(text.getvalue().encode(encoding))
    lines = list(TabularBatchFile(path).lines())
    assert [(l.sequence, l.name, l.id_number, l.card_number, l.amount, l.item, l.remark) for l in lines] == [
        tuple(r) for r in rows]
    assert [l.line for l in lines] == list(range(1, len(rows) + 1))
