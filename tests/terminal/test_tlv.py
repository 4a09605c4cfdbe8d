"""BER-TLV: field-pitfall cases, error offsets, and properties over arbitrary bytes."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from terminal import tlv
from terminal.errors import TlvError


@pytest.mark.parametrize("hex_in", [
    "9F816E0101",                       # 3-byte tag
    "DF81160412345678",                 # 3-byte tag from EMV Book C-2
    "5F2081" + "80" + "41" * 128,       # long form, one length byte: 128
    "7082" + "0100" + "9F0182" + "00FB" + "33" * 251,  # long form, two bytes: 256
    "6F1A840E315041592E5359532E4444463031A508880102" + "5F2D02656E",
    "77149F2701809F360200019F2608" + "1122334455667788",
])
def test_pitfall_encodings_decode_and_reencode_byte_exact(hex_in):
    data = bytes.fromhex(hex_in)
    assert tlv.encode(tlv.decode(data)) == data


def test_long_form_lengths_are_big_endian():
    (node,) = tlv.decode(bytes.fromhex("5F2081" + "80") + b"A" * 128)
    assert (node.tag, len(node.value)) == ("5F20", 128)
    (node,) = tlv.decode(bytes.fromhex("70820100") + bytes.fromhex("9F0182" + "00FB") + b"\x33" * 251)
    assert (node.tag, len(node.value), node.children[0].tag) == ("70", 256, "9F01")
    assert len(node.children[0].value) == 251


def test_nested_templates_decode_with_children():
    data = bytes.fromhex("6F1A840E315041592E5359532E4444463031A5088801025F2D02656E")
    (fci,) = tlv.decode(data)
    assert [child.tag for child in fci.children] == ["84", "A5"]
    assert tlv.find([fci], "5f2d").value == b"en"
    assert tlv.primitives([fci]) == {"84": b"1PAY.SYS.DDF01", "88": b"\x02", "5F2D": b"en"}


def test_padding_zero_bytes_between_objects_are_skipped():
    nodes = tlv.decode(bytes.fromhex("00005A0212340000"))
    assert nodes == [tlv.Tlv("5A", b"\x12\x34")]


@pytest.mark.parametrize("hex_in, message", [
    ("5A0512", "offset 0: tag 5A value truncated (length 5, 1 bytes left)"),
    ("9F", "offset 0: tag truncated"),
    ("9F81", "offset 0: tag truncated"),
    ("9F36", "offset 2: tag 9F36 length missing (truncated)"),
    ("5A81", "offset 1: tag 5A length truncated"),
    ("5A8200", "offset 1: tag 5A length truncated"),
    ("5A80", "offset 1: tag 5A indefinite length (80) not allowed in EMV"),
    ("5A8401000000", "offset 1: tag 5A length field of 4 bytes (at most 3)"),
    ("9F81818101", "offset 0: tag longer than 4 bytes"),
    ("7003" + "5A0512", "offset 2: tag 5A value truncated (length 5, 1 bytes left)"),
    ("9F360200019F3702", "offset 5: tag 9F37 value truncated (length 2, 0 bytes left)"),
])
def test_malformed_input_names_offset_and_problem(hex_in, message):
    with pytest.raises(TlvError) as caught:
        tlv.decode(bytes.fromhex(hex_in))
    assert str(caught.value) == message


def test_nesting_deeper_than_limit_is_refused():
    data = b""
    for _ in range(tlv.DEPTH_MAX + 2):
        data = tlv.Tlv("70", data).encode()
    with pytest.raises(TlvError, match="nested deeper"):
        tlv.decode(data)


def test_non_minimal_length_is_accepted_and_reencoded_shortest():
    (node,) = tlv.decode(bytes.fromhex("5A81021234"))
    assert node.encode() == bytes.fromhex("5A021234")


def test_builders_check_tags():
    assert tlv.template("77", tlv.primitive("9F36", b"\x00\x01")).encode().hex().upper() == (
        "77059F36020001")
    with pytest.raises(TlvError, match="constructed tag used for a primitive"):
        tlv.primitive("70", b"")
    with pytest.raises(TlvError, match="primitive tag used for a template"):
        tlv.template("5A")
    with pytest.raises(TlvError, match="not one well-formed BER tag"):
        tlv.primitive("9F", b"")
    with pytest.raises(TlvError, match="not hex"):
        tlv.primitive("ZZ", b"")


def test_dol_decodes_tags_and_lengths():
    cdol1 = bytes.fromhex("9F02069F03069F1A0295055F2A029A039C019F3704")
    assert tlv.decode_dol(cdol1) == [("9F02", 6), ("9F03", 6), ("9F1A", 2), ("95", 5),
                                     ("5F2A", 2), ("9A", 3), ("9C", 1), ("9F37", 4)]
    with pytest.raises(TlvError, match="truncated"):
        tlv.decode_dol(bytes.fromhex("9F02"))


# A tag: one byte (low 5 bits not all ones, not 00) or a 2-3 byte multi-byte tag.
_single_byte_tags = st.integers(1, 255).filter(lambda b: b & 0x1F != 0x1F).map(lambda b: bytes([b]))
_multi_byte_tags = st.builds(
    lambda first, middle, last: bytes([first | 0x1F]) + bytes(b | 0x80 for b in middle) + bytes([last & 0x7F]),
    st.integers(0, 255), st.lists(st.integers(0, 255), max_size=2), st.integers(0, 127),
)
_tags = st.one_of(_single_byte_tags, _multi_byte_tags).map(lambda raw: raw.hex().upper())


def _tree(children):
    return st.one_of(
        st.builds(lambda tag, value: tlv.Tlv(tag, value), _tags.filter(lambda t: not tlv.is_constructed(t)),
                  st.binary(max_size=300)),
        st.builds(lambda tag, kids: tlv.template(tag, *kids), _tags.filter(tlv.is_constructed),
                  st.lists(children, max_size=4)),
    )


_trees = st.recursive(
    st.builds(lambda tag, value: tlv.Tlv(tag, value),
              _tags.filter(lambda t: not tlv.is_constructed(t)), st.binary(max_size=300)),
    _tree, max_leaves=12,
)


@given(st.lists(_trees, max_size=5))
def test_round_trip_encode_then_decode(nodes):
    data = tlv.encode(nodes)
    assert tlv.decode(data) == nodes
    assert tlv.encode(tlv.decode(data)) == data


@settings(max_examples=500)
@given(st.binary(max_size=600))
def test_arbitrary_bytes_decode_or_raise_tlv_error(data):
    try:
        nodes = tlv.decode(data)
    except TlvError:
        return
    # Whatever decodes re-encodes to something that decodes to the same tree.
    assert tlv.decode(tlv.encode(nodes)) == nodes


@settings(max_examples=300)
@given(st.binary(max_size=100))
def test_arbitrary_dol_bytes_decode_or_raise_tlv_error(data):
    try:
        entries = tlv.decode_dol(data)
    except TlvError:
        return
    assert all(length >= 0 for _, length in entries)


@given(st.lists(st.tuples(st.sampled_from(["9F02", "9F37", "5A", "9F66", "95"]), st.integers(0, 8)), max_size=6),
       st.dictionaries(st.sampled_from(["9F02", "9F37", "5A", "95"]), st.binary(max_size=10)))
def test_dol_data_always_has_the_listed_length(dol, values):
    assert len(tlv.build_dol(dol, values)) == sum(length for _, length in dol)


def test_dol_fitting_rules():
    values = {"9F02": bytes.fromhex("0102030405060708"), "5A": bytes.fromhex("1234"), "95": b"\x01"}
    assert tlv.build_dol([("9F02", 6), ("5A", 4), ("95", 2), ("9F37", 4)], values).hex().upper() == (
        "030405060708" "1234FFFF" "0100" "00000000")
