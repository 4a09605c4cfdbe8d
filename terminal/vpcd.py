"""Connect a card emulator to pcsc-lite's virtual reader (vsmartcard ``vpcd``).

The ``libifdvpcd`` driver of Debian's ``vsmartcard-vpcd`` makes pcscd listen on
``127.0.0.1:35963`` (reader "Virtual PCD 00 00"); a virtual card connects there as a TCP
client and pcscd sees a card inserted. Every message in both directions is a 2-byte
big-endian length followed by that many bytes. From the reader, a 1-byte message is a
control code (``00`` power off, ``01`` power on, ``02`` reset, ``04`` send the ATR);
anything longer is a command APDU, answered with the response APDU (data and SW1 SW2).
Closing the connection removes the card.

Two facts of this stack shape the code:

- Linux delays the ACK of a small read by up to 40 ms unless ``TCP_QUICKACK`` is set
  again after every read; without it each APDU takes ~44 ms instead of ~0.1 ms.
- pcscd polls the reader; a card that reconnects before pcscd noticed it leave (about
  0.5 s) leaves the reader stuck, so :class:`VpcdLink` waits ``RECONNECT_DELAY_S`` after
  the previous disconnect before connecting again.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Protocol

from terminal.errors import ReaderError
from terminal.reader import pcsc_readers

VPCD_HOST = "127.0.0.1"
VPCD_PORT = 35963
RECONNECT_DELAY_S = 0.7
CONNECT_TIMEOUT_S = 2.0
MESSAGE_BYTES_MAX = 0xFFFF

CONTROL_POWER_OFF = 0x00
CONTROL_POWER_ON = 0x01
CONTROL_RESET = 0x02
CONTROL_ATR = 0x04

READER_PREFIX = "Virtual PCD 00 00"
VPCD_DRIVER = Path("/usr/lib/pcsc/drivers/serial/libifdvpcd.so")
PCSCD_START_WAIT_S = 10.0

assert RECONNECT_DELAY_S >= 0.5, "pcscd needs about 0.5 s to notice a card leaving"


class VirtualCard(Protocol):
    """What the link needs from an emulated card (see :class:`terminal.card.Card`)."""

    atr: bytes

    def reset(self) -> None: ...

    def transmit(self, apdu: bytes) -> bytes: ...


_last_disconnect_s = 0.0
_disconnect_lock = threading.Lock()


def virtual_reader_name() -> str | None:
    """The PC/SC name of the vpcd reader on port 35963, or ``None`` (no pcscd, no pyscard)."""
    try:
        names = [str(reader) for reader in pcsc_readers()]
    except ReaderError:
        return None
    return next((name for name in names if name.startswith(READER_PREFIX)), None)


def start_pcscd() -> subprocess.Popen | None:
    """Start ``pcscd --foreground`` unless its virtual reader is already there; return the
    process started (the caller stops it), or ``None`` when one was already running.

    pcscd runs as root without USB or systemd this way (as in CI and containers).

    Raises
    ------
    ReaderError
        pcscd or the vpcd driver is not installed, or the reader did not appear within
        ``PCSCD_START_WAIT_S``.
    """
    if virtual_reader_name() is not None:
        return None
    pcscd = shutil.which("pcscd") or shutil.which("pcscd", path="/usr/sbin:/sbin")
    if pcscd is None or not VPCD_DRIVER.exists():
        raise ReaderError("pcscd or vsmartcard-vpcd is not installed "
                          "(apt-get install pcscd vsmartcard-vpcd)")
    process = subprocess.Popen([pcscd, "--foreground"], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + PCSCD_START_WAIT_S
    while time.monotonic() < deadline:
        if virtual_reader_name() is not None:
            # Ours exited at once when another pcscd (another test run) already serves
            # the reader: use that one and stop nothing.
            return process if process.poll() is None else None
        time.sleep(0.1)
    process.terminate()
    process.wait()
    raise ReaderError(f"pcscd did not show the reader {READER_PREFIX!r} within {PCSCD_START_WAIT_S} s")


def wait_until_card_gone() -> None:
    """Sleep until pcscd has noticed the last card of this process leave the virtual reader
    (``RECONNECT_DELAY_S`` after its link closed)."""
    with _disconnect_lock:
        wait_s = _last_disconnect_s + RECONNECT_DELAY_S - time.monotonic()
    if wait_s > 0:
        time.sleep(wait_s)


class VpcdLink:
    """A context manager that inserts ``card`` into the virtual reader while it is open.

    ``apdus_served`` counts the command APDUs the card answered through this link.
    """

    def __init__(self, card: VirtualCard, host: str = VPCD_HOST, port: int = VPCD_PORT,
                 *, quickack: bool = True):
        self._card = card
        self._quickack = quickack  # False only to measure what it saves (benchmarks)
        self._address = (host, port)
        self._socket: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self.apdus_served = 0

    @property
    def connected(self) -> bool:
        return self._socket is not None

    def __enter__(self) -> "VpcdLink":
        self.connect()
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def connect(self) -> None:
        """Insert the card: connect to vpcd and serve it in a background thread.

        Raises
        ------
        ReaderError
            Nothing listens at the vpcd address (pcscd with vsmartcard-vpcd not running).
        """
        assert self._socket is None, "already connected"
        wait_until_card_gone()
        try:
            sock = socket.create_connection(self._address, timeout=CONNECT_TIMEOUT_S)
        except OSError as error:
            raise ReaderError(
                f"vpcd at {self._address[0]}:{self._address[1]}: cannot connect ({error.strerror or error}); "
                "is pcscd running with vsmartcard-vpcd?"
            ) from None
        sock.settimeout(None)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._socket = sock
        self._thread = threading.Thread(target=self._serve, name="vpcd-card", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Remove the card: close the connection and wait for the serving thread."""
        global _last_disconnect_s
        sock, self._socket = self._socket, None
        if sock is None:
            return
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        sock.close()
        if self._thread is not None:
            self._thread.join()
        with _disconnect_lock:
            _last_disconnect_s = time.monotonic()

    def _serve(self) -> None:
        sock = self._socket
        assert sock is not None
        try:
            while True:
                message = _receive(sock, self._quickack)
                if message is None:
                    return
                reply = self._handle(message)
                if reply is not None:
                    sock.sendall(len(reply).to_bytes(2, "big") + reply)
        except OSError:
            return  # closed by close() or by pcscd: the card is gone either way

    def _handle(self, message: bytes) -> bytes | None:
        if len(message) == 1:
            if message[0] == CONTROL_ATR:
                return self._card.atr
            if message[0] in (CONTROL_POWER_ON, CONTROL_RESET, CONTROL_POWER_OFF):
                self._card.reset()
            return None
        self.apdus_served += 1
        return self._card.transmit(message)


def _receive(sock: socket.socket, quickack: bool) -> bytes | None:
    header = _receive_exactly(sock, 2, quickack)
    if header is None:
        return None
    return _receive_exactly(sock, int.from_bytes(header, "big"), quickack)


def _receive_exactly(sock: socket.socket, size: int, quickack: bool) -> bytes | None:
    chunks = bytearray()
    while len(chunks) < size:
        chunk = sock.recv(size - len(chunks))
        # Re-arm quick ACKs after every read: the kernel clears the flag, and delayed ACKs
        # would add ~40 ms to every APDU exchange.
        if quickack:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
        if not chunk:
            return None
        chunks += chunk
    return bytes(chunks)
