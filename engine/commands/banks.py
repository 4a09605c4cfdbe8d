"""``onecard banks add|list|add-operator|add-payer|issue-cert|serve``: clearing participants
and the bank-facing settlement API."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses

from engine.arguments import account_text, amount_minor, bounded_text, port
from engine.output import add_command, emit, pad
from engine.settlement import registry
from engine.settlement.runtime import pki_store, run_with_database


def register(subparsers) -> None:
    group = subparsers.add_parser("banks", help="partner banks, operators, payers; bank API certificates")
    commands = group.add_subparsers(dest="banks_command", metavar="ACTION", required=True)
    add = add_command(commands, "add", "register a bank with a settlement account")
    add.add_argument("bank_code")
    add.add_argument("--name", required=True, type=bounded_text(registry.BANK_NAME_CHARACTERS_MAX))
    add.add_argument("--cap-minor", type=amount_minor, default=0, help="net debit cap in fen (0: none)")
    add.add_argument("--delivery", choices=registry.DELIVERIES, default="pull")
    add.add_argument("--endpoint", default="", help="https URL (push; http only to a loopback simulated bank) or folder (file)")
    add.add_argument("--statement-account", default="", metavar="ACCOUNT",
                     help="the engine's account with the bank as its camt.053 statements name it "
                          "(reconcile refuses a statement of any other account)")
    add.set_defaults(handler=_add)
    add_command(commands, "list", "list banks").set_defaults(handler=_list)
    operator = add_command(commands, "add-operator", "register a transit operator; prints its ledger account id")
    operator.add_argument("operator_id")
    operator.add_argument("--bank", required=True)
    operator.set_defaults(handler=_add_operator)
    payer = add_command(commands, "add-payer", "register a payer (programme fund or wage escrow)")
    payer.add_argument("payer_id")
    payer.add_argument("--bank", required=True)
    payer.add_argument("--kind", choices=registry.PAYER_KINDS, default="funding")
    payer.set_defaults(handler=_add_payer)
    cert = add_command(commands, "issue-cert", "issue a bank's client certificate and signing key")
    cert.add_argument("bank_code")
    cert.add_argument("--host", action="append", default=None,
                      help="server certificate host name (repeatable; default localhost, 127.0.0.1)")
    cert.set_defaults(handler=_issue_cert)
    serve = add_command(commands, "serve", "serve the bank API (mutual TLS) with the outbox dispatcher")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=port, default=8443)
    serve.set_defaults(handler=_serve)


def _add(args: argparse.Namespace) -> int:
    bank = run_with_database(lambda pool, ledger: registry.add_bank(
        pool, ledger, args.bank_code, args.name, net_debit_cap_minor=args.cap_minor, delivery=args.delivery,
        endpoint=args.endpoint, statement_account=args.statement_account))
    emit(args, bank.bank_code, _bank_view(bank))
    return 0


async def _banks(pool, _ledger):
    async with pool.acquire() as connection:
        return await registry.list_banks(connection)


def _list(args: argparse.Namespace) -> int:
    banks = run_with_database(_banks)
    lines = [f"{b.bank_code:<16} {pad(b.name, 30)} cap {b.net_debit_cap_minor:>14}  {b.delivery} {b.endpoint}".rstrip()
             for b in banks]
    emit(args, "\n".join(lines), [_bank_view(b) for b in banks])
    return 0


def _bank_view(bank: registry.Bank) -> dict[str, object]:
    # Account ids in their one text form (engine.arguments.account_text), as everywhere.
    return dataclasses.asdict(bank) | {"settlement_account_id": account_text(bank.settlement_account_id)}


def _add_operator(args: argparse.Namespace) -> int:
    account_id = run_with_database(lambda pool, ledger: registry.add_operator(pool, ledger, args.operator_id, args.bank))
    emit(args, account_text(account_id), {"operator_id": args.operator_id, "account_id": account_text(account_id)})
    return 0


def _add_payer(args: argparse.Namespace) -> int:
    account_id = run_with_database(
        lambda pool, ledger: registry.add_payer(pool, ledger, args.payer_id, args.bank, args.kind))
    emit(args, account_text(account_id), {"payer_id": args.payer_id, "account_id": account_text(account_id)})
    return 0


def _issue_cert(args: argparse.Namespace) -> int:
    store = pki_store()
    store.ensure_ca()
    if args.host or not (store.folder / "server.pem").exists():
        store.issue_server(tuple(args.host or ("localhost", "127.0.0.1")))
    credentials = store.issue_bank(args.bank_code)
    paths = {field.name: str(getattr(credentials, field.name)) for field in dataclasses.fields(credentials)}
    emit(args, str(credentials.certificate.parent), paths)
    return 0


def _serve(args: argparse.Namespace) -> int:
    from engine.api.banks import BankApiSettings, start_bank_api
    from engine.settlement.schedule import CloseSchedule

    async def work(pool, _ledger):
        settings = BankApiSettings(host=args.host, port=args.port, schedule=CloseSchedule.from_env())
        runner, tasks = await start_bank_api(pool, pki_store(), settings)
        print(f"bank API on https://{args.host}:{runner.addresses[0][1]}", flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await runner.cleanup()

    run_with_database(work)
    return 0
