"""Shared helpers of the ISO 20022 tests: sample files and message variants."""

from __future__ import annotations

import re
from pathlib import Path

SAMPLES = Path(__file__).resolve().parents[3] / "shared" / "data" / "iso20022" / "samples"

APP_HEADER = (
    '<AppHdr xmlns="urn:iso:std:iso:20022:tech:xsd:head.001.001.02">'
    "<Fr><FIId><FinInstnId><ClrSysMmbId><MmbId>ICBC</MmbId></ClrSysMmbId></FinInstnId></FIId></Fr>"
    "<To><FIId><FinInstnId><ClrSysMmbId><MmbId>ONECARD</MmbId></ClrSysMmbId></FinInstnId></FIId></To>"
    "<BizMsgIdr>BIZ-1</BizMsgIdr><MsgDefIdr>pacs.002.001.10</MsgDefIdr>"
    "<CreDt>2026-11-30T19:00:00Z</CreDt></AppHdr>"
)


def sample(name: str) -> bytes:
    """The bytes of one file of ``shared/data/iso20022/samples``."""
    return (SAMPLES / name).read_bytes()


def without_declaration(xml: bytes) -> str:
    return re.sub(r"^<\?xml[^>]*\?>\s*", "", xml.decode())


def prefixed(xml: bytes, prefix: str = "Doc") -> bytes:
    """The same Document with every element in ``prefix:`` instead of the default namespace."""
    text = without_declaration(xml)
    text = re.sub(r"<(/?)([A-Za-z]\w*)", rf"<\1{prefix}:\2", text)
    return text.replace('xmlns="urn:iso', f'xmlns:{prefix}="urn:iso', 1).encode()


def beside_app_header(xml: bytes) -> bytes:
    return ('<BizMsg xmlns="urn:example:bizmsg">' + APP_HEADER + without_declaration(xml)
            + "</BizMsg>").encode()


def in_unknown_envelope(xml: bytes) -> bytes:
    return ('<?xml version="1.0" encoding="UTF-8"?><Envelope xmlns="urn:bank:envelope" '
            'xmlns:x="urn:bank:extra"><Routing><Queue>Q1</Queue><x:Hint a="1"/></Routing>'
            "<Payload>" + without_declaration(xml) + "</Payload><Trailer/></Envelope>").encode()


def prefix_declared_on_envelope(xml: bytes) -> bytes:
    text = prefixed(xml).decode()
    match = re.search(r' xmlns:Doc="([^"]+)"', text)
    text = text.replace(match.group(0), "", 1)
    return (f'<Wrapper xmlns:Doc="{match.group(1)}">' + text + "</Wrapper>").encode()
