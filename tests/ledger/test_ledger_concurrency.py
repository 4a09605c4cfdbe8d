"""Many tasks on many connections hammering a few hot, limited accounts.

No limit is crossed, no deadlock or serialization error reaches a caller, and every
transfer applies exactly once (balances equal the sum of the ``ok`` results).
"""

import asyncio
import random

from ledger.audit import audit
from ledger.batcher import GroupCommitBatcher
from ledger.results import CreateTransferResult as R
from ledger.service import Ledger
from ledger.types import Account, AccountFlags as AF, Transfer, TransferFlags as F

HOT = [1, 2, 3]
SINKS = [10, 11]
BANK = 99
TASKS = 24
ROUNDS = 8


async def test_hot_accounts_under_concurrent_batches(pool):
    ledger = Ledger(pool)
    accounts = [Account(id=i, ledger=1, code=1, flags=AF.debits_must_not_exceed_credits) for i in HOT]
    accounts += [Account(id=i, ledger=1, code=1) for i in [*SINKS, BANK]]
    await ledger.create_accounts(accounts)
    await ledger.create_transfers([Transfer(id=1000 + i, debit_account_id=BANK, credit_account_id=i, amount=500,
                                            ledger=1, code=1) for i in HOT])
    sent: dict[int, Transfer] = {}
    outcomes: dict[int, list[R]] = {}

    async def worker(seed: int) -> None:
        rng = random.Random(seed)
        if seed == 0:
            # More than a hot account can ever hold (its 500 plus every amount sent): refused
            # while the others run, whatever order the random transfers took.
            overdraft = Transfer(id=10**5, debit_account_id=HOT[0], credit_account_id=SINKS[0], amount=10**6,
                                 ledger=1, code=1)
            sent[overdraft.id] = overdraft
            outcomes[overdraft.id] = await ledger.create_transfers([overdraft])
        for round in range(ROUNDS):
            batch = []
            for k in range(rng.randint(1, 6)):
                debit, credit = rng.sample(HOT + SINKS, 2)
                flags = F.linked if k < 2 and rng.random() < 0.3 else 0
                transfer = Transfer(id=(seed * 1000 + round) * 10 + k + 10**6, debit_account_id=debit,
                                    credit_account_id=credit, amount=rng.randint(1, 60), ledger=1, code=1, flags=flags)
                batch.append(transfer)
            if batch[-1].flags & F.linked:
                batch[-1] = Transfer(**{**{f: getattr(batch[-1], f) for f in batch[-1].__struct_fields__}, "flags": 0})
            # Every batch is sent twice at once: the id makes the second one a no-op.
            first, second = await asyncio.gather(ledger.create_transfers(batch), ledger.create_transfers(batch))
            for transfer, a, b in zip(batch, first, second):
                sent[transfer.id] = transfer
                outcomes[transfer.id] = [a, b]

    await asyncio.gather(*(worker(seed) for seed in range(TASKS)))
    applied = {tid for tid, results in outcomes.items() if R.ok in results}
    for tid, results in outcomes.items():
        assert results.count(R.ok) <= 1, (tid, results)
        # The other copy answers exists, linked_event_failed (a chain whose first member
        # exists) or a transient failure such as exceeds_credits if it ran first.
    stored = {t.id for t in await ledger.lookup_transfers(sorted(outcomes)[:8000])}
    assert stored == {tid for tid in sorted(outcomes)[:8000] if tid in applied}
    balances = {a.id: a for a in await ledger.lookup_accounts(HOT + SINKS)}
    for account_id in HOT + SINKS:
        debits = sum(sent[t].amount for t in applied if sent[t].debit_account_id == account_id)
        credits = sum(sent[t].amount for t in applied if sent[t].credit_account_id == account_id)
        credits += 500 if account_id in HOT else 0
        assert (balances[account_id].debits_posted, balances[account_id].credits_posted) == (debits, credits)
        if account_id in HOT:
            assert debits <= credits
    assert outcomes[10**5] == [R.exceeds_credits]  # the limit bites under concurrent writers
    async with pool.acquire() as connection:
        assert (await audit(connection)).ok


async def test_batcher_under_concurrent_submitters(pool):
    ledger = Ledger(pool)
    await ledger.create_accounts([Account(id=1, ledger=1, code=1, flags=AF.debits_must_not_exceed_credits),
                                  Account(id=2, ledger=1, code=1)])
    await ledger.create_transfers([Transfer(id=5, debit_account_id=2, credit_account_id=1, amount=300, ledger=1, code=1)])
    flushes: list[int] = []
    async with GroupCommitBatcher(ledger, flush_size_max=64, flush_delay_ms=5,
                                  on_flush=lambda size, seconds: flushes.append(size)) as batcher:
        results = await asyncio.gather(*(
            batcher.submit(Transfer(id=100 + k, debit_account_id=1, credit_account_id=2, amount=1, ledger=1, code=1))
            for k in range(400)))
    assert results.count(R.ok) == 300 and results.count(R.exceeds_credits) == 100
    assert sum(flushes) == 400 and len(flushes) < 400 and max(flushes) <= 64
    [account] = await ledger.lookup_accounts([1])
    assert (account.debits_posted, account.credits_posted) == (300, 300)


async def test_racing_posts_and_voids_resolve_each_pending_once(pool):
    ledger = Ledger(pool)
    await ledger.create_accounts([Account(id=i, ledger=1, code=1) for i in (1, 2, 3, 4)])
    holds = [Transfer(id=100 + k, debit_account_id=1 + k % 2, credit_account_id=3 + k % 2, amount=10, ledger=1, code=1,
                      flags=F.pending) for k in range(20)]
    # Creating the holds races with the posts and voids that name them.
    resolutions = [Transfer(id=1000 + 10 * k + j, pending_id=100 + k, amount=0,
                            flags=F.post_pending_transfer if j % 2 else F.void_pending_transfer)
                   for k in range(20) for j in range(4)]
    random.Random(3).shuffle(resolutions)
    calls = [ledger.create_transfers([t]) for t in resolutions] + [ledger.create_transfers(holds)]
    outcomes = await asyncio.gather(*calls)
    assert outcomes[-1] == [R.ok] * 20
    ok = [t for t, [r] in zip(resolutions, outcomes) if r == R.ok]
    assert len({t.pending_id for t in ok}) == len(ok)  # never two resolutions of one hold
    late = [Transfer(id=5000 + k, pending_id=100 + k, amount=0, flags=F.void_pending_transfer) for k in range(20)]
    await ledger.create_transfers(late)
    accounts = await ledger.lookup_accounts([1, 2, 3, 4])
    assert all(a.debits_pending == a.credits_pending == 0 for a in accounts)
    async with pool.acquire() as connection:
        assert (await audit(connection)).ok
