"""Printing command results: one human line or table, or one JSON document with ``--json``."""

from __future__ import annotations

import argparse
import sys
from typing import Any

import msgspec

_json_encoder = msgspec.json.Encoder()


def add_command(subparsers: Any, name: str, help_text: str) -> argparse.ArgumentParser:
    """Add a leaf command ``name`` with the common ``--json`` flag; return its parser."""
    parser = subparsers.add_parser(name, help=help_text, description=help_text)
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")
    return parser


def emit(args: argparse.Namespace, text: str, data: Any) -> None:
    """Print ``data`` as JSON when ``args.json`` is set, else ``text`` (if not empty).

    ``data`` is anything msgspec encodes (dicts, lists, Structs, ints; never floats for money).
    """
    if getattr(args, "json", False):
        sys.stdout.write(_json_encoder.encode(data).decode() + "\n")
    elif text:
        sys.stdout.write(text.rstrip("\n") + "\n")
