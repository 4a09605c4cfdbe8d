"""``onecard simbank --port N --bank-code C``: run a simulated partner bank (see
:mod:`adapters.simbank`) until interrupted."""

from __future__ import annotations

import argparse
import asyncio
import ssl
import sys

from adapters.errors import ConfigurationError
from adapters.simbank import Faults, SimBank
from engine.arguments import port
from engine.errors import UsageError
from engine.output import add_command, emit


def register(subparsers) -> None:
    parser = add_command(subparsers, "simbank",
                         "run a simulated partner bank (pacs.008 in; pacs.002, pacs.004, "
                         "camt.053 out) over HTTP")
    parser.add_argument("--port", type=port, default=0, help="TCP port (0: any free port)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback)")
    parser.add_argument("--bank-code", required=True, help="this bank's member code, e.g. ICBC")
    parser.add_argument("--key-id", default="", help="require requests signed with this key id")
    parser.add_argument("--key-hex", default="", help="the HMAC secret of --key-id, in hex")
    parser.add_argument("--closed-account", action="append", default=[],
                        help="an account that is closed (credits rejected AC04); repeatable")
    parser.add_argument("--reject-rate", type=float, default=0.0,
                        help="fraction of transactions rejected with --reject-reason")
    parser.add_argument("--reject-reason", default="AC04", help="ISO reason code (default AC04)")
    parser.add_argument("--error-rate", type=float, default=0.0,
                        help="fraction of requests answered 503 before processing")
    parser.add_argument("--lost-ack-rate", type=float, default=0.0,
                        help="fraction of requests processed but answered 502")
    parser.add_argument("--timeout-rate", type=float, default=0.0,
                        help="fraction of requests processed but answered after --hang-s")
    parser.add_argument("--hang-s", type=float, default=30.0, help="delay of a timed-out answer")
    parser.add_argument("--duplicate-rate", type=float, default=0.0,
                        help="fraction of transaction statuses sent twice")
    parser.add_argument("--out-of-order-rate", type=float, default=0.0,
                        help="fraction of transactions with a stale interim status after the final")
    parser.add_argument("--delay-ms", type=int, default=0, help="delay of every answer")
    parser.add_argument("--seed", type=int, default=0, help="seed of the fault generator")
    parser.add_argument("--tls-cert", default="", help="PEM certificate chain: serve HTTPS")
    parser.add_argument("--tls-key", default="", help="PEM private key of --tls-cert")
    parser.add_argument("--tls-client-ca", default="",
                        help="PEM CA certificates: require client certificates (mutual TLS)")
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    bank = SimBank(args.bank_code, faults=_faults(args), keys=_keys(args))
    for number in args.closed_account:
        bank.close_account(number)
    asyncio.run(_serve(bank, args))
    return 0


async def _serve(bank: SimBank, args: argparse.Namespace) -> None:
    url = await bank.start(args.host, args.port, _ssl_context(args))
    emit(args, f"simbank {args.bank_code} listening on {url}", {"bank_code": args.bank_code,
                                                                   "url": url})
    # Whoever started us (a test, the demo) reads the URL from a pipe while we keep running.
    sys.stdout.flush()
    try:
        await asyncio.Event().wait()
    finally:
        await bank.stop()


def _faults(args: argparse.Namespace) -> Faults:
    try:
        return Faults(reject_rate=args.reject_rate, reject_reason=args.reject_reason,
                      error_rate=args.error_rate, lost_ack_rate=args.lost_ack_rate,
                      timeout_rate=args.timeout_rate, duplicate_rate=args.duplicate_rate,
                      out_of_order_rate=args.out_of_order_rate, delay_ms=args.delay_ms,
                      hang_s=args.hang_s, seed=args.seed)
    except ConfigurationError as error:
        raise UsageError(str(error)) from None


def _keys(args: argparse.Namespace) -> dict[str, bytes] | None:
    if bool(args.key_id) != bool(args.key_hex):
        raise UsageError("--key-id and --key-hex go together")
    if not args.key_id:
        return None
    try:
        return {args.key_id: bytes.fromhex(args.key_hex)}
    except ValueError:
        raise UsageError("--key-hex: not hexadecimal") from None


def _ssl_context(args: argparse.Namespace) -> ssl.SSLContext | None:
    if not args.tls_cert:
        if args.tls_key or args.tls_client_ca:
            raise UsageError("--tls-key and --tls-client-ca need --tls-cert")
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(args.tls_cert, args.tls_key or None)
        if args.tls_client_ca:
            context.load_verify_locations(args.tls_client_ca)
            context.verify_mode = ssl.CERT_REQUIRED
    except (OSError, ssl.SSLError) as error:
        raise UsageError(f"TLS files: {error}") from None
    return context
