"""BER-TLV as used by EMV cards (EMV 4.4 Book 3, Annex B; ISO/IEC 8825-1 subset).

A data object is a tag (1 to ``TAG_BYTES_MAX`` bytes), a length (short form ``00``-``7F``,
or long form ``81``-``83`` followed by 1 to 3 big-endian length bytes) and a value. Bit 6 of
the first tag byte marks a constructed object (a template such as ``6F``, ``A5``, ``BF0C``,
``70``, ``77``) whose value is itself a sequence of data objects.

Decisions:

- ``00`` bytes before, between or after data objects are padding and are skipped
  (Book 3 Annex B: erased or modified objects leave ``00`` bytes).
- A long-form length that would fit a shorter form (``81 05``) is accepted; re-encoding
  writes the shortest form. Every other well-formed input re-encodes to the same bytes.
- A constructed object keeps its raw value bytes, so re-encoding it never changes the
  content, and its ``children`` are those bytes decoded.
- Indefinite lengths (``80``), lengths of more than 3 bytes, tags longer than
  ``TAG_BYTES_MAX`` bytes and nesting deeper than ``DEPTH_MAX`` raise :class:`TlvError`.

>>> nodes = decode(bytes.fromhex("6F0B8407A0000003330101A500"))
>>> nodes[0].tag, [child.tag for child in nodes[0].children]
('6F', ['84', 'A5'])
>>> encode(nodes).hex().upper()
'6F0B8407A0000003330101A500'
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from terminal.emv_tags import tag_format, tag_name
from terminal.errors import TlvError

TAG_BYTES_MAX = 4
LENGTH_BYTES_MAX = 3
DEPTH_MAX = 16
VALUE_BYTES_MAX = (1 << (8 * LENGTH_BYTES_MAX)) - 1

assert TAG_BYTES_MAX >= 3, "EMV uses 3-byte tags (9F816E, DF8116)"
assert 1 <= LENGTH_BYTES_MAX <= 4 and DEPTH_MAX >= 3


@dataclass(frozen=True, slots=True)
class Tlv:
    """One BER-TLV data object.

    Attributes
    ----------
    tag : str
        Upper-case hex of the tag bytes, e.g. ``"9F36"`` (1 to ``TAG_BYTES_MAX`` bytes).
    value : bytes
        The value field exactly (for a template: its encoded children).
    children : tuple[Tlv, ...]
        For a constructed object, its value decoded; empty for a primitive one.
    """

    tag: str
    value: bytes
    children: tuple["Tlv", ...] = ()

    @property
    def constructed(self) -> bool:
        """True when bit 6 of the first tag byte is set (a template)."""
        return is_constructed(self.tag)

    def encode(self) -> bytes:
        """Tag, shortest length and value; the inverse of :func:`decode` for one object."""
        return bytes.fromhex(self.tag) + encode_length(len(self.value)) + self.value


def is_constructed(tag: str) -> bool:
    """Whether ``tag`` (hex) names a constructed object.

    >>> is_constructed("70"), is_constructed("9F36"), is_constructed("BF0C")
    (True, False, True)
    """
    return bool(int(tag[:2], 16) & 0x20)


def primitive(tag: str, value: bytes) -> Tlv:
    """A primitive data object.

    Raises
    ------
    TlvError
        ``tag`` is not a well-formed tag, or it is a constructed tag.

    >>> primitive("9f36", b"\\x00\\x01").encode().hex().upper()
    '9F36020001'
    """
    tag = _checked_tag(tag)
    if is_constructed(tag):
        raise TlvError(f"tag {tag}: constructed tag used for a primitive object")
    return Tlv(tag, bytes(value))


def template(tag: str, *children: Tlv) -> Tlv:
    """A constructed data object (template) holding ``children`` in order.

    >>> template("77", primitive("9F27", b"\\x80")).encode().hex().upper()
    '77049F270180'
    """
    tag = _checked_tag(tag)
    if not is_constructed(tag):
        raise TlvError(f"tag {tag}: primitive tag used for a template")
    return Tlv(tag, encode(children), tuple(children))


def encode(nodes: Iterable[Tlv]) -> bytes:
    """The concatenated encoding of ``nodes``."""
    return b"".join(node.encode() for node in nodes)


def encode_length(length: int) -> bytes:
    """The shortest BER length field for ``length`` bytes.

    >>> encode_length(127).hex(), encode_length(128).hex(), encode_length(256).hex()
    ('7f', '8180', '820100')
    """
    if not 0 <= length <= VALUE_BYTES_MAX:
        raise TlvError(f"length {length}: outside 0..{VALUE_BYTES_MAX}")
    if length < 0x80:
        return bytes([length])
    size = (length.bit_length() + 7) // 8
    return bytes([0x80 | size]) + length.to_bytes(size, "big")


def decode(data: bytes) -> list[Tlv]:
    """Decode a sequence of BER-TLV data objects, templates recursively.

    Parameters
    ----------
    data : bytes
        Any number of data objects, optionally padded with ``00`` bytes.

    Raises
    ------
    TlvError
        Naming the offset (from the start of ``data``) and the problem: truncated tag,
        length or value, indefinite or over-long length, over-long tag, nesting too deep.
    """
    return _decode(bytes(data), 0, len(data), 0)


def _decode(data: bytes, start: int, end: int, depth: int) -> list[Tlv]:
    if depth > DEPTH_MAX:
        raise TlvError(f"offset {start}: templates nested deeper than {DEPTH_MAX}")
    nodes: list[Tlv] = []
    offset = start
    while offset < end:
        if data[offset] == 0x00:
            offset += 1
            continue
        tag_start = offset
        offset = _tag_end(data, offset, end)
        tag = data[tag_start:offset].hex().upper()
        length, offset = _length(data, offset, end, tag)
        if length > end - offset:
            raise TlvError(
                f"offset {tag_start}: tag {tag} value truncated "
                f"(length {length}, {end - offset} bytes left)"
            )
        value = data[offset:offset + length]
        children: tuple[Tlv, ...] = ()
        if is_constructed(tag):
            children = tuple(_decode(data, offset, offset + length, depth + 1))
        nodes.append(Tlv(tag, value, children))
        offset += length
    assert offset == end
    return nodes


def _tag_end(data: bytes, offset: int, end: int) -> int:
    """Offset just past the tag that starts at ``offset``."""
    start = offset
    if data[offset] & 0x1F != 0x1F:
        return offset + 1
    offset += 1
    while True:
        if offset >= end:
            raise TlvError(f"offset {start}: tag truncated")
        if offset - start + 1 > TAG_BYTES_MAX:
            raise TlvError(f"offset {start}: tag longer than {TAG_BYTES_MAX} bytes")
        more = data[offset] & 0x80
        offset += 1
        if not more:
            return offset


def _length(data: bytes, offset: int, end: int, tag: str) -> tuple[int, int]:
    """The length field at ``offset``: (length, offset of the value)."""
    if offset >= end:
        raise TlvError(f"offset {offset}: tag {tag} length missing (truncated)")
    first = data[offset]
    if first < 0x80:
        return first, offset + 1
    size = first & 0x7F
    if size == 0:
        raise TlvError(f"offset {offset}: tag {tag} indefinite length (80) not allowed in EMV")
    if size > LENGTH_BYTES_MAX:
        raise TlvError(f"offset {offset}: tag {tag} length field of {size} bytes (at most "
                       f"{LENGTH_BYTES_MAX})")
    if offset + 1 + size > end:
        raise TlvError(f"offset {offset}: tag {tag} length truncated")
    return int.from_bytes(data[offset + 1:offset + 1 + size], "big"), offset + 1 + size


def _checked_tag(tag: str) -> str:
    tag = tag.upper()
    try:
        raw = bytes.fromhex(tag)
    except ValueError:
        raise TlvError(f"tag {tag!r}: not hex") from None
    try:
        well_formed = bool(raw) and raw[0] != 0 and _tag_end(raw, 0, len(raw)) == len(raw)
    except TlvError:
        well_formed = False
    if not well_formed:
        raise TlvError(f"tag {tag!r}: not one well-formed BER tag")
    return tag


def walk(nodes: Iterable[Tlv]) -> Iterator[Tlv]:
    """Every object of ``nodes`` and of their templates, depth first, in encoding order."""
    for node in nodes:
        yield node
        yield from walk(node.children)


def find(nodes: Iterable[Tlv], tag: str) -> Tlv | None:
    """The first object with ``tag`` (hex, any case) at any depth, or ``None``."""
    tag = tag.upper()
    return next((node for node in walk(nodes) if node.tag == tag), None)


def primitives(nodes: Iterable[Tlv]) -> dict[str, bytes]:
    """Tag to value of every primitive object at any depth (the first one of a repeated tag).

    >>> primitives(decode(bytes.fromhex("770B9F2701809F360200015A00")))
    {'9F27': b'\\x80', '9F36': b'\\x00\\x01', '5A': b''}
    """
    found: dict[str, bytes] = {}
    for node in walk(nodes):
        if not node.constructed:
            found.setdefault(node.tag, node.value)
    return found


def decode_dol(data: bytes) -> list[tuple[str, int]]:
    """A Data Object List (PDOL, CDOL1): tags and lengths, no values (Book 3, 5.4).

    >>> decode_dol(bytes.fromhex("9F02069F3704"))
    [('9F02', 6), ('9F37', 4)]
    """
    entries: list[tuple[str, int]] = []
    offset = 0
    while offset < len(data):
        tag_start = offset
        offset = _tag_end(data, offset, len(data))
        tag = data[tag_start:offset].hex().upper()
        length, offset = _length(data, offset, len(data), tag)
        entries.append((tag, length))
    return entries


def format_tree(nodes: Iterable[Tlv], indent: int = 0) -> str:
    """An indented listing: tag, EMV name, length and value (hex) of each object.

    >>> print(format_tree(decode(bytes.fromhex("77059F36020001"))))
    77 Response Message Template Format 2 (5)
      9F36 Application Transaction Counter (ATC) (2) 0001
    """
    lines: list[str] = []
    for node in nodes:
        head = f"{'  ' * indent}{node.tag} {tag_name(node.tag)} ({len(node.value)})"
        if node.constructed:
            lines.append(head)
            if node.children:
                lines.append(format_tree(node.children, indent + 1))
        else:
            lines.append(f"{head} {node.value.hex().upper()}".rstrip())
    return "\n".join(lines)


def build_dol(dol: Iterable[tuple[str, int]], values: dict[str, bytes]) -> bytes:
    """The data for a DOL from the terminal's ``values`` (EMV 4.4 Book 3, 5.4).

    A tag the terminal does not know is sent as zeros. A value of another length is fitted:
    numeric (``n``) values keep their rightmost bytes or get leading zeros, compressed
    numeric (``cn``) values get trailing ``FF``, others keep their leftmost bytes or get
    trailing zeros.

    >>> build_dol([("9F02", 6), ("9F37", 4), ("9F66", 2)], {"9F02": b"\\x02\\x00", "9F37": b"ABCDE"}).hex()
    '000000000200414243440000'
    """
    parts: list[bytes] = []
    for tag, length in dol:
        value = values.get(tag, bytes(length))
        kind = tag_format(tag)
        if kind == "n":
            value = value[-length:] if len(value) > length else value.rjust(length, b"\x00")
        else:
            pad = b"\xff" if kind == "cn" else b"\x00"
            value = value[:length].ljust(length, pad)
        parts.append(value if length else b"")
    return b"".join(parts)
