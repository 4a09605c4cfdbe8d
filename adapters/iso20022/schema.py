"""Loading, caching and applying the ISO 20022 XSDs.

The schemas are read from ``iso20022/xsd/`` of the reference data folder
(:func:`engine.reference_data.reference_data_dir`: ``ONECARD_REFERENCE_DATA``, else
``<repo>/../shared/data``; the reference data is never copied into the repository);
``ONECARD_ISO20022_XSD`` names another folder for the schemas alone. Each schema is compiled once per process with ``lxml.etree.XMLSchema``
(libxml2, about 3 ms per XSD) and cached: measured against ``xmlschema`` (200 ms to load,
and pure-Python validation one to two orders of magnitude slower), libxml2 is the one that
scales to the 1,000,000-transaction pacs.008 runs of disbursement.

Two ways to validate, both naming the element, its line and the reason:
:func:`validate_element` for a tree already in memory, :func:`parse_validated` for bytes
(every message we build as text, and every message we receive).
"""

from __future__ import annotations

import functools
import os
import re
from pathlib import Path

from lxml import etree

from adapters.errors import MalformedMessageError, SchemaValidationError, UnsupportedMessageError

NAMESPACE_PREFIX = "urn:iso:std:iso:20022:tech:xsd:"
XSD_DIRECTORY_ENV = "ONECARD_ISO20022_XSD"

# The message definitions this engine builds or accepts (design.md, "Standards we follow").
MESSAGE_DEFINITIONS = frozenset({
    "head.001.001.02",
    "pain.001.001.09",
    "pain.002.001.10",
    "pacs.002.001.10",
    "pacs.004.001.09",
    "pacs.004.001.10",
    "pacs.008.001.08",
    "camt.053.001.08",
    "camt.054.001.08",
})

# Inbound messages larger than this are refused before parsing; a pacs.008 of
# ``pacs008.TRANSACTIONS_PER_MESSAGE_MAX`` transactions is about 3 MB.
MESSAGE_BYTES_MAX = 64 * 1024 * 1024

_NAMESPACE_IN_MESSAGE = re.compile(r"\{(?:urn|https?):[^}]*\}")
_ELEMENT_IN_MESSAGE = re.compile(r"Element '([^']+)'")


def xsd_directory() -> Path:
    """The folder holding ``<message definition>.xsd`` files (see the module docstring)."""
    configured = os.environ.get(XSD_DIRECTORY_ENV, "").strip()
    if configured:
        return Path(configured)
    # Imported here: the engine's resolver is only needed when the schemas are first loaded.
    from engine.reference_data import reference_data_dir

    return reference_data_dir() / "iso20022" / "xsd"


def namespace(message_definition: str) -> str:
    """The XML namespace of a message definition.

    >>> namespace("pacs.002.001.10")
    'urn:iso:std:iso:20022:tech:xsd:pacs.002.001.10'
    """
    return NAMESPACE_PREFIX + message_definition


@functools.cache
def load_schema(message_definition: str) -> etree.XMLSchema:
    """The compiled XSD of ``message_definition`` (e.g. ``"pacs.008.001.08"``), cached.

    Raises
    ------
    UnsupportedMessageError
        The definition is not one of :data:`MESSAGE_DEFINITIONS`.
    """
    if message_definition not in MESSAGE_DEFINITIONS:
        raise UnsupportedMessageError(
            f"message definition {message_definition!r} is not supported "
            f"(supported: {', '.join(sorted(MESSAGE_DEFINITIONS))})")
    path = xsd_directory() / f"{message_definition}.xsd"
    return etree.XMLSchema(etree.parse(str(path)))


def secure_parser(schema: etree.XMLSchema | None = None) -> etree.XMLParser:
    """An XML parser that never fetches anything, never expands entities, keeps line
    numbers, and (with ``schema``) validates while it parses."""
    return etree.XMLParser(schema=schema, resolve_entities=False, no_network=True,
                           load_dtd=False, remove_comments=True, remove_pis=True,
                           huge_tree=False)


def validate_element(element: etree._Element, message_definition: str) -> None:
    """Validate a ``Document`` element against the XSD of ``message_definition``.

    Raises
    ------
    SchemaValidationError
        Naming the first invalid element, its line and the XSD's reason.
    """
    schema = load_schema(message_definition)
    if not schema.validate(element):
        raise schema_error(schema.error_log, message_definition)


def parse_validated(data: bytes, message_definition: str) -> etree._Element:
    """Parse ``data`` (one whole ``Document`` of ``message_definition``), validate it and
    return the root element.

    Parsing first and validating the tree second costs the same as validating inside
    the parser (measured) but keeps the line numbers that streaming validation loses.

    Raises
    ------
    MalformedMessageError
        Not well-formed XML, or larger than :data:`MESSAGE_BYTES_MAX`.
    SchemaValidationError
        Well-formed but invalid; names the element, line and reason.
    """
    root = parse_plain(data).getroot()
    validate_element(root, message_definition)
    return root


def validate_file(path: str | os.PathLike, message_definition: str) -> None:
    """Validate the whole ``Document`` in the file at ``path`` against the XSD of
    ``message_definition``, streaming: each element is dropped once it ended, so memory
    stays small however many transactions the file holds (a report of a million lines).

    Raises
    ------
    MalformedMessageError
        Not well-formed XML.
    SchemaValidationError
        Invalid; names the element and the reason (streaming validation reports no line).
    """
    schema = load_schema(message_definition)
    try:
        # Not resolve_entities=False: with it this lxml lets a truncated file through (measured).
        # The files checked here are the engine's own output, and no DTD is loaded.
        for _, element in etree.iterparse(os.fspath(path), events=("end",), schema=schema, no_network=True,
                                          load_dtd=False, remove_comments=True, remove_pis=True):
            element.clear(keep_tail=True)
            while element.getprevious() is not None:
                del element.getparent()[0]
    except etree.XMLSyntaxError as error:
        # The log can hold older entries: the one that stopped the parse carries its message.
        entries = [entry for entry in error.error_log if entry.message == error.msg][-1:]
        if entries and entries[0].domain_name == "SCHEMASV":
            raise schema_error(entries, message_definition) from None
        raise malformed(error) from None


def parse_plain(data: bytes) -> etree._ElementTree:
    """Parse ``data`` without a schema (to find the ``Document`` inside an envelope).

    Raises
    ------
    MalformedMessageError
        Not well-formed (e.g. an undeclared namespace prefix), a DTD, or too large.
    """
    check_size(data)
    try:
        tree = etree.ElementTree(etree.fromstring(data, secure_parser()))
    except (etree.XMLSyntaxError, ValueError) as error:
        raise malformed(error) from None
    if tree.docinfo.doctype:
        raise MalformedMessageError("a DOCTYPE is not allowed in ISO 20022 messages",
                                    element="<!DOCTYPE>", line=1)
    return tree


def malformed(error: Exception) -> MalformedMessageError:
    """A :class:`MalformedMessageError` from an lxml syntax error, keeping its line."""
    line = getattr(error, "lineno", None) or None
    reason = str(error.msg if isinstance(error, etree.XMLSyntaxError) else error)
    reason = re.sub(r", line \d+, column \d+$", "", reason)
    return MalformedMessageError(f"not well-formed XML: {reason}", element="document", line=line)


def check_size(data: bytes) -> None:
    """Refuse non-bytes or more than :data:`MESSAGE_BYTES_MAX` bytes (MalformedMessageError)."""
    if not isinstance(data, (bytes, bytearray)):
        raise MalformedMessageError("a message must be bytes", element="document")
    if len(data) > MESSAGE_BYTES_MAX:
        raise MalformedMessageError(
            f"{len(data)} bytes is over the limit of {MESSAGE_BYTES_MAX}", element="document")


def schema_error(entries, message_definition: str) -> SchemaValidationError:
    """A :class:`SchemaValidationError` from libxml2 log ``entries`` (the last one is this
    call's), naming the element, its line and the reason without namespaces."""
    # libxml2 keeps a log per schema across calls; this call's error is the last entry.
    entry = entries[-1] if len(entries) else None
    if entry is None:
        return SchemaValidationError(f"invalid {message_definition}", element="Document")
    text = _NAMESPACE_IN_MESSAGE.sub("", entry.message)
    match = _ELEMENT_IN_MESSAGE.search(text)
    element = match.group(1) if match else "Document"
    reason = text[match.end():].lstrip(": ") if match else text
    return SchemaValidationError(f"{reason} ({message_definition})", element=element,
                                 line=entry.line or None)
