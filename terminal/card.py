"""A contactless EMV / PBOC debit card application, emulated in Python.

The card is personalised with a scheme (a name in :data:`hsm.scheme.SCHEMES`), its ICC
master key, PAN and PSN, and answers the commands of a contactless kernel (EMV 4.4 Book 3
section 6.5; PBOC 3.0 part 5):

| command | what the card does |
| --- | --- |
| SELECT ``2PAY.SYS.DDF01`` | FCI with one directory entry (AID, label, priority) |
| SELECT AID | FCI with label, priority and the PDOL if it has one |
| GET PROCESSING OPTIONS | increments the ATC; answers AIP and AFL (format 2, tag 77) |
| READ RECORD | records 1-2 of SFI 1 (track 2, name, PAN, PSN, dates, CDOL1/2) |
| GENERATE AC | ARQC (or AAC when asked) over the CDOL1 data, format 2 |

The cryptogram comes from :mod:`hsm.scheme` (session key, then MAC over
:func:`terminal.tap.mac_input`); the card never holds the issuer master key. Errors answer
with status words from :data:`terminal.iso7816.STATUS_WORDS`. The card keeps the ATC across
taps (as a real card's non-volatile memory); ``reset`` forgets only the session.
"""

from __future__ import annotations

from hsm import scheme as schemes
from terminal import iso7816, tlv
from terminal.iso7816 import Command
from terminal.tap import mac_input

PPSE_NAME = b"2PAY.SYS.DDF01"
AID_PBOC_DEBIT = bytes.fromhex("A000000333010101")
ATR = bytes.fromhex("3B80800101")  # T=0 and T=1, no historical bytes; TCK = 01
CDOL1 = bytes.fromhex("9F02069F03069F1A0295055F2A029A039C019F3704")
CDOL2 = bytes.fromhex("8A029F02069F03069F1A0295055F2A029A039C019F3704")
AIP = bytes.fromhex("1800")  # cardholder verification and terminal risk management
AFL = bytes.fromhex("08010200")  # SFI 1, records 1 to 2, none for offline authentication
ATC_MAX = 0xFFFF
CID_ARQC, CID_AAC = 0x80, 0x00
P1_TYPE_MASK = 0xC0

# Issuer application data by (alg, session key method): length, key index, cryptogram
# version, and the card verification results (CVR) where the scheme MACs them.
IAD_BY_KIND: dict[tuple[str, str], bytes] = {
    ("3DES", "none"): bytes.fromhex("06010A03A00000"),  # Visa CVN 10
    ("3DES", "emv_csk"): bytes.fromhex("06011203A00000"),  # Visa CVN 18
    ("3DES", "mastercard"): bytes.fromhex("0110A00003220000" "0000" "0000000000000000"),  # M/Chip CVN 16
    ("3DES", "pboc"): bytes.fromhex("07010103A0000001"),  # PBOC 3.0, 3DES
    ("SM4", "emv_csk"): bytes.fromhex("07010403A0000001"),  # PBOC 3.0, SM4
    ("AES-128", "emv_csk"): bytes.fromhex("06012203A00000"),
}

CDOL1_DATA_BYTES = sum(length for _, length in tlv.decode_dol(CDOL1))
assert CDOL1_DATA_BYTES == 29 and tlv.decode_dol(CDOL1)[-1] == ("9F37", 4)


class Card:
    """One personalised card application.

    Parameters
    ----------
    scheme_name : str
        A key of :data:`hsm.scheme.SCHEMES` (e.g. ``"pboc-3des"``).
    icc_master_key : bytes
        16 bytes, the card's AC master key (derive with :meth:`issue`).
    pan : str
        8 to 19 digits. ``psn``: 2 digits.
    atc : int
        The counter before the first tap (0..65535).
    pdol : bytes
        The card's PDOL (tag 9F38), empty for none.
    aip, iad : bytes
        Tags 82 (2 bytes) and 9F10 (default: the layout of the scheme, ``IAD_BY_KIND``).

    Raises
    ------
    ValueError
        An unknown scheme, a scheme the card has no IAD layout for, or a bad key, PAN,
        PSN or ATC.

    >>> card = Card.issue("pboc-3des", bytes(16), "6217000010012345677", "01")
    >>> card
    Card(scheme='pboc-3des', pan='621700******5677', psn='01', atc=0)
    >>> card.transmit(bytes.fromhex("00A404000E325041592E5359532E444446303100"))[-2:].hex()
    '9000'
    """

    atr = ATR

    def __init__(self, scheme_name: str, icc_master_key: bytes, pan: str, psn: str = "01", *,
                 atc: int = 0, pdol: bytes = b"", aid: bytes = AID_PBOC_DEBIT,
                 label: str = "ONECARD DEBIT", expiry_yymmdd: str = "301231",
                 aip: bytes = AIP, iad: bytes | None = None):
        self.scheme_name = scheme_name
        self.scheme = schemes.scheme_named(scheme_name)
        kind = (self.scheme.alg, self.scheme.session_key_derivation)
        if kind not in IAD_BY_KIND:
            raise ValueError(f"scheme {scheme_name}: the card has no IAD layout for {kind}")
        if len(icc_master_key) != 16:
            raise ValueError("icc_master_key must be 16 bytes")
        if not (pan.isdigit() and 8 <= len(pan) <= 19) or not (psn.isdigit() and len(psn) == 2):
            raise ValueError("pan must be 8-19 digits and psn 2 digits")
        if not 0 <= atc <= ATC_MAX:
            raise ValueError(f"atc must be 0..{ATC_MAX}, got {atc}")
        self._icc_master_key = bytes(icc_master_key)
        self.pan, self.psn, self.atc = pan, psn, atc
        self.aid, self.pdol, self.label = aid, pdol, label
        if len(aip) != 2:
            raise ValueError("aip must be 2 bytes")
        self.aip = bytes(aip)
        self.iad = IAD_BY_KIND[kind] if iad is None else bytes(iad)
        self._pdol_length = sum(length for _, length in tlv.decode_dol(pdol))
        self._gpo_data_header = b"\x83" + tlv.encode_length(self._pdol_length)  # tag 83, Book 3 6.5.8
        self._records = {key: _ok(record) for key, record in _records(pan, psn, expiry_yymmdd).items()}
        self._responses = self._fixed_responses()
        self.reset()

    @classmethod
    def issue(cls, scheme_name: str, issuer_master_key: bytes, pan: str, psn: str = "01",
              **options) -> "Card":
        """Personalise a card: derive its ICC master key from the 16-byte issuer master key
        (EMV Book 2 A1.4, option by scheme) as the issuer's personalisation bureau does."""
        scheme = schemes.scheme_named(scheme_name)
        key = schemes.icc_master_key(scheme, issuer_master_key, pan, psn)
        return cls(scheme_name, key, pan, psn, **options)

    def __repr__(self) -> str:
        masked = self.pan[:6] + "*" * 6 + self.pan[-4:]
        return f"Card(scheme={self.scheme_name!r}, pan={masked!r}, psn={self.psn!r}, atc={self.atc})"

    def _fixed_responses(self) -> dict[str, bytes]:
        """The answers that never change, encoded once at personalisation."""
        entry = tlv.template("61", tlv.primitive("4F", self.aid),
                             tlv.primitive("50", self.label.encode()), tlv.primitive("87", b"\x01"))
        ppse = tlv.template("6F", tlv.primitive("84", PPSE_NAME),
                            tlv.template("A5", tlv.template("BF0C", entry)))
        fields = [tlv.primitive("50", self.label.encode()), tlv.primitive("87", b"\x01")]
        if self.pdol:
            fields.append(tlv.primitive("9F38", self.pdol))
        fields.append(tlv.primitive("5F2D", b"zhen"))
        fci = tlv.template("6F", tlv.primitive("84", self.aid), tlv.template("A5", *fields))
        gpo = tlv.template("77", tlv.primitive("82", self.aip), tlv.primitive("94", AFL))
        return {"ppse": _ok(ppse), "fci": _ok(fci), "gpo": _ok(gpo)}

    def reset(self) -> None:
        """Power on or reset: no application selected, no transaction in progress."""
        self._selected = False
        self._in_transaction = False

    def transmit(self, apdu: bytes) -> bytes:
        """Answer one command APDU with a response APDU (data, then SW1 SW2)."""
        parsed = iso7816.parse_command(apdu)
        if parsed is None:
            return _sw(0x6700)
        if parsed.cla & 0xF0 not in (0x00, 0x80):
            return _sw(0x6E00)
        handler = _HANDLERS.get(parsed.ins)
        if handler is None:
            return _sw(0x6D00)
        return getattr(self, handler)(parsed)

    def _select(self, command: Command) -> bytes:
        if command.p1 != 0x04 or command.p2 not in (0x00, 0x02):
            return _sw(0x6A86)
        self.reset()
        if command.p2 == 0x02:
            return _sw(0x6A82)  # one application only: there is no "next" occurrence
        if command.data == PPSE_NAME:
            return self._responses["ppse"]
        if command.data != self.aid:
            return _sw(0x6A82)
        self._selected = True
        return self._responses["fci"]

    def _get_processing_options(self, command: Command) -> bytes:
        if not self._selected:
            return _sw(0x6985)
        if command.p1 or command.p2:
            return _sw(0x6A86)
        header = self._gpo_data_header
        if not command.data.startswith(header) or len(command.data) != len(header) + self._pdol_length:
            return _sw(0x6700)
        if self.atc >= ATC_MAX:
            return _sw(0x6985)  # the counter is exhausted: the card is finished
        self.atc += 1
        self._in_transaction = True
        return self._responses["gpo"]

    def _read_record(self, command: Command) -> bytes:
        if command.p2 & 0x07 != 0x04:
            return _sw(0x6A86)
        if not self._selected:
            return _sw(0x6985)
        record = self._records.get((command.p2 >> 3, command.p1))
        return record if record is not None else _sw(0x6A83)

    def _generate_ac(self, command: Command) -> bytes:
        if not self._in_transaction:
            return _sw(0x6985)
        if len(command.data) != CDOL1_DATA_BYTES:
            return _sw(0x6700)
        self._in_transaction = False  # one cryptogram per transaction
        cid = CID_AAC if command.p1 & P1_TYPE_MASK == 0x00 else CID_ARQC
        atc = self.atc.to_bytes(2, "big")
        un = command.data[-4:]  # 9F37 is the last element of CDOL1
        if self.scheme.session_key_derivation != "mastercard":
            un = b""
        session_key = schemes.session_key(self.scheme, self._icc_master_key, atc, un=un)
        data = mac_input(self.scheme.session_key_derivation, command.data, self.aip, atc, self.iad)
        cryptogram = schemes.application_cryptogram(self.scheme, session_key, data)
        return _ok(tlv.template(
            "77", tlv.primitive("9F27", bytes([cid])), tlv.primitive("9F36", atc),
            tlv.primitive("9F26", cryptogram), tlv.primitive("9F10", self.iad),
        ))


_HANDLERS = {
    iso7816.INS_SELECT: "_select",
    iso7816.INS_GET_PROCESSING_OPTIONS: "_get_processing_options",
    iso7816.INS_READ_RECORD: "_read_record",
    iso7816.INS_GENERATE_AC: "_generate_ac",
}


def _records(pan: str, psn: str, expiry_yymmdd: str) -> dict[tuple[int, int], tlv.Tlv]:
    """The card's records by (SFI, record number), as READ RECORD returns them."""
    pan_cn = bytes.fromhex(pan + "F" * (len(pan) % 2))
    track2_digits = pan + "D" + expiry_yymmdd[:4] + "220" + "0" * 10
    track2 = bytes.fromhex(track2_digits + "F" * (len(track2_digits) % 2))
    first = tlv.template("70", tlv.primitive("57", track2),
                         tlv.primitive("5F20", b"ONECARD/HOLDER"))
    second = tlv.template(
        "70", tlv.primitive("5A", pan_cn), tlv.primitive("5F24", bytes.fromhex(expiry_yymmdd)),
        tlv.primitive("5F25", bytes.fromhex("200101")), tlv.primitive("5F34", bytes.fromhex(psn)),
        tlv.primitive("5F28", bytes.fromhex("0156")), tlv.primitive("9F07", bytes.fromhex("FF00")),
        tlv.primitive("8C", CDOL1), tlv.primitive("8D", CDOL2),
    )
    return {(1, 1): first, (1, 2): second}


def _ok(node: tlv.Tlv) -> bytes:
    return node.encode() + b"\x90\x00"


def _sw(sw: int) -> bytes:
    assert sw in iso7816.STATUS_WORDS, f"status word {sw:04X} missing from the table"
    return sw.to_bytes(2, "big")
