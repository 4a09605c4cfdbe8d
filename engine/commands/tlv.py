"""``onecard tlv decode HEX``: show BER-TLV card data as a tree with EMV tag names."""

from __future__ import annotations

import argparse

from engine.errors import UsageError
from engine.output import add_command, emit
from terminal import tlv


def register(subparsers) -> None:
    group = subparsers.add_parser("tlv", help="EMV BER-TLV data: decode")
    commands = group.add_subparsers(dest="tlv_command", metavar="ACTION", required=True)
    parser = add_command(commands, "decode", "decode BER-TLV hex into a tree with EMV tag names")
    parser.add_argument("hex", metavar="HEX", help="the data in hex (spaces and case ignored)")
    parser.set_defaults(handler=_decode)


def _decode(args: argparse.Namespace) -> int:
    text = "".join(args.hex.split())
    try:
        data = bytes.fromhex(text)
    except ValueError:
        raise UsageError("HEX: not an even number of hex digits") from None
    nodes = tlv.decode(data)
    emit(args, tlv.format_tree(nodes), [_as_json(node) for node in nodes])
    return 0


def _as_json(node: tlv.Tlv) -> dict:
    item = {"tag": node.tag, "name": tlv.tag_name(node.tag), "length": len(node.value)}
    if node.constructed:
        item["children"] = [_as_json(child) for child in node.children]
    else:
        item["value"] = node.value.hex().upper()
    return item
