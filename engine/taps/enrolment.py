"""Enrolling cards for transit (used by the CLI, tests, benchmark). Banks and operators
are registered by :mod:`engine.settlement.registry` (``onecard banks ...``).

A card is enrolled by its PAN: the key service turns the PAN into its token (the PAN is
not kept), the ledger gets the card's account, and ``transit_cards`` the card's state row
with the salted PAN hash gates match their deny list with (:func:`terminal.gate.card_hash`;
a gate must compute it from the PAN it reads, so it is as guessable as the PAN space).
"""

from __future__ import annotations

from datetime import date
from typing import Iterable

import asyncpg

from engine.errors import ConflictError
from engine.taps import store
from engine.settlement.registry import attribute_accounts
from engine.taps.posting import card_account
from ledger.results import CreateAccountResult
from ledger.service import Ledger
from terminal.gate import card_hash

_CREATED = (CreateAccountResult.ok, CreateAccountResult.exists)


async def enrol_card(pool: asyncpg.Pool, ledger: Ledger, key_service, *, pan: str,
                     account_id: int, bank_code: str, birth_date: date | None = None,
                     entitlements: Iterable[str] = ()) -> str:
    """Enrol the card ``pan`` of the bank ``bank_code``; return its token.

    In one transaction: the card's ledger account, its attribution to the issuing bank
    for clearing (:func:`engine.settlement.registry.attribute_accounts`), and its transit
    state row.

    Raises
    ------
    ConflictError
        ``account_id`` exists as another kind of account.
    engine.settlement.errors.UnknownParticipantError
        ``bank_code`` is not a registered bank (``onecard banks add``).
    ValueError
        ``pan`` is not 8 to 19 digits (from the key service).
    """
    token = await key_service.tokenize_pan(pan)
    async with pool.acquire() as connection:
        async with connection.transaction():
            pan_hash = card_hash(await store.deny_list_salt(connection), pan)
            [result] = await ledger.create_accounts([card_account(account_id)],
                                                    connection=connection)
            if result not in _CREATED:
                raise ConflictError(
                    f"account_id: {account_id} cannot be a card account ({result.name})")
            await attribute_accounts(connection, [(account_id, bank_code, "card")])
            await store.enrol_card(connection, token, account_id=account_id,
                                   bank_code=bank_code, pan_hash=pan_hash,
                                   birth_date=birth_date, entitlements=entitlements)
    return token
