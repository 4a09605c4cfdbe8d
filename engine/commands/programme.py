"""``onecard programme create|fund|user-add``: disbursement programmes (subsidy or wage),
their prefunded payer accounts (:mod:`engine.disbursement.execution`) and the department
users who call the HTTP API (:mod:`engine.disbursement.departments`)."""

from __future__ import annotations

import argparse
import asyncio
import sys

from engine.arguments import checked
from engine.config import Config
from engine.disbursement.amount import format_minor, parse_amount_minor
from engine.disbursement import departments
from engine.disbursement.execution import fund_programme, funding
from engine.disbursement.errors import AmountError
from engine.disbursement.store import PROGRAMME_KINDS, check_programme_code, check_programme_name, open_store
from engine.errors import EngineError, UsageError, user_errors
from engine.output import add_command, emit
from engine.settlement.registry import get_bank
from engine.taps.devices import DeviceRegistry
from ledger.service import Ledger


# The store's own checks (one rule for the CLI, the API and Python callers).
programme_code = checked(check_programme_code)
programme_name = checked(check_programme_name)


def register(subparsers) -> None:
    group = subparsers.add_parser("programme", help="disbursement programmes")
    commands = group.add_subparsers(dest="programme_command", metavar="ACTION", required=True)
    create = add_command(commands, "create", "create a programme (the same call again is a no-op: it does not "
                                             "fund again)")
    create.add_argument("code", type=programme_code, help="programme code ([A-Za-z0-9_-], up to 32 characters)")
    create.add_argument("--kind", required=True, choices=PROGRAMME_KINDS)
    create.add_argument("--name", required=True, type=programme_name,
                        help="programme name (1 to 128 printable characters)")
    create.add_argument("--per-person-max", required=True, metavar="YUAN", help="maximum per person and period")
    create.add_argument("--fund", metavar="YUAN", help="prefund the new programme's funding account with this "
                                                       "amount (only when this call creates it; later: fund)")
    create.add_argument("--bank", metavar="CODE",
                        help="bank holding the funding (subsidy) or wage escrow (wage) account; needed with --fund")
    create.add_argument("--department", help="the department that owns the programme on the HTTP API")
    create.set_defaults(handler=_create)

    user = add_command(commands, "user-add", "register a department user for the HTTP API; prints its secret "
                                             "(hex, shown once)")
    user.add_argument("device_id", help="the user's name and signing key id (stored case-folded, NFKC)")
    user.add_argument("--department", required=True)
    user.set_defaults(handler=_user_add)

    fund = add_command(commands, "fund", "credit a programme's funding account; prints the amount available")
    fund.add_argument("code", type=programme_code)
    fund.add_argument("amount", metavar="YUAN")
    fund.add_argument("--bank", metavar="CODE", help="bank of the funding account (first funding only)")
    fund.set_defaults(handler=_fund)


def yuan_argument(name: str, text: str) -> int:
    """A command-line amount in yuan as fen (``UsageError`` naming the option)."""
    try:
        return parse_amount_minor(text)
    except AmountError as error:
        raise UsageError(f"{name}: {error}") from None


def _create(args: argparse.Namespace) -> int:
    # Every argument is checked before anything is written, so that a bad --fund cannot
    # leave a programme created but unfunded.
    per_person_max_minor = yuan_argument("--per-person-max", args.per_person_max)
    fund_minor = yuan_argument("--fund", args.fund) if args.fund is not None else None
    if fund_minor is not None and fund_minor <= 0:
        raise UsageError("--fund: must be more than 0")
    if fund_minor is not None and not args.bank:
        raise UsageError("--fund needs --bank: the bank of the programme's funding account")
    if args.department:
        departments.check_department(args.department)

    async def run():
        async with open_store(Config.from_env()) as store:
            if fund_minor is not None:
                async with store.pool.acquire() as connection:
                    await get_bank(connection, args.bank)
            programme, created = await store.create_programme(args.code, args.kind, args.name, per_person_max_minor)
            if args.department:
                await departments.assign_programme(store.pool, programme.code, args.department)
            ledger = Ledger(store.pool)
            if created and fund_minor is not None:
                try:
                    return programme, created, await fund_programme(store, ledger, programme.code, fund_minor,
                                                                    bank_code=args.bank)
                except user_errors() as error:
                    raise _NotFunded(programme.code, error) from error
            async with store.pool.acquire() as connection:
                return programme, created, await funding(connection, ledger, programme.code)

    programme, created, funded = asyncio.run(run())
    if not created and fund_minor is not None:
        print(f"onecard: programme {programme.code} exists: not funded again (to add funds: onecard programme "
              "fund)", file=sys.stderr)
    emit(args, programme.code, {"code": programme.code, "kind": programme.kind, "name": programme.name,
                                "per_person_max_minor": programme.per_person_max_minor, "created": created,
                                "available_minor": funded.available_minor if funded else None})
    return 0


class _NotFunded(EngineError):
    """Funding a programme this call created failed: say that it exists, and how to fund it."""

    def __init__(self, code: str, error: Exception) -> None:
        super().__init__(f"programme {code} was created but not funded: {error}; "
                         f"fund it with: onecard programme fund {code} YUAN --bank BANK")


def _fund(args: argparse.Namespace) -> int:
    amount_minor = yuan_argument("amount", args.amount)

    async def run():
        async with open_store(Config.from_env()) as store:
            return await fund_programme(store, Ledger(store.pool), args.code, amount_minor, bank_code=args.bank)

    funded = asyncio.run(run())
    emit(args, f"programme {funded.programme_code}: {format_minor(funded.available_minor)} yuan available "
               f"at {funded.bank_code}",
         {"code": funded.programme_code, "bank_code": funded.bank_code, "available_minor": funded.available_minor})
    return 0


def _user_add(args: argparse.Namespace) -> int:
    async def run():
        async with open_store(Config.from_env()) as store:
            registry = DeviceRegistry(store.pool, sealer=store.keys)
            return await departments.add_user(store.pool, registry, args.device_id, args.department)

    device_id, secret = asyncio.run(run())
    # The secret provisions the user's client: shown once, stored only sealed. The client
    # signs with the id as stored (normalised), said on stderr when it differs.
    if device_id != args.device_id:
        print(f"onecard: user stored as {device_id!r} (sign with this id)", file=sys.stderr)
    emit(args, secret.hex(), {"device_id": device_id, "department": args.department,
                              "secret_hex": secret.hex()})
    return 0
