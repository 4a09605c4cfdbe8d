"""Errors of the adapters package (bank messages, file formats, signed HTTP)."""


class AdapterError(Exception):
    """Root of every error the adapters package raises."""


class SignatureError(AdapterError, PermissionError):
    """A signed request was refused: unknown or revoked key, bad signature, stale timestamp,
    or a replayed nonce. The message says which, never the key."""


class MessageError(AdapterError, ValueError):
    """An ISO 20022 message was refused; the message names the element (and line) and why.

    ``element`` is the element's path or name, ``line`` its 1-based source line when known.
    """

    def __init__(self, reason: str, *, element: str = "", line: int | None = None):
        self.reason = reason
        self.element = element
        self.line = line
        where = element + (f" (line {line})" if line else "")
        super().__init__(f"{where}: {reason}" if where else reason)


class MalformedMessageError(MessageError):
    """Not well-formed XML (including an undeclared namespace prefix), or no ISO 20022
    ``Document`` where one was expected."""


class UnsupportedMessageError(MessageError):
    """A message family or version this engine does not accept (e.g. pacs.002.001.03)."""


class SchemaValidationError(MessageError):
    """A message does not validate against its XSD (ISO 20022 message definition)."""


class AmountError(MessageError):
    """An amount is out of range, has more decimals than its currency's minor unit, or
    names a currency without a known minor unit."""


class TotalsMismatchError(MessageError):
    """A group's ``NbOfTxs`` or ``CtrlSum`` differs from its transactions.

    ``reason_code`` is the ISO 20022 status reason to report (``AM18`` wrong number of
    transactions, ``AM10`` wrong control sum); ``message_id`` the group's MsgId.
    """

    def __init__(self, reason: str, *, element: str, line: int | None, reason_code: str,
                 message_id: str):
        super().__init__(reason, element=element, line=line)
        self.reason_code = reason_code
        self.message_id = message_id


class IdentifierError(AdapterError, ValueError):
    """A message id or EndToEndId is malformed, too long, or fails its check character."""


class DeliveryError(AdapterError, ConnectionError):
    """A message could not be delivered after every allowed attempt (transient: retry later)."""


class DeliveryRefusedError(AdapterError, PermissionError):
    """The receiver refused a message for good (HTTP 4xx other than 408/429): do not retry."""


class FileDropConflictError(AdapterError, FileExistsError):
    """A file of the same name but different content was already dropped."""


class FileDropNameError(AdapterError, ValueError):
    """A file drop name is not a plain file name (``[A-Za-z0-9._-]``, no leading dot)."""


class MessageIdConflictError(MessageError):
    """A MsgId already used for a message with different content (same id, other body:
    a modified request, never a second effect)."""


class ConfigurationError(AdapterError, ValueError):
    """An adapter's settings are out of range (e.g. a fault rate above 1)."""
