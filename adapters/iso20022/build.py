"""Building ISO 20022 messages as lxml trees, validated before they leave.

Small messages (pacs.002, pacs.004, pain.002, camt.053) are built element by element
here; the bulk pacs.008 path renders text (see :mod:`adapters.iso20022.pacs008`). Either
way the bytes returned have passed the message's XSD.
"""

from __future__ import annotations

import datetime as dt

from lxml import etree

from adapters.iso20022 import money, reasons, schema


XML_DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>\n'


class Builder:
    """Creates elements in the namespace of one message definition (default namespace)."""

    def __init__(self, message_definition: str):
        self.message_definition = message_definition
        self.namespace = schema.namespace(message_definition)

    def document(self) -> etree._Element:
        """A new ``<Document xmlns="urn:iso:std:iso:20022:tech:xsd:...">``."""
        return etree.Element(self.tag("Document"), nsmap={None: self.namespace})

    def tag(self, name: str) -> str:
        """``name`` in Clark notation."""
        return f"{{{self.namespace}}}{name}"

    def add(self, parent: etree._Element, path: str, text: str | None = None,
            **attributes: str) -> etree._Element:
        """Append the elements of ``path`` (``"A/B/C"``) under ``parent``, set the text of
        the last one, and return it."""
        element = parent
        for name in path.split("/"):
            element = etree.SubElement(element, self.tag(name))
        if text is not None:
            element.text = text
        for key, value in attributes.items():
            element.set(key, value)
        return element

    def amount(self, parent: etree._Element, name: str, amount_minor: int,
               currency: str) -> etree._Element:
        """``<name Ccy="CNY">123.45</name>`` from minor units (exact)."""
        return self.add(parent, name, money.format_amount(amount_minor, currency), Ccy=currency)

    def reason(self, parent: etree._Element, code: str) -> etree._Element:
        """``<Rsn><Cd>AC04</Cd></Rsn>``, or ``<Prtry>`` for a code outside the ISO table."""
        kind = "Cd" if reasons.is_iso_reason(code) else "Prtry"
        return self.add(parent, f"Rsn/{kind}", code)

    def finish(self, document: etree._Element) -> bytes:
        """Validate ``document`` and serialise it (UTF-8 with an XML declaration).

        Raises
        ------
        SchemaValidationError
            The message would not be valid (names the element and the reason).
        """
        schema.validate_element(document, self.message_definition)
        return XML_DECLARATION + etree.tostring(document, encoding="UTF-8")


def iso_datetime(moment: dt.datetime) -> str:
    """An ``ISODateTime`` in UTC with whole seconds.

    >>> iso_datetime(dt.datetime(2026, 11, 30, 19, 20, 6, 123, tzinfo=dt.timezone.utc))
    '2026-11-30T19:20:06Z'
    """
    assert moment.tzinfo is not None, "message times must be timezone-aware"
    return moment.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
