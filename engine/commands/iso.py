"""``onecard iso validate FILE``: check an ISO 20022 message against its XSD."""

from __future__ import annotations

import argparse
from pathlib import Path

from adapters.iso20022 import schema
from adapters.iso20022.document import read_document
from engine.errors import UsageError
from engine.output import add_command, emit


def register(subparsers) -> None:
    group = subparsers.add_parser("iso", help="ISO 20022 messages: validate")
    commands = group.add_subparsers(dest="iso_command", metavar="ACTION", required=True)
    parser = add_command(commands, "validate",
                         "validate an ISO 20022 message (bare or in an envelope) against its XSD")
    parser.add_argument("file", type=Path, help="the message file")
    parser.set_defaults(handler=_validate)


def _validate(args: argparse.Namespace) -> int:
    try:
        data = args.file.read_bytes()
    except OSError as error:
        raise UsageError(f"{args.file}: {error.strerror}") from None
    document = read_document(data, tuple(sorted(schema.MESSAGE_DEFINITIONS)))
    emit(args, f"{args.file}: valid {document.message_definition}",
         {"file": str(args.file), "message_definition": document.message_definition,
          "valid": True})
    return 0
