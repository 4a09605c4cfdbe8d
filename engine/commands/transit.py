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

from engine.arguments import account_id
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
    gate.add_argument("--operator-account", type=account_id, required=True, metavar="ACCOUNT_ID",
                      help="the operator's ledger account (32 hex digits, as banks add-operator prints it)")
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
    from engine.settlement.registry import get_bank
    from engine.taps.store import Issuer, add_issuer

    async def work(pool, key_service, ledger):
        await _require_issuer_key(key_service, args.key_label)
        async with pool.acquire() as connection:
            await get_bank(connection, args.bank_code)
            await add_issuer(connection, Issuer(args.pan_prefix, args.bank_code, args.key_label))

    if not (args.pan_prefix.isdigit() and 4 <= len(args.pan_prefix) <= 12):
        raise UsageError("pan_prefix: must be 4 to 12 digits")
    _run(work)
    emit(args, args.pan_prefix, {"pan_prefix": args.pan_prefix})
    return 0


async def _require_issuer_key(key_service, label: str) -> None:
    """Refuse a key label the key service does not hold as an ``imk-ac`` key: the cards'
    cryptograms could never be verified (every tap declined ``card_unknown``)."""
    kinds = {key.label: key.key_type for key in await key_service.list_keys()}
    if label not in kinds:
        raise UsageError(f"key_label {label!r}: no such key in the key service (onecard keys list)")
    if kinds[label] != "imk-ac":
        raise UsageError(f"key_label {label!r}: is a {kinds[label]} key; an issuer needs an imk-ac key")


def _add_device(args: argparse.Namespace, role: str, **gate) -> int:
    from engine.settlement.registry import require_account
    from engine.taps.devices import DeviceRegistry

    async def work(pool, key_service, ledger):
        if role == "gate":
            # Fares are posted to this account: an account that is not an operator's would
            # only show up as every fare at the gate declined (ledger_rejected).
            async with pool.acquire() as connection:
                await require_account(connection, gate["operator_account_id"], "operator")
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

    _check_rider_profile(args.birth_date, args.entitlement)
    pan = sys.stdin.readline().strip()
    if not (pan.isdigit() and 8 <= len(pan) <= 19 and luhn.is_valid(pan)):
        raise UsageError("PAN on stdin: must be 8 to 19 digits with a valid Luhn check digit")

    async def work(pool, keys, ledger):
        token = await keys.tokenize_pan(pan)
        if await _same_enrolment(pool, token, args):
            return token  # the identical enrolment again: nothing to change
        return await enrol_card(pool, ledger, keys, pan=pan, account_id=new_id(), bank_code=args.bank,
                                birth_date=args.birth_date, entitlements=args.entitlement)

    token = _run(work)
    emit(args, token, {"card_token": token})
    return 0


BIRTH_DATE_MIN = date(1900, 1, 1)


def _check_rider_profile(birth_date: date | None, entitlements: list[str]) -> None:
    """Refuse a birth date in the future (or before 1900) and entitlements no rider rule
    names (the packaged rules, engine/fares/data/rider_rules.toml): they would silently
    price the rider as an adult."""
    from engine.fares.riders import RiderRules

    if birth_date is not None and not BIRTH_DATE_MIN <= birth_date <= date.today():
        raise UsageError(f"--birth-date: must be from {BIRTH_DATE_MIN} to today, got {birth_date}")
    known = frozenset().union(*(category.entitlements_any for category in RiderRules.load().categories))
    for entitlement in entitlements:
        if entitlement not in known:
            raise UsageError(f"--entitlement {entitlement!r}: must be one of {', '.join(sorted(known))}")


async def _same_enrolment(pool, token: str, args: argparse.Namespace) -> bool:
    """Whether the card is enrolled already with exactly these fields.

    Raises
    ------
    ConflictError
        It is enrolled with another bank, birth date or entitlements (the field is named):
        re-enrolling must not silently move a card to another bank or profile.
    """
    from engine.errors import ConflictError
    from engine.taps.store import lock_cards

    async with pool.acquire() as connection:
        card = (await lock_cards(connection, [token])).get(token)
    if card is None:
        return False
    wanted = {"--bank": args.bank, "--birth-date": args.birth_date, "--entitlement": sorted(set(args.entitlement))}
    stored = {"--bank": card.bank_code, "--birth-date": card.birth_date, "--entitlement": sorted(card.entitlements)}
    for option, value in wanted.items():
        if stored[option] != value:
            shown = ", ".join(stored[option]) if option == "--entitlement" else stored[option]
            raise ConflictError(f"{option}: card {token} is enrolled already with another value "
                                f"({shown or 'none'}); nothing changed")
    return True


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
