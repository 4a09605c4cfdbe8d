"""``onecard programme create``: disbursement programmes (subsidy or wage)."""

from __future__ import annotations

import argparse
import asyncio

from engine.config import Config
from engine.disbursement.amount import parse_amount_minor
from engine.disbursement.errors import AmountError
from engine.disbursement.store import PROGRAMME_KINDS, open_store
from engine.errors import UsageError
from engine.output import add_command, emit


def register(subparsers) -> None:
    group = subparsers.add_parser("programme", help="disbursement programmes")
    commands = group.add_subparsers(dest="programme_command", metavar="ACTION", required=True)
    create = add_command(commands, "create", "create a programme (the same call again is a no-op)")
    create.add_argument("code", help="programme code ([A-Za-z0-9_-], up to 32 characters)")
    create.add_argument("--kind", required=True, choices=PROGRAMME_KINDS)
    create.add_argument("--name", required=True)
    create.add_argument("--per-person-max", required=True, metavar="YUAN", help="maximum per person and period")
    create.set_defaults(handler=_create)


def yuan_argument(name: str, text: str) -> int:
    """A command-line amount in yuan as fen (``UsageError`` naming the option)."""
    try:
        return parse_amount_minor(text)
    except AmountError as error:
        raise UsageError(f"{name}: {error}") from None


def _create(args: argparse.Namespace) -> int:
    per_person_max_minor = yuan_argument("--per-person-max", args.per_person_max)

    async def run():
        async with open_store(Config.from_env()) as store:
            return await store.create_programme(args.code, args.kind, args.name, per_person_max_minor)

    programme = asyncio.run(run())
    emit(args, programme.code, {"code": programme.code, "kind": programme.kind, "name": programme.name,
                                "per_person_max_minor": programme.per_person_max_minor})
    return 0
