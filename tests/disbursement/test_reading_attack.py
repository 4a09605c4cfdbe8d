"""Attacks on the read-ahead child: file errors in later chunks, encodings, a killed child."""

from __future__ import annotations

import datetime
import multiprocessing
import os
import signal

import pytest

from adapters.batch_file import TabularBatchFile
from adapters.errors import AdapterError, FileEncodingError, FileFormatError
from engine.disbursement.reading import InProcessReader, ReadAheadReader
from engine.errors import ReaderProcessError

TODAY = datetime.date(2026, 1, 1)
HEADER = "序号,姓名,身份证号,社会保障卡号,金额（元）,备注\n"
ROWS = ["1,张三,510121195803142150,6222026465816998396,300.00,",
        "2,李四,51340119720505003x,6214825837354017807,1.5,",
        "3,王五,bad,6259083065450331,12.345,",
        "4,赵六,510121195803142150,,0,",
        "5,钱七,510121195803142150,6222026465816998396,-1,",
        "6,孙八,510121195803142150,6222026465816998396,abc,二月"]


def _seen(reader):
    """Every line number the reader yields, then the error it raises (or None)."""
    seen = []
    try:
        for lines, prepared, _fields, _content in reader.chunks():
            assert len(lines) == len(prepared)
            seen.append([(line.line, p.amount_minor, p.id_check) for line, p in zip(lines, prepared)])
    except AdapterError as error:
        return seen, (type(error), str(error))
    return seen, reader.declared_totals()


@pytest.mark.parametrize("chunk_lines", [1, 2, 4, 5])
@pytest.mark.parametrize("bad", ["cells", "encoding"])
def test_a_file_error_in_a_later_chunk_is_seen_as_in_process(tmp_path, chunk_lines, bad):
    path = tmp_path / "batch.csv"
    body = (HEADER + "\n".join(ROWS) + "\n").encode("gb18030")
    if bad == "cells":
        body += "7,周九,x,y,z,w,v,u\n".encode("gb18030")
    else:
        body += b"7,\xff\xff\n"
    path.write_bytes(body)
    here = _seen(InProcessReader(TabularBatchFile(path, "gb18030"), TODAY, chunk_lines))
    there = _seen(ReadAheadReader(path, "gb18030", TODAY, chunk_lines))
    assert there == here
    assert here[1][0] is (FileFormatError if bad == "cells" else FileEncodingError)


@pytest.mark.parametrize("encoding, prefix", [("utf-8", b"\xef\xbb\xbf"), ("gbk", b""), ("gb18030", b"")])
def test_bom_and_chinese_encodings_are_detected_alike(tmp_path, encoding, prefix):
    path = tmp_path / "batch.csv"
    path.write_bytes(prefix + (HEADER + "\n".join(ROWS) + "\n").encode(encoding))
    here = _seen(InProcessReader(TabularBatchFile(path, None), TODAY, 4))
    there = _seen(ReadAheadReader(path, None, TODAY, 4))
    assert there == here
    assert [line for chunk in here[0] for line, _, _ in chunk] == [1, 2, 3, 4, 5, 6]


def test_a_killed_reader_child_is_a_clear_adapter_error_and_leaves_no_child(tmp_path):
    path = tmp_path / "batch.csv"
    path.write_text(HEADER + "\n".join(ROWS * 2000) + "\n", encoding="utf-8")
    before = set(multiprocessing.active_children())
    chunks = ReadAheadReader(path, None, TODAY, 10).chunks()
    next(chunks)
    [child] = set(multiprocessing.active_children()) - before
    os.kill(child.pid, signal.SIGKILL)
    with pytest.raises(ReaderProcessError, match=r"batch.csv: .* \(exit code -9\)"):
        for _ in chunks:
            pass
    assert not set(multiprocessing.active_children()) - before


_INTERRUPTED = """
import datetime, sys, time
from pathlib import Path
from engine.disbursement.reading import ReadAheadReader

try:
    chunks = ReadAheadReader(Path(sys.argv[1]), None, datetime.date(2026, 1, 1), 10).chunks()
    next(chunks)
    print("reading", flush=True)
    time.sleep(30)
except KeyboardInterrupt:
    chunks.close()
    import multiprocessing
    print("interrupted", len(multiprocessing.active_children()), flush=True)
"""


def test_ctrl_c_stops_the_reader_child_quietly(tmp_path):
    # Ctrl-C reaches the terminal's whole process group: the parent and its reader child.
    import subprocess
    import sys

    path = tmp_path / "batch.csv"
    path.write_text(HEADER + "\n".join(ROWS * 2000) + "\n", encoding="utf-8")
    parent = subprocess.Popen([sys.executable, "-c", _INTERRUPTED, str(path)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, start_new_session=True, cwd=os.getcwd())
    try:
        assert parent.stdout.readline() == "reading\n"
        os.killpg(parent.pid, signal.SIGINT)
        out, err = parent.communicate(timeout=30)
    finally:
        if parent.poll() is None:
            parent.kill()
    assert (out, parent.returncode) == ("interrupted 0\n", 0)  # the child ended and was reaped
    assert "Traceback" not in err, err


@pytest.mark.parametrize("amount", ["100000000000000000000", "-100000000000000000000", "92233720368547758.08"])
def test_an_amount_beyond_64_bits_is_read_ahead_as_in_process(tmp_path, amount):
    # msgpack carries integers of 64 bits; a line's amount in fen may be any integer.
    path = tmp_path / "batch.csv"
    path.write_text(HEADER + ROWS[0] + "\n" + f"2,李四,51340119720505003x,6214825837354017807,{amount},\n",
                    encoding="utf-8")
    here = _seen(InProcessReader(TabularBatchFile(path, None), TODAY, 4))
    assert _seen(ReadAheadReader(path, None, TODAY, 4)) == here


@pytest.mark.soak
def test_a_real_16_mib_gb18030_file_with_bad_lines_everywhere_reads_as_in_process(tmp_path):
    from engine.disbursement import reading

    path = tmp_path / "large.csv"
    body = []
    for n in range(1, 280_001):
        if n % 9973 == 0:
            body.append(f"{n},钱七,5.10121E+17,6222 0264 6581 6998 396,1.005,\"备注,含逗号\"")
        elif n % 7919 == 0:
            body.append(f"{n},孙八,51340119720505003x,,abc,")
        else:
            body.append(f"{n},张三丰,510121195803142150,6222026465816998396,{n % 500}.{n % 100:02d},")
    path.write_bytes((HEADER + "\n".join(body) + "\n").encode("gb18030"))
    assert path.stat().st_size >= reading.READ_AHEAD_BYTES_MIN
    reader = reading.chunk_reader(TabularBatchFile(path, None), TODAY, 10_000)
    assert isinstance(reader, ReadAheadReader)
    there = list(reader.chunks()), reader.declared_totals()
    here_reader = InProcessReader(TabularBatchFile(path, None), TODAY, 10_000)
    here = list(here_reader.chunks()), here_reader.declared_totals()
    assert there == here
    assert sum(len(chunk[0]) for chunk in there[0]) == 280_000
