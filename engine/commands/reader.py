"""``onecard reader list|tap``: PC/SC readers, and reading a presented card into a tap."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import os
import uuid
from pathlib import Path

from engine.config import Config
from engine.errors import UsageError
from engine.output import add_command, emit
from terminal.errors import GateUnreachableError
from terminal.gate import TAP_TIMEOUT_S, GateClient, decided_offline
from terminal.reader import CARD_WAIT_S, CURRENCY_CNY, PcscReader, pcsc_readers, read_tap

GATE_KEY_ENV = "ONECARD_GATE_KEY"


def register(subparsers) -> None:
    group = subparsers.add_parser("reader", help="PC/SC card reader: list readers, read a tap")
    commands = group.add_subparsers(dest="reader_command", metavar="ACTION", required=True)
    add_command(commands, "list", "list the PC/SC readers pcscd knows").set_defaults(handler=_list)
    tap = add_command(commands, "tap", "read the presented card and send the tap to the engine")
    tap.add_argument("--engine", metavar="URL", help="engine base URL; without it the tap is only printed")
    tap.add_argument("--reader", help="reader name or prefix (default: the first reader)")
    tap.add_argument("--gate-id", default="G0000", help="this gate's id, also its signing key id")
    tap.add_argument("--station", default="S000", help="this gate's station")
    tap.add_argument("--direction", choices=("entry", "exit", "single"), default="single")
    tap.add_argument("--amount", type=int, default=0, help="amount to authorise, minor units (fen)")
    tap.add_argument("--currency", default=CURRENCY_CNY, help="ISO 4217 numeric currency code")
    tap.add_argument("--gate-key-file", type=Path,
                     help=f"file holding the gate's signing key in hex (default: ${GATE_KEY_ENV})")
    tap.add_argument("--card-wait-s", type=float, default=CARD_WAIT_S, help="seconds to wait for a card")
    tap.add_argument("--timeout-s", type=float, default=TAP_TIMEOUT_S, help="seconds to wait for the engine")
    tap.set_defaults(handler=_tap)


def _list(args: argparse.Namespace) -> int:
    names = [str(reader) for reader in pcsc_readers()]
    emit(args, "\n".join(names) or "no readers", {"readers": names})
    return 0


def _tap(args: argparse.Namespace) -> int:
    key = _gate_key(args) if args.engine else b""
    local_time = datetime.datetime.now().astimezone()
    tap_id = f"{args.gate_id}:{uuid.uuid4().hex}"
    with PcscReader(args.reader, card_wait_s=args.card_wait_s) as reader:
        tap = read_tap(reader.transmit, amount=args.amount, tap_id=tap_id, gate_id=args.gate_id,
                       station=args.station, direction=args.direction, local_time=local_time,
                       currency=args.currency)
    if not args.engine:
        emit(args, f"{tap.tap_id} read (ATC {tap.atc}, ARQC {tap.arqc}); not sent", {"tap": tap})
        return 0
    queue = Config.from_env().home / "gates" / f"{args.gate_id}.sqlite3"

    async def send():
        async with GateClient(args.engine, args.gate_id, key, queue, timeout_s=args.timeout_s) as gate:
            decision = await gate.submit(tap)
            if not decided_offline(decision):
                # The engine answers: upload what waited while it did not, and refresh the
                # deny list copy the next offline decision uses.
                with contextlib.suppress(GateUnreachableError):  # gone again: next time
                    await gate.sync()
            return decision, gate.queued, gate.deny_list_version

    decision, queued, deny_list_version = asyncio.run(send())
    text = f"{tap.tap_id} {decision.decision}" + (
        f" ({decision.reason})" if decision.reason != decision.decision else "")
    if queued:
        text += f"; {queued} tap(s) queued for upload"
    emit(args, text, {"tap": tap, "decision": decision, "queued": queued,
                      "deny_list_version": deny_list_version})
    return 0 if decision.decision == "approved" else 1


def _gate_key(args: argparse.Namespace) -> bytes:
    if args.gate_key_file is not None:
        try:
            text = args.gate_key_file.read_text()
        except OSError as error:
            raise UsageError(f"--gate-key-file: cannot read ({error.strerror})") from None
        source = "--gate-key-file"
    else:
        text, source = os.environ.get(GATE_KEY_ENV, ""), f"${GATE_KEY_ENV}"
    try:
        key = bytes.fromhex(text.strip())
    except ValueError:
        raise UsageError(f"{source}: the gate key must be hex") from None
    if len(key) < 16:
        raise UsageError(f"{source}: a gate signing key of at least 16 bytes is required with --engine")
    return key
