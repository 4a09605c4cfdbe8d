"""The tap path's use of the ledger: fares posted card -> operator, and the accounts.

Ledger conventions of transit (TigerBeetle fields): ``ledger`` is the ISO 4217 numeric
currency (156, CNY); account ``code`` says what the account is; transfer ``code`` what
moved (operators' accounts, code 120, are opened by
:func:`engine.settlement.registry.add_operator`). A card account has no balance limit: its debits (fares) exceed its credits until
the daily collection from the issuing bank credits it back.
"""

from __future__ import annotations

import asyncpg

from ledger.results import CreateTransferResult
from ledger.service import Ledger
from ledger.types import Account, Transfer

LEDGER_CNY = 156
ACCOUNT_CODE_CARD = 110
TRANSFER_CODE_FARE = 210
TRANSFER_CODE_COLLECTION = 211
TRANSFER_CODE_FARE_REFUND = 212  # operator -> card: a late tap lowered the card's day

POSTED = (CreateTransferResult.ok, CreateTransferResult.exists)


def card_account(account_id: int) -> Account:
    """The ledger account of a transit card (no limit flags: it may owe)."""
    return Account(id=account_id, ledger=LEDGER_CNY, code=ACCOUNT_CODE_CARD)


class LedgerPosting:
    """:class:`engine.taps.service.TapLedger` over :class:`ledger.service.Ledger`."""

    def __init__(self, ledger: Ledger):
        self._ledger = ledger

    async def post(self, connection: asyncpg.Connection, postings) -> list[bool]:
        """Create the fare transfers in the caller's transaction; ``True`` per posting that
        is in the ledger (created now, or by an earlier attempt with the same id)."""
        transfers = [Transfer(id=p.transfer_id, debit_account_id=p.dr_account_id,
                              credit_account_id=p.cr_account_id, amount=p.amount,
                              ledger=LEDGER_CNY,
                              code=TRANSFER_CODE_FARE_REFUND if p.refund else TRANSFER_CODE_FARE)
                     for p in postings]
        results = await self._ledger.create_transfers(transfers, connection=connection)
        return [result in POSTED for result in results]
