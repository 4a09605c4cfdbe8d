import pytest

from adapters.errors import FileEncodingError
from adapters.text_encoding import CHUNK_BYTES, canonical_encoding, detect_encoding, first_bad_byte, resolve_encoding

TEXT = "序号,姓名,身份证号\n1,张三,510121195803142150\n"


@pytest.mark.parametrize(("encoding", "detected"), [
    ("utf-8", "utf-8"), ("utf-8-sig", "utf-8-sig"), ("gbk", "gb18030"), ("gb18030", "gb18030"),
])
def test_detection(tmp_path, encoding, detected):
    path = tmp_path / "f.csv"
    path.write_bytes(TEXT.encode(encoding))
    assert detect_encoding(path) == detected
    with open(path, encoding=detected) as stream:
        assert stream.read() == TEXT


def test_utf8_is_tried_before_gb18030(tmp_path):
    # These UTF-8 bytes also decode as GB18030, into mojibake: detection must say UTF-8.
    data = "姓名,张三".encode()
    data.decode("gb18030")
    path = tmp_path / "f.csv"
    path.write_bytes(data)
    assert detect_encoding(path) == "utf-8"


def test_rare_character_survives_gb18030(tmp_path):
    path = tmp_path / "f.csv"
    path.write_bytes("姓名\n王\U0002001a\n".encode("gb18030"))
    encoding = detect_encoding(path)
    assert path.read_bytes().decode(encoding) == "姓名\n王\U0002001a\n"


@pytest.mark.parametrize("data", [b"\xff\xfe\x00\x01binary", "张三".encode("gbk") + b"\x81", b"PK\x03\x04\x80\x80\xff"])
def test_undecodable_files_are_refused(tmp_path, data):
    path = tmp_path / "f.csv"
    path.write_bytes(data)
    with pytest.raises(FileEncodingError, match="not valid UTF-8"):
        detect_encoding(path)


def test_bad_byte_offset_across_chunks(tmp_path):
    # A 3-byte character split across the chunk boundary is fine; a bad byte later is found.
    data = b"a" * (CHUNK_BYTES - 1) + "张".encode() + b"b" * 10 + b"\xff"
    path = tmp_path / "f.csv"
    path.write_bytes(data)
    with open(path, "rb") as stream:
        assert first_bad_byte(stream, "utf-8") == len(data) - 1
    with open(path, "rb") as stream:
        assert first_bad_byte(stream, "utf-8") == len(data) - 1


def test_truncated_character_at_end_is_bad(tmp_path):
    path = tmp_path / "f.csv"
    path.write_bytes("张".encode()[:2])
    with open(path, "rb") as stream:
        assert first_bad_byte(stream, "utf-8") == 0


def test_declared_encoding_is_checked(tmp_path):
    path = tmp_path / "f.csv"
    path.write_bytes(TEXT.encode("gbk"))
    assert resolve_encoding(path, "GBK") == "gbk"
    with pytest.raises(FileEncodingError, match="is not valid utf-8"):
        resolve_encoding(path, "utf-8")


@pytest.mark.parametrize("name", ["latin-1", "big5", "no-such-codec"])
def test_unsupported_declared_encodings(name):
    with pytest.raises(FileEncodingError):
        canonical_encoding(name)
