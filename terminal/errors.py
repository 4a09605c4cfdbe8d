"""Errors of the terminal package (card data, readers, gates).

One root, :class:`TerminalError`; every subclass also inherits the built-in that matches
its kind, so callers that only know Python's built-ins still catch the right thing.
"""


class TerminalError(Exception):
    """Root of every error the terminal package raises."""


class TlvError(TerminalError, ValueError):
    """BER-TLV bytes are malformed; the message names the byte offset and the problem."""


class TapError(TerminalError, ValueError):
    """A card's responses lack a mandatory data element or carry an invalid one; the message
    names the tag and the reason."""


class CardStatusError(TerminalError, RuntimeError):
    """A card answered a command with an error status word (ISO/IEC 7816-4).

    Attributes
    ----------
    sw : int
        The two status bytes, e.g. ``0x6A82``.
    """

    def __init__(self, command: str, sw: int, meaning: str):
        super().__init__(f"{command}: card answered {sw:04X} ({meaning})")
        self.sw = sw


class ReaderError(TerminalError, OSError):
    """The PC/SC stack or the reader failed: no reader, no card, card removed mid-read."""


class GateError(TerminalError, ConnectionError):
    """The engine refused a gate's request (4xx) or answered something the gate cannot read."""


class GateUnreachableError(GateError):
    """The engine could not be reached or failed (5xx); the gate keeps working offline."""
