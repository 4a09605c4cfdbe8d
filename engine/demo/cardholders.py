"""Step 2: synthetic cardholders, registered for disbursement and enrolled for transit.

People come from :class:`engine.synthetic.Population` (valid GB 11643 numbers on real
Sichuan county codes, Luhn-valid card numbers on real Sichuan BINs, seniors, students,
disabled riders, some lost or closed cards), restricted to the partner banks' cards and
interleaved by bank so card ``i`` is issued by bank ``i % 3`` (the gate simulator gives
card ``i`` scheme ``i % 3``: one scheme and key per bank).
"""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import Callable, Sequence

from engine.disbursement.registry import Category, CardholderRow, CardStatus, ImportResult
from engine.disbursement.store import DisbursementStore
from engine.synthetic import Person, Population
from engine.taps import store
from engine.taps.enrolment import enrol_card
from ledger.ids import new_id

from engine.demo.world import World

ENROL_CONCURRENCY = 8
IMPORT_CHUNK = 500
# Registry categories -> the fare rules' entitlements (engine/fares/data/rider_rules.toml).
ENTITLEMENTS = {Category.disabled: "disability", Category.student: "student"}
DENY_REASON = {CardStatus.lost: "lost", CardStatus.closed: "closed"}


def draw(count: int, banks: Sequence[str], seed: int) -> list[Person]:
    """``count`` people holding cards of ``banks``, interleaved by bank (round robin).

    >>> people = draw(6, ["ICBC", "CCB", "ABC"], seed=3)
    >>> [person.bank_code for person in people]
    ['ICBC', 'CCB', 'ABC', 'ICBC', 'CCB', 'ABC']
    """
    per_bank: dict[str, list[Person]] = {code: [] for code in banks}
    wanted = {code: count // len(banks) + (index < count % len(banks)) for index, code in enumerate(banks)}
    for person in Population(seed).people(count * 20):
        holders = per_bank.get(person.bank_code)
        if holders is not None and len(holders) < wanted[person.bank_code]:
            holders.append(person)
            if all(len(per_bank[code]) == wanted[code] for code in banks):
                break
    return [per_bank[banks[index % len(banks)]][index // len(banks)] for index in range(count)]


async def register(world: World, people: Sequence[Person], on_progress: Callable[[int], None]) -> dict[str, str]:
    """Import ``people`` into the disbursement registry and enrol their cards for transit
    (lost and closed cards go on the deny list); return card tokens by PAN."""
    disbursement = DisbursementStore(world.pool, world.key_service)
    for start in range(0, len(people), IMPORT_CHUNK):
        chunk = people[start:start + IMPORT_CHUNK]
        await disbursement.import_cardholders(
            CardholderRow(start + line, ImportResult.ok, "", person.id_number, person.name, person.card_number,
                          person.bank_code, person.status, person.categories)
            for line, person in enumerate(chunk, start=1))
    tokens: dict[str, str] = {}
    semaphore = asyncio.Semaphore(ENROL_CONCURRENCY)

    async def enrol(person: Person) -> None:
        async with semaphore:
            token = await enrol_card(world.pool, world.ledger, world.key_service, pan=person.card_number,
                                     account_id=new_id(), bank_code=person.bank_code,
                                     birth_date=birth_date(person),
                                     entitlements=[ENTITLEMENTS[c] for c in person.categories if c in ENTITLEMENTS])
            tokens[person.card_number] = token
            if person.status in DENY_REASON:
                async with world.pool.acquire() as connection:
                    await store.deny(connection, token, DENY_REASON[person.status])
        on_progress(1)

    await asyncio.gather(*(enrol(person) for person in people))
    return tokens


def birth_date(person: Person) -> datetime.date:
    """The birth date in a person's identity number (GB 11643 digits 7-14).

    >>> birth_date(Person("51010719500101001X", "", "", "", CardStatus.active, frozenset()))
    datetime.date(1950, 1, 1)
    """
    digits = person.id_number[6:14]
    return datetime.date(int(digits[:4]), int(digits[4:6]), int(digits[6:]))


async def deny(world: World, tokens: Sequence[str], reason: str) -> None:
    """Put ``tokens`` on the deny list for ``reason``."""
    async with world.pool.acquire() as connection:
        for token in tokens:
            await store.deny(connection, token, reason)
