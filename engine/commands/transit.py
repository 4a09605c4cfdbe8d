"""``onecard transit ...``: set up gates, issuers and cards; close a transit day.

Banks and operators come first: ``onecard banks add`` and ``onecard banks add-operator``.

| command | does |
| --- | --- |
| ``issuer-add PREFIX BANK KEY_LABEL`` | cards with this PAN prefix: bank, ``imk-ac`` key |
| ``gate-add GATE --network N --operator-account ID`` | register a gate, print its secret (hex, once) |
| ``admin-add ID`` | register an admin device, print its secret |
| ``device-revoke ID`` | refuse the device's signatures from now on |
| ``enrol-card --bank B`` | enrol the card whose PAN is read from stdin, print its token |
| ``close-day [--day D]`` | charge missing exits, then the day's collections per bank (default: the last closed day) |
| ``collection TOKEN DAY collected\\|declined\\|cleared`` | a bank's answer |
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import date, datetime, timezone

from engine.errors import UsageError
from engine.output import add_command, emit


def register(subparsers) -> None:
    group = subparsers.add_parser("transit", help="transit: gates, issuers, cards, daily close")
    commands = group.add_subparsers(dest="transit_command", metavar="ACTION", required=True)

    issuer = add_command(commands, "issuer-add", "register the issuer of a PAN prefix")
    issuer.add_argument("pan_prefix")
    issuer.add_argument("bank_code")
    issuer.add_argument("key_label", help="the key service's imk-ac key for these cards")
    issuer.set_defaults(handler=_issuer_add)

    gate = add_command(commands, "gate-add", "register a gate; prints its signing secret once")
    gate.add_argument("device_id")
    gate.add_argument("--network", required=True, help="fare network id (e.g. metro, bus)")
    gate.add_argument("--operator-account", type=int, required=True)
    gate.set_defaults(handler=_gate_add)

    admin = add_command(commands, "admin-add", "register an admin device; prints its secret once")
    admin.add_argument("device_id")
    admin.set_defaults(handler=_admin_add)

    revoke = add_command(commands, "device-revoke", "refuse a device's signatures from now on")
    revoke.add_argument("device_id")
    revoke.set_defaults(handler=_device_revoke)

    enrol = add_command(commands, "enrol-card",
                        "enrol the card whose PAN is read from stdin (kept off the command line)")
    enrol.add_argument("--bank", required=True, help="issuing bank code")
    enrol.add_argument("--birth-date", type=date.fromisoformat, default=None)
    enrol.add_argument("--entitlement", action="append", default=[],
                       help="e.g. student, disability (repeatable)")
    enrol.set_defaults(handler=_enrol_card)

    close = add_command(commands, "close-day", "compute and record the day's collections per bank")
    close.add_argument("--day", type=date.fromisoformat, default=None,
                       help="transit day YYYY-MM-DD (default: the last closed day)")
    close.set_defaults(handler=_close_day)

    answer = add_command(commands, "collection", "record a bank's answer to a collection")
    answer.add_argument("card_token")
    answer.add_argument("day", type=date.fromisoformat)
    answer.add_argument("status", choices=("collected", "declined", "cleared"))
    answer.set_defaults(handler=_collection)


def _run(work):
    """Run ``work(pool, key_service, ledger)`` with the configured database and keys."""
    from engine.config import Config
    from hsm.service import open_key_service
    from ledger import db
    from ledger.service import Ledger

    async def main():
        config = Config.from_env()
        pool = await db.open_database(config, size_max=2)
        key_service = open_key_service(config)
        try:
            return await work(pool, key_service, Ledger(pool))
        finally:
            await key_service.close()
            await pool.close()

    return asyncio.run(main())


def _issuer_add(args: argparse.Namespace) -> int:
    from engine.taps.store import Issuer, add_issuer

    async def work(pool, key_service, ledger):
        async with pool.acquire() as connection:
            await add_issuer(connection, Issuer(args.pan_prefix, args.bank_code, args.key_label))

    if not (args.pan_prefix.isdigit() and 4 <= len(args.pan_prefix) <= 12):
        raise UsageError("pan_prefix: must be 4 to 12 digits")
    _run(work)
    emit(args, args.pan_prefix, {"pan_prefix": args.pan_prefix})
    return 0


def _add_device(args: argparse.Namespace, role: str, **gate) -> int:
    from engine.taps.devices import DeviceRegistry

    async def work(pool, key_service, ledger):
        return await DeviceRegistry(pool, sealer=key_service).add(args.device_id, role, **gate)

    secret = _run(work)
    # The secret is the device's provisioning output: shown once, stored only sealed.
    emit(args, secret.hex(), {"device_id": args.device_id, "secret_hex": secret.hex()})
    return 0


def _gate_add(args: argparse.Namespace) -> int:
    return _add_device(args, "gate", network_id=args.network,
                       operator_account_id=args.operator_account)


def _admin_add(args: argparse.Namespace) -> int:
    return _add_device(args, "admin")


def _device_revoke(args: argparse.Namespace) -> int:
    from engine.taps.devices import DeviceRegistry

    _run(lambda pool, keys, ledger: DeviceRegistry(pool, sealer=keys).revoke(args.device_id))
    emit(args, f"revoked {args.device_id}", {"device_id": args.device_id, "revoked": True})
    return 0


def _enrol_card(args: argparse.Namespace) -> int:
    from stdnum import luhn

    from engine.taps.enrolment import enrol_card
    from ledger.ids import new_id

    pan = sys.stdin.readline().strip()
    if not (pan.isdigit() and 8 <= len(pan) <= 19 and luhn.is_valid(pan)):
        raise UsageError("PAN on stdin: must be 8 to 19 digits with a valid Luhn check digit")
    token = _run(lambda pool, keys, ledger: enrol_card(
        pool, ledger, keys, pan=pan, account_id=new_id(), bank_code=args.bank,
        birth_date=args.birth_date, entitlements=args.entitlement))
    emit(args, token, {"card_token": token})
    return 0


def _close_day(args: argparse.Namespace) -> int:
    from engine.fares.config import load_engine
    from engine.fares.days import transit_date
    from engine.reference_data import reference_data_dir
    from engine.taps.collections import charge_missing_exits, close_day
    from engine.taps.posting import LedgerPosting
    from engine.taps.pricing import FarePricing

    fares = load_engine(shared_data=reference_data_dir())
    now_utc = datetime.now(timezone.utc)
    current = transit_date(now_utc, fares.timezone, fares.day_boundary)
    day = args.day or date.fromordinal(current.toordinal() - 1)

    async def work(pool, key_service, ledger):
        await charge_missing_exits(pool, LedgerPosting(ledger), FarePricing(fares), now_utc)
        return await close_day(pool, day, current_day=current)

    grouped = _run(work)
    lines = [f"{bank} {c.card_token} {c.amount_minor} ({c.tap_count} taps)"
             for bank, items in grouped.items() for c in items]
    emit(args, "\n".join(lines) or f"no collections for {day}",
         {"transit_day": day.isoformat(),
          "banks": {bank: [{"card_token": c.card_token, "amount_minor": c.amount_minor,
                            "tap_count": c.tap_count} for c in items]
                    for bank, items in grouped.items()}})
    return 0


def _collection(args: argparse.Namespace) -> int:
    from engine.taps.collections import clear_debt, record_bank_answer

    async def work(pool, key_service, ledger):
        if args.status == "cleared":
            return await clear_debt(pool, ledger, args.card_token, args.day)
        return await record_bank_answer(pool, ledger, args.card_token, args.day,
                                        collected=args.status == "collected")

    status = _run(work)
    emit(args, status, {"card_token": args.card_token, "transit_day": args.day.isoformat(),
                        "status": status})
    return 0
