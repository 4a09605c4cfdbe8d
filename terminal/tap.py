"""The tap message: what a gate sends the engine for one card tap (``POST /v1/taps``).

A :class:`Tap` carries the card's EMV data (as read in the kernel flow, see
:mod:`terminal.reader`), the exact CDOL1 data the card MACed into its ARQC, and where and
when the tap happened. ``POST /v1/taps`` takes one Tap or a JSON list of Taps (an offline
burst); ``tap_id`` is the client's idempotency key, so a resent tap is never charged twice.

Hex fields accept either case. The Tap checks itself on construction and on decoding:
the amount, unpredictable number, currency, date, type and TVR it states must equal the
values inside ``cdol1_data`` where the card's CDOL1 (``cdol1``) includes them, so the
fields the engine prices and the bytes the ARQC covers can never disagree; the CDOL1 must
include the amount (9F02) and the unpredictable number (9F37), the CID must say ARQC, and
the transaction date (9A) must be the date of ``local_time`` (the gate's local date).

The bytes the card MACs are ``cdol1_data || AIP || ATC || IAD part`` (see
:func:`transaction_data`); the IAD part depends on the card's scheme as in the reference
vectors (``../shared/data/emv``): the CVR for Visa CVN 10 and PBOC 3DES cards, the 6-byte
CVR for Mastercard session keys, the whole IAD otherwise.
"""

from __future__ import annotations

import datetime
import functools
import re
from collections.abc import Mapping
from typing import Annotated, Literal

import msgspec

from terminal import tlv
from terminal.errors import TapError, TlvError

TAP_ID_PATTERN = "^[A-Za-z0-9_.:-]{1,64}$"
NAME_PATTERN = "^[A-Za-z0-9_.:-]{1,32}$"
CDOL1_DATA_BYTES_MAX = 252
IAD_BYTES_MAX = 32
CDOL1_FORMATS_CACHED_MAX = 256  # distinct CDOL1s remembered (one per card product)
AMOUNT_MINOR_MAX = 999_999_999_999  # n12, the size of tag 9F02

CID_ARQC = 0x80
CID_TYPE_MASK = 0xC0
# The amount the engine prices and the terminal's unpredictable number (freshness) must be
# among the data the card MACs.
CDOL1_REQUIRED = ("9F02", "9F37")

assert CDOL1_DATA_BYTES_MAX <= 255 and AMOUNT_MINOR_MAX < 2**63


def _hex(length_min: int, length_max: int | None = None):
    length_max = length_min if length_max is None else length_max
    return Annotated[str, msgspec.Meta(pattern=f"^([0-9A-Fa-f]{{2}}){{{length_min},{length_max}}}$")]


Direction = Literal["entry", "exit", "single"]


class Tap(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One card tap at a gate (wire format of ``POST /v1/taps``).

    Attributes
    ----------
    tap_id : str
        Client idempotency key, 1-64 of ``[A-Za-z0-9_.:-]``; unique per tap, reused on resend.
    gate_id, station : str
        The gate (also the signing key id) and its station, 1-32 of ``[A-Za-z0-9_.:-]``.
    direction : "entry" | "exit" | "single"
        ``single`` is a flat-fare validator (bus) with no exit tap.
    local_time : datetime
        When the card was tapped, with the gate's UTC offset (ISO 8601 on the wire).
    pan : str
        8 to 19 digits, Luhn-valid (tag 5A without its ``F`` padding).
    psn : str
        2 digits (tag 5F34; ``"00"`` when the card has none, as key derivation assumes).
    atc : int
        Application transaction counter, 0..65535 (tag 9F36).
    un : str
        Unpredictable number, 4 bytes hex (tag 9F37).
    amount : int
        Amount authorised in minor units (tag 9F02), 0..999999999999.
    currency : str
        ISO 4217 numeric code, 3 digits (tag 5F2A), e.g. ``"156"`` for CNY.
    transaction_date : date
        Tag 9A. ``transaction_type``: 2 digits (tag 9C, ``"00"`` purchase).
    tvr, aip, cid, iad, arqc : str
        Hex of tags 95 (5 bytes), 82 (2), 9F27 (1), 9F10 (1-32), 9F26 (8).
    cdol1 : str
        Hex of the card's CDOL1 (tag 8C): the tags and lengths of ``cdol1_data``.
    cdol1_data : str
        Hex of the data the terminal sent in GENERATE AC, which the card MACed.
    """

    tap_id: Annotated[str, msgspec.Meta(pattern=TAP_ID_PATTERN)]
    gate_id: Annotated[str, msgspec.Meta(pattern=NAME_PATTERN)]
    station: Annotated[str, msgspec.Meta(pattern=NAME_PATTERN)]
    direction: Direction
    local_time: Annotated[datetime.datetime, msgspec.Meta(tz=True)]
    pan: Annotated[str, msgspec.Meta(pattern="^[0-9]{8,19}$")]
    psn: Annotated[str, msgspec.Meta(pattern="^[0-9]{2}$")]
    atc: Annotated[int, msgspec.Meta(ge=0, le=0xFFFF)]
    un: _hex(4)
    amount: Annotated[int, msgspec.Meta(ge=0, le=AMOUNT_MINOR_MAX)]
    currency: Annotated[str, msgspec.Meta(pattern="^[0-9]{3}$")]
    transaction_date: datetime.date
    transaction_type: Annotated[str, msgspec.Meta(pattern="^[0-9]{2}$")]
    tvr: _hex(5)
    aip: _hex(2)
    cid: _hex(1)
    iad: _hex(1, IAD_BYTES_MAX)
    arqc: _hex(8)
    cdol1: _hex(2, 252)
    cdol1_data: _hex(1, CDOL1_DATA_BYTES_MAX)

    def __post_init__(self) -> None:
        if not luhn_valid(self.pan):
            raise ValueError("pan: Luhn check digit is wrong")
        if int(self.cid, 16) & CID_TYPE_MASK != CID_ARQC:
            raise ValueError(f"cid: {self.cid} is not an ARQC")
        stated = _terminal_elements(self)
        values = cdol1_values(self.cdol1, self.cdol1_data)
        for tag in CDOL1_REQUIRED:
            if tag not in values:
                raise ValueError(f"cdol1: lists no {tag}, so the ARQC does not cover it")
        for tag, value in values.items():
            if tag in stated and stated[tag] != value:
                raise ValueError(f"cdol1_data: tag {tag} differs from the tap's field "
                                 f"({value.hex().upper()} != {stated[tag].hex().upper()})")
        if self.transaction_date != self.local_time.date():
            raise ValueError(f"transaction_date: {self.transaction_date} is not the date of "
                             f"local_time ({self.local_time.date()})")


def cdol1_values(cdol1_hex: str, cdol1_data_hex: str) -> dict[str, bytes]:
    """Split CDOL1 data into its data elements, by the card's CDOL1.

    Raises
    ------
    ValueError
        The CDOL1 is malformed or its total length differs from the data's.

    >>> cdol1_values("9F02069F3704", "000000000150" "11223344")
    {'9F02': b'\\x00\\x00\\x00\\x00\\x01P', '9F37': b'\\x11"3D'}
    """
    entries = _cdol1_entries(cdol1_hex)
    data = bytes.fromhex(cdol1_data_hex)
    if sum(length for _, length in entries) != len(data):
        raise ValueError(f"cdol1_data: {len(data)} bytes, but cdol1 lists "
                         f"{sum(length for _, length in entries)}")
    values: dict[str, bytes] = {}
    offset = 0
    for tag, length in entries:
        values.setdefault(tag, data[offset:offset + length])
        offset += length
    return values


_LUHN_DOUBLED = (0, 2, 4, 6, 8, 1, 3, 5, 7, 9)


def luhn_valid(digits: str) -> bool:
    """Whether a string of decimal digits ends in its Luhn check digit (ISO/IEC 7812-1).

    Equal to ``stdnum.luhn.is_valid`` on digit strings, false on anything else (a
    property test holds them together); written out because every tap checks it and
    this is three times faster.

    >>> luhn_valid("79927398713"), luhn_valid("79927398710")
    (True, False)
    """
    if not (digits.isascii() and digits.isdigit()):
        return False
    return (sum(map(int, digits[-1::-2]))
            + sum([_LUHN_DOUBLED[int(digit)] for digit in digits[-2::-2]])) % 10 == 0


@functools.lru_cache(maxsize=CDOL1_FORMATS_CACHED_MAX)
def _cdol1_entries(cdol1_hex: str) -> tuple[tuple[str, int], ...]:
    # Every tap is parsed on the hot path, and a card product has one CDOL1: remembered.
    try:
        return tuple(tlv.decode_dol(bytes.fromhex(cdol1_hex)))
    except TlvError as error:
        raise ValueError(f"cdol1: {error}") from None


def _terminal_elements(tap: Tap) -> dict[str, bytes]:
    """The tap's terminal-side fields encoded as their EMV data elements."""
    return {
        "9F02": bytes.fromhex(f"{tap.amount:012d}"),
        "9F37": bytes.fromhex(tap.un),
        "5F2A": bytes.fromhex(f"0{tap.currency}"),
        "9A": bytes.fromhex(tap.transaction_date.strftime("%y%m%d")),
        "9C": bytes.fromhex(tap.transaction_type),
        "95": bytes.fromhex(tap.tvr),
    }


def transaction_data(tap: Tap, session_key_derivation: str) -> bytes:
    """The exact bytes the card MACed into ``tap.arqc`` (see :func:`mac_input`).

    >>> tap = msgspec.json.decode(EXAMPLE_TAP_JSON, type=Tap)
    >>> transaction_data(tap, "none").hex().upper()[-24:]
    '112233445800000103A00000'
    """
    return mac_input(session_key_derivation, bytes.fromhex(tap.cdol1_data),
                     bytes.fromhex(tap.aip), tap.atc.to_bytes(2, "big"), bytes.fromhex(tap.iad))


def mac_input(session_key_derivation: str, cdol1_data: bytes, aip: bytes, atc: bytes,
              iad: bytes) -> bytes:
    """What a card of this session key method MACs for its application cryptogram.

    ``cdol1_data || AIP (2 bytes) || ATC (2 bytes) || part``, where ``part`` is the CVR
    (IAD bytes 3-6) for ``none`` (Visa CVN 10) and ``pboc``, the 6-byte CVR (IAD bytes
    2-7) for ``mastercard``, and the whole IAD for ``emv_csk`` and ``common_r``; this
    matches how the reference vectors (``../shared/data/emv``) were assembled.

    Raises
    ------
    ValueError
        An unknown method, or an IAD too short to hold the CVR the method MACs.
    """
    assert len(aip) == 2 and len(atc) == 2
    if session_key_derivation in ("none", "pboc"):
        part = _iad_slice(iad, 3, 7)
    elif session_key_derivation == "mastercard":
        part = _iad_slice(iad, 2, 8)
    elif session_key_derivation in ("emv_csk", "common_r"):
        part = iad
    else:
        raise ValueError(f"session_key_derivation: unknown method {session_key_derivation!r}")
    return cdol1_data + aip + atc + part


def _iad_slice(iad: bytes, start: int, end: int) -> bytes:
    if len(iad) < end:
        raise ValueError(f"iad: {len(iad)} bytes, too short for the CVR at bytes {start}-{end - 1}")
    return iad[start:end]


def check_tap_names(tap_id: str, gate_id: str, station: str) -> None:
    """Refuse a ``tap_id``, ``gate_id`` or ``station`` a :class:`Tap` would not take, so a
    gate finds out before it asks a card for a cryptogram.

    Raises
    ------
    TapError
        The message names the field and the characters it allows.
    """
    for field, value, pattern, size in (("tap_id", tap_id, TAP_ID_PATTERN, 64),
                                        ("gate_id", gate_id, NAME_PATTERN, 32),
                                        ("station", station, NAME_PATTERN, 32)):
        if not re.fullmatch(pattern, value):
            raise TapError(f"{field}: must be 1-{size} of [A-Za-z0-9_.:-], got {value!r}")


def tap_from_card(
    elements: Mapping[str, bytes],
    cdol1_data: bytes,
    *,
    tap_id: str,
    gate_id: str,
    station: str,
    direction: Direction,
    local_time: datetime.datetime,
) -> Tap:
    """Build the Tap from the data elements of one kernel run.

    Parameters
    ----------
    elements : Mapping[str, bytes]
        Tag (upper-case hex) to value of every primitive element the card returned
        (SELECT, GPO, records, GENERATE AC) and of the terminal data the kernel sent.
    cdol1_data : bytes
        The data sent in GENERATE AC (built from the card's CDOL1, tag 8C).

    Raises
    ------
    TapError
        A mandatory element is missing or invalid (the message names the tag), the card
        did not return an ARQC, or the assembled tap fails its own checks.
    """
    pan = _pan(_required(elements, "5A"))
    psn_raw = elements.get("5F34", b"\x00")
    if len(psn_raw) != 1 or not psn_raw.hex().isdigit():
        raise TapError(f"tag 5F34 (PSN): must be 1 byte of BCD, got {psn_raw.hex().upper()!r}")
    cid = _required(elements, "9F27", 1)
    if cid[0] & CID_TYPE_MASK != CID_ARQC:
        kind = {0x00: "AAC (declined)", 0x40: "TC"}.get(cid[0] & CID_TYPE_MASK, "RFU")
        raise TapError(f"tag 9F27 (CID): card returned {kind}, expected an ARQC")
    date = _bcd(elements, "9A", 3)
    try:
        transaction_date = datetime.date(2000 + int(date[:2]), int(date[2:4]), int(date[4:]))
    except ValueError:
        raise TapError(f"tag 9A (transaction date): {date} is not a YYMMDD date") from None
    fields = dict(
        tap_id=tap_id, gate_id=gate_id, station=station, direction=direction,
        local_time=local_time, pan=pan, psn=psn_raw.hex(),
        atc=int.from_bytes(_required(elements, "9F36", 2), "big"),
        un=_required(elements, "9F37", 4).hex().upper(),
        amount=int(_bcd(elements, "9F02", 6)),
        currency=_bcd(elements, "5F2A", 2)[1:],
        transaction_date=transaction_date,
        transaction_type=_bcd(elements, "9C", 1),
        tvr=_required(elements, "95", 5).hex().upper(),
        aip=_required(elements, "82", 2).hex().upper(),
        cid=cid.hex().upper(),
        iad=_required(elements, "9F10").hex().upper(),
        arqc=_required(elements, "9F26", 8).hex().upper(),
        cdol1=_required(elements, "8C").hex().upper(),
        cdol1_data=cdol1_data.hex().upper(),
    )
    try:
        return msgspec.convert(fields, Tap, from_attributes=False)
    except msgspec.ValidationError as error:
        raise TapError(f"tap: {error}") from None


def _required(elements: Mapping[str, bytes], tag: str, length: int | None = None) -> bytes:
    value = elements.get(tag)
    if value is None:
        raise TapError(f"tag {tag} ({tlv.tag_name(tag)}): missing from the card's responses")
    if length is not None and len(value) != length:
        raise TapError(f"tag {tag} ({tlv.tag_name(tag)}): must be {length} bytes, got {len(value)}")
    return value


def _bcd(elements: Mapping[str, bytes], tag: str, length: int) -> str:
    digits = _required(elements, tag, length).hex()
    if not digits.isdigit():
        raise TapError(f"tag {tag} ({tlv.tag_name(tag)}): not BCD digits ({digits.upper()})")
    return digits


def _pan(raw: bytes) -> str:
    digits = raw.hex().upper().rstrip("F")
    if not (digits.isdigit() and 8 <= len(digits) <= 19):
        raise TapError("tag 5A (PAN): must be 8 to 19 BCD digits padded with F")
    if not luhn_valid(digits):
        raise TapError("tag 5A (PAN): Luhn check digit is wrong")
    return digits


EXAMPLE_TAP_JSON = b"""{
 "tap_id": "g1-000001", "gate_id": "g1", "station": "S01", "direction": "entry",
 "local_time": "2026-11-30T08:15:03+08:00", "pan": "6217000010012345677", "psn": "01",
 "atc": 1, "un": "11223344", "amount": 200, "currency": "156",
 "transaction_date": "2026-11-30", "transaction_type": "00", "tvr": "0000000000",
 "aip": "5800", "cid": "80", "iad": "07010103A0000001", "arqc": "0123456789ABCDEF",
 "cdol1": "9F02069F03069F1A0295055F2A029A039C019F3704",
 "cdol1_data": "0000000002000000000000000156000000000001562611300011223344"
}"""
