"""A small clearing world for settlement tests: three banks, an operator, a payer, cards.

ICBC issues the cards, the metro operator banks with BOC, the subsidy fund with CCB.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.settlement import registry
from ledger.ids import new_id
from ledger.results import CreateTransferResult
from ledger.service import Ledger
from ledger.types import Account, Transfer

FARE_CODE = 210


@dataclass
class World:
    ledger: Ledger
    banks: dict
    operator_account: int
    payer_account: int
    cards: list[int]

    async def fares(self, pool, amounts, card_index=0):
        transfers = [Transfer(id=new_id(), debit_account_id=self.cards[card_index],
                              credit_account_id=self.operator_account, amount=amount,
                              ledger=registry.LEDGER_CNY, code=FARE_CODE) for amount in amounts]
        results = await self.ledger.create_transfers(transfers)
        assert results == [CreateTransferResult.ok] * len(transfers)
        return transfers


async def make_world(pool, *, card_count=2, fund_minor=1_000_000, caps=None, delivery=None) -> World:
    ledger = Ledger(pool)
    caps = caps or {}
    delivery = delivery or {}
    banks = {}
    for code in ("BOC", "CCB", "ICBC"):
        how, endpoint = delivery.get(code, ("pull", ""))
        banks[code] = await registry.add_bank(pool, ledger, code, f"{code} bank", net_debit_cap_minor=caps.get(code, 0),
                                              delivery=how, endpoint=endpoint)
    operator_account = await registry.add_operator(pool, ledger, "metro", "BOC")
    payer_account = await registry.add_payer(pool, ledger, "subsidy-fund", "CCB")
    cards = [new_id() for _ in range(card_count)]
    assert await ledger.create_accounts([Account(id=card, ledger=registry.LEDGER_CNY, code=110) for card in cards]) \
        == [0] * card_count
    async with pool.acquire() as connection:
        await registry.attribute_accounts(connection, [(card, "ICBC", "card") for card in cards])
    # Prefund the payer from its own bank: an intra-bank move, no position.
    (funded,) = await ledger.create_transfers([Transfer(
        id=new_id(), debit_account_id=banks["CCB"].settlement_account_id, credit_account_id=payer_account,
        amount=fund_minor, ledger=registry.LEDGER_CNY, code=1)])
    assert funded is CreateTransferResult.ok
    return World(ledger, banks, operator_account, payer_account, cards)
