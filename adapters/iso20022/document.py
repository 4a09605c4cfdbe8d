"""Reading a received ISO 20022 message: find its ``Document``, check its version,
validate it, and read fields by local path whatever the namespace prefix.

The same message parses identically with a default namespace (``<Document xmlns=...>``),
with a prefix (``<Doc:Document xmlns:Doc=...>``), next to a Business Application Header
(head.001.001.02 ``AppHdr``) and inside unknown envelope elements (FedNow's
``FedNowIncoming``, a bank's SOAP-like wrapper); lxml resolves prefixes to namespaces, and
paths here name local elements in the Document's own namespace. An undeclared prefix is
not well-formed XML and is refused (:class:`MalformedMessageError`); a known family in a
version we do not speak (pacs.002.001.03) is refused with :class:`UnsupportedMessageError`.
"""

from __future__ import annotations

import copy
import datetime as dt
from dataclasses import dataclass

from lxml import etree

from adapters.errors import MalformedMessageError, MessageError, UnsupportedMessageError
from adapters.iso20022 import money, schema

HEAD_DEFINITION = "head.001.001.02"


@dataclass(frozen=True)
class BusinessHeader:
    """The fields of an ``AppHdr`` (head.001.001.02) the engine uses."""

    business_message_id: str
    message_definition: str


class Document:
    """A validated ``Document`` of one message definition, with typed field readers.

    Attributes
    ----------
    message_definition : str
        e.g. ``"pacs.002.001.10"``.
    root : lxml.etree._Element
        The ``Document`` element.
    header : BusinessHeader | None
        The ``AppHdr`` beside the Document, when there is one.
    """

    def __init__(self, message_definition: str, root: etree._Element,
                 header: BusinessHeader | None = None):
        self.message_definition = message_definition
        self.root = root
        self.header = header
        self._namespace = schema.namespace(message_definition)
        self._paths: dict[str, tuple[str, ...]] = {}

    def __repr__(self) -> str:
        return f"Document({self.message_definition!r})"

    def path(self, local_path: str) -> str:
        """``"GrpHdr/MsgId"`` in Clark notation for this Document's namespace."""
        return "/".join(self._tags(local_path))

    def find(self, element: etree._Element, local_path: str) -> etree._Element | None:
        """The first element at ``local_path`` under ``element``, or ``None``."""
        # Walking children with iterchildren (C level) is several times faster than
        # ElementPath's find, and every field of a large batch goes through here.
        for tag in self._tags(local_path):
            element = next(element.iterchildren(tag), None)
            if element is None:
                return None
        return element

    def findall(self, element: etree._Element, local_path: str) -> list[etree._Element]:
        """Every element at ``local_path`` under ``element``."""
        return element.findall(self.path(local_path))

    def _tags(self, local_path: str) -> tuple[str, ...]:
        found = self._paths.get(local_path)
        if found is None:
            found = tuple(f"{{{self._namespace}}}{part}" for part in local_path.split("/"))
            self._paths[local_path] = found
        return found

    def text(self, element: etree._Element, local_path: str, *, required: bool = True) -> str:
        """The stripped text at ``local_path`` ("" when absent and not ``required``).

        Raises
        ------
        MessageError
            ``required`` and the element is absent or empty (names the element).
        """
        found = self.find(element, local_path)
        value = (found.text or "").strip() if found is not None else ""
        if required and not value:
            raise MessageError("required element is missing or empty",
                               element=local_path, line=element.sourceline)
        return value

    def amount(self, element: etree._Element, local_path: str) -> tuple[int, str]:
        """``(amount_minor, currency)`` of an amount element with a ``Ccy`` attribute.

        Raises
        ------
        AmountError
            More decimals than the currency allows, unknown currency (names element, line).
        MessageError
            The element is absent.
        """
        found = self.find(element, local_path)
        if found is None:
            raise MessageError("required amount is missing", element=local_path,
                               line=element.sourceline)
        currency = found.get("Ccy", "")
        name = etree.QName(found).localname
        return money.parse_amount(found.text or "", currency, element=name,
                                  line=found.sourceline), currency

    def date(self, element: etree._Element, local_path: str, *,
             required: bool = True) -> dt.date | None:
        """An ``ISODate`` (``YYYY-MM-DD``) at ``local_path``, or ``None`` when absent."""
        value = self.text(element, local_path, required=required)
        if not value:
            return None
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            raise MessageError(f"{value!r} is not an ISO date", element=local_path,
                               line=element.sourceline) from None

    def datetime(self, element: etree._Element, local_path: str) -> dt.datetime:
        """An ``ISODateTime`` at ``local_path`` as an aware UTC datetime (a value without
        offset is taken as UTC)."""
        value = self.text(element, local_path)
        try:
            parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=dt.timezone.utc)
            return parsed.astimezone(dt.timezone.utc)
        except (ValueError, OverflowError):
            # Valid xs:dateTime values Python cannot hold (24:00:00, year 0001 with a
            # positive offset, more than 6 fraction digits) are refused, not guessed.
            raise MessageError(f"{value!r} is not a supported ISO date-time",
                               element=local_path, line=element.sourceline) from None


def read_document(data: bytes, accepted: tuple[str, ...]) -> Document:
    """Parse a received message whose Document is one of ``accepted`` definitions.

    Parameters
    ----------
    data : bytes
        The message: a bare ``Document``, or an envelope holding exactly one ISO 20022
        ``Document`` (and optionally an ``AppHdr``).
    accepted : tuple of str
        Message definitions the caller handles, e.g. ``("pacs.004.001.09", "pacs.004.001.10")``.

    Raises
    ------
    MalformedMessageError
        Not well-formed, no ISO 20022 Document, or more than one.
    UnsupportedMessageError
        A Document of another definition or another version.
    SchemaValidationError
        The Document (or the AppHdr) is not valid against its XSD.
    MessageError
        The AppHdr's ``MsgDefIdr`` names another message than the Document.
    """
    assert accepted and all(name in schema.MESSAGE_DEFINITIONS for name in accepted)
    tree = schema.parse_plain(data)
    root = tree.getroot()
    documents = [element for element in root.iter("{*}Document")
                 if (etree.QName(element).namespace or "").startswith(schema.NAMESPACE_PREFIX)]
    if not documents:
        raise MalformedMessageError("no ISO 20022 Document element "
                                    f"(namespace {schema.NAMESPACE_PREFIX}...)",
                                    element=etree.QName(root).localname, line=root.sourceline)
    if len(documents) > 1:
        raise MalformedMessageError("more than one ISO 20022 Document", element="Document",
                                    line=documents[1].sourceline)
    element = documents[0]
    definition = etree.QName(element).namespace[len(schema.NAMESPACE_PREFIX):]
    _check_definition(definition, accepted, element.sourceline)
    if element is not root:
        # A deep copy is a standalone document that keeps the namespaces declared on the
        # envelope, so the XSD sees exactly the Document.
        element = copy.deepcopy(element)
    schema.validate_element(element, definition)
    header = _business_header(root)
    if header is not None and header.message_definition != definition:
        raise MessageError(f"AppHdr says {header.message_definition} but the Document is "
                           f"{definition}", element="AppHdr/MsgDefIdr")
    return Document(definition, element, header)


def _check_definition(definition: str, accepted: tuple[str, ...], line: int | None) -> None:
    if definition in accepted:
        return
    family = definition.rsplit(".", 2)[0]
    same_family = [name for name in accepted if name.rsplit(".", 2)[0] == family]
    if same_family:
        raise UnsupportedMessageError(
            f"version {definition} is not supported (supported: {', '.join(same_family)})",
            element="Document", line=line)
    raise UnsupportedMessageError(
        f"expected {' or '.join(accepted)}, got {definition}", element="Document", line=line)


def _business_header(root: etree._Element) -> BusinessHeader | None:
    tag = f"{{{schema.namespace(HEAD_DEFINITION)}}}AppHdr"
    header = root if root.tag == tag else next(root.iter(tag), None)
    if header is None:
        return None
    if header is not root:
        header = copy.deepcopy(header)
    schema.validate_element(header, HEAD_DEFINITION)
    reader = Document(HEAD_DEFINITION, header)
    return BusinessHeader(reader.text(header, "BizMsgIdr"), reader.text(header, "MsgDefIdr"))
