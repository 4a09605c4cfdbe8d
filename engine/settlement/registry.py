"""Participants of clearing: banks, operators, payers, and the bank of each ledger account.

Every ledger account that takes part in clearing is attributed to exactly one bank in
``settlement_accounts`` (kind ``settlement``, ``operator``, ``funding``, ``wage`` or
``card``); positions are computed from that attribution. Card accounts are attributed by
whoever opens them (the tap path, disbursement) with :func:`attribute_accounts` in their own
transaction. The clearing account (:data:`CLEARING_ACCOUNT_ID`) is the engine's own and
belongs to no bank.

Ledger conventions (same as :mod:`engine.taps.posting`): ``ledger`` 156 = CNY; account and
transfer codes below.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from engine.settlement.errors import ParticipantError, UnknownParticipantError
from ledger.ids import new_id
from ledger.results import CreateAccountResult
from ledger.service import Ledger, id_bytes
from ledger.types import Account, AccountFlags

LEDGER_CNY = 156
CURRENCY = "CNY"
ACCOUNT_CODE_SETTLEMENT = 130
ACCOUNT_CODE_CLEARING = 131
ACCOUNT_CODE_FUNDING = 140
ACCOUNT_CODE_WAGE = 141
TRANSFER_CODE_PAYOUT = 220
TRANSFER_CODE_PAYOUT_REVERSAL = 221
TRANSFER_CODE_SETTLEMENT = 230
# The engine's clearing account: a fixed id, so every process agrees on it without a lookup.
CLEARING_ACCOUNT_ID = int.from_bytes(hashlib.sha256(b"onecard clearing account CNY").digest()[:16], "big")
ACCOUNT_KINDS = ("settlement", "operator", "funding", "wage", "card")
PAYER_KINDS = ("funding", "wage")
BANK_CODE_PATTERN = re.compile(r"^[A-Z0-9]{2,16}$")
BANK_NAME_CHARACTERS_MAX = 128
DELIVERIES = ("push", "file", "pull")

_CREATED = (CreateAccountResult.ok, CreateAccountResult.exists)


@dataclass(frozen=True, slots=True)
class Bank:
    """A partner bank: ``net_debit_cap_minor`` 0 means no cap; ``delivery`` how instructions
    reach it (``push`` to the HTTPS ``endpoint``, ``file`` into the ``endpoint`` folder,
    ``pull`` through the settlement API); ``statement_account`` the account the engine
    holds with the bank as its camt.053 statements name it (``Stmt/Acct/Id``), "" when
    not recorded."""

    bank_code: str
    name: str
    settlement_account_id: int
    net_debit_cap_minor: int
    delivery: str = "pull"
    endpoint: str = ""
    statement_account: str = ""


async def add_bank(pool: asyncpg.Pool, ledger: Ledger, bank_code: str, name: str, *,
                   net_debit_cap_minor: int = 0, delivery: str = "pull", endpoint: str = "",
                   statement_account: str = "") -> Bank:
    """Register a bank with a fresh ledger settlement account; return it.

    Raises
    ------
    ParticipantError
        Bad bank code (``[A-Z0-9]{2,16}``), empty or overlong name, negative cap, unknown
        delivery, an endpoint that is not an https URL (``push``), or the bank exists.
    """
    if not BANK_CODE_PATTERN.match(bank_code or ""):
        raise ParticipantError(f"bank_code {bank_code!r}: must be 2-16 characters of [A-Z0-9]")
    if not name.strip() or len(name) > BANK_NAME_CHARACTERS_MAX or not name.isprintable():
        raise ParticipantError(f"name: must be 1 to {BANK_NAME_CHARACTERS_MAX} printable characters")
    if type(net_debit_cap_minor) is not int or net_debit_cap_minor < 0:
        raise ParticipantError(f"net_debit_cap_minor: must be an int >= 0, got {net_debit_cap_minor!r}")
    if delivery not in DELIVERIES:
        raise ParticipantError(f"delivery {delivery!r}: must be one of {', '.join(DELIVERIES)}")
    if delivery != "pull" and not endpoint:
        raise ParticipantError(f"endpoint: required for delivery {delivery!r}")
    if delivery == "push" and not _is_https_url(endpoint):
        raise ParticipantError("endpoint: must be an https:// URL for delivery 'push' (http:// only to a "
                               f"loopback address), got {endpoint[:64]!r}")
    bank = Bank(bank_code, name, new_id(), net_debit_cap_minor, delivery, endpoint, statement_account.strip())
    async with pool.acquire() as connection, connection.transaction():
        if await connection.fetchval("SELECT 1 FROM settlement_banks WHERE bank_code = $1", bank_code):
            raise ParticipantError(f"bank_code {bank_code!r}: already registered")
        await _create_accounts(ledger, connection, [
            Account(id=bank.settlement_account_id, ledger=LEDGER_CNY, code=ACCOUNT_CODE_SETTLEMENT),
            Account(id=CLEARING_ACCOUNT_ID, ledger=LEDGER_CNY, code=ACCOUNT_CODE_CLEARING),
        ])
        await connection.execute(
            "INSERT INTO settlement_banks (bank_code, name, settlement_account_id, net_debit_cap_minor,"
            " delivery, endpoint, statement_account) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            bank_code, name, id_bytes(bank.settlement_account_id), net_debit_cap_minor, delivery, endpoint,
            bank.statement_account)
        await attribute_accounts(connection, [(bank.settlement_account_id, bank_code, "settlement")])
    return bank


def _is_https_url(text: str) -> bool:
    try:
        url = urllib.parse.urlsplit(text)
        url.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        return False
    if url.scheme == "http" and url.hostname:
        # Plain HTTP only to this machine: a simulated bank (onecard simbank, the demo).
        return url.hostname == "localhost" or _is_loopback(url.hostname)
    return url.scheme == "https" and bool(url.hostname)


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def add_operator(pool: asyncpg.Pool, ledger: Ledger, operator_id: str, bank_code: str) -> int:
    """Register a transit operator banking with ``bank_code``; return its new ledger account id.

    Raises
    ------
    UnknownParticipantError
        No such bank.
    ParticipantError
        The operator exists.
    """
    return await _add_party(pool, ledger, "settlement_operators", "operator_id", operator_id, bank_code,
                            "operator", Account(id=new_id(), ledger=LEDGER_CNY, code=120))


async def add_payer(pool: asyncpg.Pool, ledger: Ledger, payer_id: str, bank_code: str, kind: str = "funding") -> int:
    """Register a payer (``funding``: a programme fund; ``wage``: an employer's wage escrow)
    with a prefunded ledger account (debits must not exceed credits); return the account id.

    Raises
    ------
    UnknownParticipantError
        No such bank.
    ParticipantError
        Unknown ``kind`` or the payer exists.
    """
    if kind not in PAYER_KINDS:
        raise ParticipantError(f"kind {kind!r}: must be one of {', '.join(PAYER_KINDS)}")
    code = ACCOUNT_CODE_FUNDING if kind == "funding" else ACCOUNT_CODE_WAGE
    account = Account(id=new_id(), ledger=LEDGER_CNY, code=code,
                      flags=int(AccountFlags.debits_must_not_exceed_credits))
    return await _add_party(pool, ledger, "settlement_payers", "payer_id", payer_id, bank_code, kind, account)


async def attribute_accounts(connection: asyncpg.Connection, accounts: Sequence[tuple[int, str, str]]) -> None:
    """Record ``(ledger account id, bank_code, kind)`` attributions in the caller's transaction.

    Attributing an account again to the same bank and kind changes nothing.

    Raises
    ------
    ParticipantError
        Unknown kind, or the account is already attributed to another bank or kind.
    UnknownParticipantError
        No such bank.
    """
    for index, (_, bank_code, kind) in enumerate(accounts):
        if kind not in ACCOUNT_KINDS:
            raise ParticipantError(f"accounts[{index}].kind {kind!r}: must be one of {', '.join(ACCOUNT_KINDS)}")
    missing = await connection.fetchval(
        "SELECT array_agg(DISTINCT code ORDER BY code) FROM unnest($1::text[]) AS code"
        " WHERE NOT EXISTS (SELECT 1 FROM settlement_banks b WHERE b.bank_code = code)",
        [b for _, b, _ in accounts])
    if missing:
        raise UnknownParticipantError(f"bank_code {', '.join(map(repr, missing))}: no such bank")
    rows = await connection.fetch(
        "INSERT INTO settlement_accounts (account_id, bank_code, kind)"
        " SELECT * FROM unnest($1::bytea[], $2::text[], $3::text[])"
        " ON CONFLICT (account_id) DO UPDATE SET account_id = EXCLUDED.account_id"
        " RETURNING account_id, bank_code, kind",
        [id_bytes(a) for a, _, _ in accounts], [b for _, b, _ in accounts], [k for _, _, k in accounts])
    stored = {row["account_id"]: (row["bank_code"], row["kind"]) for row in rows}
    for account_id, bank_code, kind in accounts:
        if stored[id_bytes(account_id)] != (bank_code, kind):
            raise ParticipantError(f"account {account_id:032X}: already attributed to "
                                   f"{stored[id_bytes(account_id)][0]} as {stored[id_bytes(account_id)][1]}")


async def require_account(connection: asyncpg.Connection, account_id: int, kind: str) -> str:
    """The bank of ledger account ``account_id``, which must be attributed as ``kind``.

    Raises
    ------
    UnknownParticipantError
        The account is not attributed to any bank, or as another kind (both named).
    """
    assert kind in ACCOUNT_KINDS
    row = await connection.fetchrow("SELECT bank_code, kind FROM settlement_accounts WHERE account_id = $1",
                                    id_bytes(account_id))
    if row is None or row["kind"] != kind:
        found = f"a {row['kind']} account" if row else "no registered account"
        raise UnknownParticipantError(f"account {account_id:032X}: not a registered {kind} account ({found})")
    return row["bank_code"]


async def get_bank(connection: asyncpg.Connection, bank_code: str) -> Bank:
    """The registered bank ``bank_code``.

    Raises
    ------
    UnknownParticipantError
        No such bank.
    """
    row = await connection.fetchrow(f"SELECT {_BANK_COLUMNS} FROM settlement_banks WHERE bank_code = $1", bank_code)
    if row is None:
        raise UnknownParticipantError(f"bank_code {bank_code!r}: no such bank")
    return _bank(row)


async def list_banks(connection: asyncpg.Connection) -> list[Bank]:
    """Every registered bank, by bank code."""
    return [_bank(row) for row in await connection.fetch(
        f"SELECT {_BANK_COLUMNS} FROM settlement_banks ORDER BY bank_code")]


_BANK_COLUMNS = "bank_code, name, settlement_account_id, net_debit_cap_minor, delivery, endpoint, statement_account"


def _bank(row: asyncpg.Record) -> Bank:
    return Bank(row["bank_code"], row["name"], int.from_bytes(row["settlement_account_id"], "big"),
                row["net_debit_cap_minor"], row["delivery"], row["endpoint"], row["statement_account"])


async def _add_party(pool: asyncpg.Pool, ledger: Ledger, table: str, key: str, party_id: str, bank_code: str,
                     kind: str, account: Account) -> int:
    if not party_id or len(party_id) > 64:
        raise ParticipantError(f"{key}: must be 1-64 characters")
    async with pool.acquire() as connection, connection.transaction():
        await get_bank(connection, bank_code)
        if await connection.fetchval(f"SELECT 1 FROM {table} WHERE {key} = $1", party_id):
            raise ParticipantError(f"{key} {party_id!r}: already registered")
        await _create_accounts(ledger, connection, [account])
        columns = "payer_id, kind, bank_code, account_id" if kind in PAYER_KINDS else "operator_id, bank_code, account_id"
        values = (party_id, kind, bank_code, id_bytes(account.id)) if kind in PAYER_KINDS else (
            party_id, bank_code, id_bytes(account.id))
        placeholders = ", ".join(f"${n + 1}" for n in range(len(values)))
        await connection.execute(f"INSERT INTO {table} ({columns}) VALUES ({placeholders})", *values)
        await attribute_accounts(connection, [(account.id, bank_code, kind)])
    return account.id


async def _create_accounts(ledger: Ledger, connection: asyncpg.Connection, accounts: list[Account]) -> None:
    results = await ledger.create_accounts(accounts, connection=connection)
    for account, result in zip(accounts, results):
        if result not in _CREATED:
            raise ParticipantError(f"ledger account {account.id:032X}: {result.name}")
