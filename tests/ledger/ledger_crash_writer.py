"""Load generator for the crash test: writes transfers forever, printing each acknowledged id.

Run as ``python ledger_crash_writer.py DATABASE_URL``; prints ``ready`` once set up, then
``ack <id>`` for every transfer whose result came back ``ok`` (after its commit).
"""

import asyncio
import itertools
import sys

from ledger import db
from ledger.batcher import GroupCommitBatcher
from ledger.results import CreateTransferResult
from ledger.service import Ledger
from ledger.types import Account, Transfer

WRITERS = 4


async def main(url: str) -> None:
    pool = await db.create_pool(url, size_max=8)
    ledger = Ledger(pool)
    await ledger.create_accounts([Account(id=i, ledger=1, code=1) for i in (1, 2, 3)])
    print("ready", flush=True)
    ids = itertools.count(10_000)

    async def batches() -> None:
        while True:
            batch = [Transfer(id=next(ids), debit_account_id=1 + k % 2, credit_account_id=3, amount=1 + k, ledger=1, code=1)
                     for k in range(50)]
            results = await ledger.create_transfers(batch)
            acked = [str(t.id) for t, r in zip(batch, results) if r == CreateTransferResult.ok]
            sys.stdout.write("".join(f"ack {i}\n" for i in acked))
            sys.stdout.flush()

    async def single(batcher: GroupCommitBatcher) -> None:
        while True:
            transfer = Transfer(id=next(ids), debit_account_id=2, credit_account_id=1, amount=7, ledger=1, code=1)
            if await batcher.submit(transfer) == CreateTransferResult.ok:
                print(f"ack {transfer.id}", flush=True)

    batcher = GroupCommitBatcher(ledger, flush_delay_ms=1)
    await asyncio.gather(*(batches() for _ in range(WRITERS)), *(single(batcher) for _ in range(20)))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
