"""ISO/IEC 7816-4 command and response APDUs (short form) and the status word table.

>>> command(0x00, 0xA4, 0x04, 0x00, b"2PAY.SYS.DDF01").hex().upper()
'00A404000E325041592E5359532E444446303100'
>>> parse_command(bytes.fromhex("80A8000002830000"))
Command(cla=128, ins=168, p1=0, p2=0, data=b'\\x83\\x00', le=256)
>>> meaning(0x6A82), meaning(0x6110)
('file or application not found', '16 more response bytes available (GET RESPONSE)')
"""

from __future__ import annotations

from typing import NamedTuple

SW_OK = 0x9000
SW_BYTES_AVAILABLE = 0x61  # SW1: SW2 more bytes, fetch with GET RESPONSE
SW_WRONG_LE = 0x6C  # SW1: resend the command with Le = SW2

# ISO/IEC 7816-4 section 5.1.3 and EMV 4.4 Book 3 Annex A, the words an EMV card uses.
STATUS_WORDS: dict[int, str] = {
    0x9000: "normal processing",
    0x6283: "selected file or application blocked",
    0x6400: "execution error, state of non-volatile memory unchanged",
    0x6581: "memory failure",
    0x6700: "wrong length",
    0x6882: "secure messaging not supported",
    0x6983: "authentication method blocked",
    0x6984: "referenced data invalidated",
    0x6985: "conditions of use not satisfied",
    0x6986: "command not allowed, no current EF",
    0x6A81: "function not supported",
    0x6A82: "file or application not found",
    0x6A83: "record not found",
    0x6A86: "incorrect parameters P1-P2",
    0x6A88: "referenced data not found",
    0x6B00: "wrong parameters P1-P2",
    0x6D00: "instruction code not supported or invalid",
    0x6E00: "class not supported",
    0x6F00: "no precise diagnosis",
}

INS_SELECT = 0xA4
INS_READ_RECORD = 0xB2
INS_GET_PROCESSING_OPTIONS = 0xA8
INS_GENERATE_AC = 0xAE
INS_GET_RESPONSE = 0xC0

SHORT_DATA_BYTES_MAX = 255
assert SHORT_DATA_BYTES_MAX == 0xFF


def meaning(sw: int) -> str:
    """The meaning of status word ``sw`` (two bytes as an int), from :data:`STATUS_WORDS`."""
    if sw >> 8 == SW_BYTES_AVAILABLE:
        return f"{sw & 0xFF or 256} more response bytes available (GET RESPONSE)"
    if sw >> 8 == SW_WRONG_LE:
        return f"wrong Le, exact length is {sw & 0xFF}"
    if sw >> 8 == 0x63 and sw & 0xF0 == 0xC0:
        return f"verification failed, {sw & 0x0F} tries left"
    return STATUS_WORDS.get(sw, "unknown status word")


class Command(NamedTuple):
    """A parsed short command APDU; ``le`` is 0 when absent, 256 for ``Le = 00``."""

    cla: int
    ins: int
    p1: int
    p2: int
    data: bytes
    le: int


def command(cla: int, ins: int, p1: int, p2: int, data: bytes = b"", le: int | None = 256) -> bytes:
    """A short command APDU (cases 1-4); ``le=None`` omits Le, ``256`` is sent as ``00``."""
    assert len(data) <= SHORT_DATA_BYTES_MAX and (le is None or 1 <= le <= 256)
    apdu = bytes([cla, ins, p1, p2])
    if data:
        apdu += bytes([len(data)]) + data
    if le is not None:
        apdu += bytes([le & 0xFF])
    return apdu


def parse_command(apdu: bytes) -> Command | None:
    """Parse a short command APDU; ``None`` when its length does not fit any case."""
    if len(apdu) < 4:
        return None
    header, body = apdu[:4], apdu[4:]
    if not body:
        return Command(*header, b"", 0)
    if len(body) == 1:
        return Command(*header, b"", body[0] or 256)
    length = body[0]
    if length and len(body) == 1 + length:
        return Command(*header, body[1:], 0)
    if length and len(body) == 2 + length:
        return Command(*header, body[1:-1], body[-1] or 256)
    return None


def split_response(response: bytes) -> tuple[bytes, int]:
    """Split a response APDU into (data, status word).

    >>> split_response(bytes.fromhex("01029000"))
    (b'\\x01\\x02', 36864)
    """
    assert len(response) >= 2, "a response APDU ends with SW1 SW2"
    return response[:-2], int.from_bytes(response[-2:], "big")
