"""The contactless kernel flow, and a PC/SC reader to run it on (pyscard, pcsc-lite).

:func:`read_card` runs EMV 4.4 Book 3 / Book C's common flow against any card reachable
through a ``transmit`` function (command APDU in, response APDU out):

1. SELECT ``2PAY.SYS.DDF01`` (PPSE); candidate AIDs from its directory entries (tag 61),
   highest priority (tag 87) first;
2. SELECT the first candidate that answers 9000;
3. GET PROCESSING OPTIONS with the PDOL data (tag 9F38) built from the terminal data;
   AIP and AFL from format 1 (tag 80) or format 2 (tag 77);
4. READ RECORD for every record the AFL lists (each a tag 70 template);
5. GENERATE AC asking for an ARQC, with the CDOL1 data (tag 8C) built from the terminal
   data; CID, ATC, AC and IAD from format 1 or 2.

``61xx`` is answered with GET RESPONSE and ``6Cxx`` by resending with the right Le (T=0
cards); any other status word than 9000 stops the flow with :class:`CardStatusError`.
The flow is pure (no I/O of its own), so tests run it directly against
:class:`terminal.card.Card` as well as through pcscd.

:class:`PcscReader` is the I/O half: it waits for a card on a PC/SC reader and exchanges
APDUs through pyscard (needs pcscd; install with the ``reader`` extra).
"""

from __future__ import annotations

import datetime
import secrets
from collections.abc import Callable
from typing import NamedTuple

from terminal import iso7816, tlv
from terminal.errors import CardStatusError, ReaderError, TapError, TlvError
from terminal.tap import Direction, Tap, tap_from_card

Transmit = Callable[[bytes], bytes]

PPSE_NAME = b"2PAY.SYS.DDF01"
RESPONSE_CHAIN_MAX = 16
RECORDS_MAX = 64
CARD_WAIT_S = 5.0
CURRENCY_CNY = "156"
COUNTRY_CHINA = "156"
TTQ = bytes.fromhex("26000080")  # qPBOC/qVSDC online, contactless EMV mode
GENERATE_AC_ARQC = 0x80

assert RECORDS_MAX > 0 and RESPONSE_CHAIN_MAX > 0


class CardRead(NamedTuple):
    """What one kernel run collected.

    Attributes
    ----------
    aid : bytes
        The selected application.
    elements : dict[str, bytes]
        Tag to value of every primitive element the card returned, plus the terminal data
        the kernel sent (the terminal's value wins for a tag both have).
    cdol1_data : bytes
        The exact data sent in GENERATE AC.
    """

    aid: bytes
    elements: dict[str, bytes]
    cdol1_data: bytes


def terminal_data(amount: int, local_time: datetime.datetime, *, currency: str = CURRENCY_CNY,
                  country: str = COUNTRY_CHINA, transaction_type: str = "00",
                  un: bytes | None = None) -> dict[str, bytes]:
    """The terminal's data elements for one transaction (the values for PDOL and CDOL1).

    ``amount`` in minor units; ``un`` (4 bytes) defaults to fresh random bytes.

    >>> data = terminal_data(200, datetime.datetime(2026, 11, 30, 8, 15), un=b"1234")
    >>> data["9F02"].hex(), data["9A"].hex(), data["9F21"].hex(), data["5F2A"].hex()
    ('000000000200', '261130', '081500', '0156')
    """
    if not 0 <= amount <= 999_999_999_999:
        raise TapError(f"amount: {amount} outside 0..999999999999 minor units")
    un = secrets.token_bytes(4) if un is None else un
    assert len(un) == 4
    return {
        "9F02": bytes.fromhex(f"{amount:012d}"), "9F03": bytes(6),
        "9F1A": bytes.fromhex(f"0{country}"), "5F2A": bytes.fromhex(f"0{currency}"),
        "95": bytes(5), "9A": bytes.fromhex(local_time.strftime("%y%m%d")),
        "9F21": bytes.fromhex(local_time.strftime("%H%M%S")),
        "9C": bytes.fromhex(transaction_type), "9F37": un, "9F66": TTQ, "9F35": b"\x22",
    }


def read_card(transmit: Transmit, terminal: dict[str, bytes]) -> CardRead:
    """Run the kernel flow (see the module docstring) and collect the card's data.

    Raises
    ------
    CardStatusError
        A command answered with an error status word (the message names the command).
    TapError
        The card's answers lack what the flow needs (PPSE entries, AFL, CDOL1) or are
        not valid BER-TLV.
    """
    elements: dict[str, bytes] = {}
    try:
        aid, fci = _select_application(transmit)
        elements.update(tlv.primitives(fci))
        pdol = tlv.decode_dol(elements.get("9F38", b""))
        pdol_data = tlv.build_dol(pdol, terminal)
        gpo = _exchange(transmit, iso7816.command(0x80, iso7816.INS_GET_PROCESSING_OPTIONS, 0, 0,
                                                  tlv.primitive("83", pdol_data).encode()), "GPO")
        aip, afl = _processing_options(tlv.decode(gpo))
        elements.update({"82": aip, "94": afl})
        for sfi, record in _afl_records(afl):
            body = _exchange(transmit, iso7816.command(0x00, iso7816.INS_READ_RECORD, record,
                                                       (sfi << 3) | 0x04),
                             f"READ RECORD {sfi}/{record}")
            nodes = tlv.decode(body)
            if len(nodes) != 1 or nodes[0].tag != "70":
                raise TapError(f"READ RECORD {sfi}/{record}: not a tag 70 template")
            for tag, value in tlv.primitives(nodes).items():
                elements.setdefault(tag, value)
        if "8C" not in elements:
            raise TapError("tag 8C (CDOL1): missing from the card's records")
        cdol1_data = tlv.build_dol(tlv.decode_dol(elements["8C"]), terminal)
        answer = _exchange(transmit, iso7816.command(0x80, iso7816.INS_GENERATE_AC,
                                                     GENERATE_AC_ARQC, 0x00, cdol1_data),
                           "GENERATE AC")
        elements.update(_generate_ac_response(tlv.decode(answer)))
    except TlvError as error:
        raise TapError(f"card data is not valid BER-TLV: {error}") from None
    elements.update(terminal)
    return CardRead(aid, elements, cdol1_data)


def read_tap(transmit: Transmit, *, amount: int, tap_id: str, gate_id: str, station: str,
             direction: Direction, local_time: datetime.datetime,
             un: bytes | None = None, currency: str = CURRENCY_CNY) -> Tap:
    """Read the presented card and build its :class:`Tap` (``local_time`` must be aware).

    Raises
    ------
    CardStatusError, TapError
        As :func:`read_card` and :func:`terminal.tap.tap_from_card`.
    """
    read = read_card(transmit, terminal_data(amount, local_time, currency=currency, un=un))
    return tap_from_card(read.elements, read.cdol1_data, tap_id=tap_id, gate_id=gate_id,
                         station=station, direction=direction, local_time=local_time)


def _exchange(transmit: Transmit, apdu: bytes, name: str) -> bytes:
    """Send ``apdu``; follow 61xx/6Cxx; return the data of a 9000 answer."""
    data, sw = iso7816.split_response(transmit(apdu))
    collected = b""
    for _ in range(RESPONSE_CHAIN_MAX):
        if sw >> 8 == iso7816.SW_WRONG_LE:
            data, sw = iso7816.split_response(transmit(apdu[:-1] + bytes([sw & 0xFF])))
        elif sw >> 8 == iso7816.SW_BYTES_AVAILABLE:
            collected += data
            data, sw = iso7816.split_response(transmit(iso7816.command(
                0x00, iso7816.INS_GET_RESPONSE, 0, 0, le=(sw & 0xFF) or 256)))
        else:
            break
    if sw != iso7816.SW_OK:
        raise CardStatusError(name, sw, iso7816.meaning(sw))
    return collected + data


def _select_application(transmit: Transmit) -> tuple[bytes, list[tlv.Tlv]]:
    ppse = tlv.decode(_exchange(transmit, _select(PPSE_NAME), "SELECT PPSE"))
    candidates = []
    for node in tlv.walk(ppse):
        if node.tag == "61":
            entry = tlv.primitives([node])
            if "4F" in entry:
                priority = entry.get("87", b"\x0f")[:1] or b"\x0f"
                candidates.append((priority[0] & 0x0F or 0x10, len(candidates), entry["4F"]))
    if not candidates:
        raise TapError("SELECT PPSE: no application (tag 61 with 4F) in the directory")
    last_error: CardStatusError | None = None
    for _, _, aid in sorted(candidates):
        try:
            return aid, tlv.decode(_exchange(transmit, _select(aid), f"SELECT {aid.hex().upper()}"))
        except CardStatusError as error:
            last_error = error
    assert last_error is not None
    raise last_error


def _select(name: bytes) -> bytes:
    """SELECT by DF name, first occurrence (ISO/IEC 7816-4 P1 = 04, P2 = 00)."""
    return iso7816.command(0x00, iso7816.INS_SELECT, 0x04, 0x00, name)


def _processing_options(nodes: list[tlv.Tlv]) -> tuple[bytes, bytes]:
    if len(nodes) == 1 and nodes[0].tag == "80":
        value = nodes[0].value
        aip, afl = value[:2], value[2:]
    else:
        found = tlv.primitives(nodes)
        aip, afl = found.get("82", b""), found.get("94", b"")
    if len(aip) != 2:
        raise TapError("GPO: tag 82 (AIP) missing or not 2 bytes")
    if not afl or len(afl) % 4:
        raise TapError("GPO: tag 94 (AFL) missing or not a multiple of 4 bytes")
    return aip, afl


def _afl_records(afl: bytes) -> list[tuple[int, int]]:
    records: list[tuple[int, int]] = []
    for offset in range(0, len(afl), 4):
        sfi, first, last = afl[offset] >> 3, afl[offset + 1], afl[offset + 2]
        if not (1 <= sfi <= 30 and 1 <= first <= last):
            raise TapError(f"tag 94 (AFL): entry {offset // 4} is invalid ({afl[offset:offset + 4].hex().upper()})")
        records.extend((sfi, number) for number in range(first, last + 1))
    if len(records) > RECORDS_MAX:
        raise TapError(f"tag 94 (AFL): lists {len(records)} records (at most {RECORDS_MAX})")
    return records


def _generate_ac_response(nodes: list[tlv.Tlv]) -> dict[str, bytes]:
    if len(nodes) == 1 and nodes[0].tag == "80":
        value = nodes[0].value
        if len(value) < 11:
            raise TapError("GENERATE AC: format 1 response shorter than 11 bytes")
        return {"9F27": value[:1], "9F36": value[1:3], "9F26": value[3:11], "9F10": value[11:]}
    return tlv.primitives(nodes)


class PcscReader:
    """A PC/SC reader: waits for a card, then exchanges APDUs with it through pyscard.

    Use as a context manager; ``transmit`` is the :data:`Transmit` for :func:`read_tap`.

    Parameters
    ----------
    reader_name : str | None
        The reader's PC/SC name or a prefix of it (e.g. ``"Virtual PCD"``); ``None``
        takes the first reader.
    card_wait_s : float
        How long to wait for a card to be presented.

    Raises
    ------
    ReaderError
        No matching reader, no card within ``card_wait_s``, or a transmission failure.
    """

    def __init__(self, reader_name: str | None = None, *, card_wait_s: float = CARD_WAIT_S):
        self._reader_name = reader_name
        self._card_wait_s = card_wait_s
        self._connection = None
        self._service = None

    def __enter__(self) -> "PcscReader":
        from smartcard.CardRequest import CardRequest
        from smartcard.Exceptions import CardConnectionException, CardRequestTimeoutException
        reader = self._reader()
        try:
            service = CardRequest(timeout=self._card_wait_s, readers=[reader]).waitforcard()
            service.connection.connect()
        except CardRequestTimeoutException:
            raise ReaderError(f"reader {reader}: no card presented within {self._card_wait_s} s") from None
        except CardConnectionException as error:
            raise ReaderError(f"reader {reader}: cannot connect to the card ({error})") from None
        # Keep the card service: it disconnects the card when it is garbage collected.
        self._service = service
        self._connection = service.connection
        return self

    def __exit__(self, *exc_info) -> None:
        connection, self._connection, self._service = self._connection, None, None
        if connection is not None:
            try:
                connection.disconnect()
            except Exception:  # noqa: BLE001 - the card may already be gone; nothing to undo
                pass

    def transmit(self, apdu: bytes) -> bytes:
        """Send one command APDU; return the response APDU (data, SW1, SW2)."""
        from smartcard.Exceptions import CardConnectionException
        assert self._connection is not None, "use PcscReader as a context manager"
        try:
            data, sw1, sw2 = self._connection.transmit(list(apdu))
        except CardConnectionException as error:
            raise ReaderError(f"card transmission failed ({error})") from None
        return bytes(data) + bytes([sw1, sw2])

    def _reader(self):
        readers = pcsc_readers()
        for reader in readers:
            if self._reader_name is None or str(reader).startswith(self._reader_name):
                return reader
        raise ReaderError(f"no PC/SC reader matching {self._reader_name!r} (have: "
                          f"{', '.join(map(str, readers)) or 'none'})")


def pcsc_readers() -> list:
    """The PC/SC readers pcscd knows (pyscard reader objects; ``str()`` is the name).

    Raises
    ------
    ReaderError
        pyscard is not installed or pcscd is not running.
    """
    try:
        from smartcard.pcsc.PCSCExceptions import BaseSCardException
        from smartcard.System import readers
    except ImportError:
        raise ReaderError("pyscard is not installed (pip install 'onecard[reader]')") from None
    try:
        return list(readers())
    except BaseSCardException as error:
        raise ReaderError(f"cannot list PC/SC readers; is pcscd running? ({error})") from None
