"""``onecard audit``: recheck the ledger's invariants from its stored rows.

Checks, all in one REPEATABLE READ snapshot:

1. ``debits_equal_credits`` -- per ledger (currency), the sums of ``debits_posted`` and
   ``credits_posted`` are equal, and so are those of ``debits_pending`` and
   ``credits_pending``;
2. ``balances_match_transfers`` -- each account's four balances equal the sums of its
   transfers (posted: plain transfers and posts; pending: pending transfers not yet
   posted, voided or expired), and no transfer names a missing account;
3. ``limits_respected`` -- no ``debits_must_not_exceed_credits`` account has
   debits_pending + debits_posted > credits_posted, nor the mirror for credits;
4. ``hash_chain_intact`` -- every journal batch's hash equals
   SHA-256(prev_hash || kind || its rows) (see :mod:`ledger.journal`), each batch links
   to the previous one, the batches cover every account, transfer and expiry row
   exactly once, and the head names the last batch.

Sums are computed as PostgreSQL ``numeric`` so they cannot overflow.
"""

from __future__ import annotations

import msgspec
import asyncpg

from ledger.journal import GENESIS_HASH, RECORDERS, JournalKind, batch_hash

_SAMPLE_MAX = 5

_UNBALANCED_LEDGERS = """
SELECT ledger, sum(debits_posted)::text, sum(credits_posted)::text,
       sum(debits_pending)::text, sum(credits_pending)::text
FROM ledger_accounts GROUP BY ledger
HAVING sum(debits_posted) <> sum(credits_posted) OR sum(debits_pending) <> sum(credits_pending)
ORDER BY ledger"""

_BALANCE_MISMATCHES = """
WITH open_pending AS (
    SELECT t.debit_account_id, t.credit_account_id, t.amount FROM ledger_transfers t
    WHERE t.flags & 2 <> 0
      AND NOT EXISTS (SELECT 1 FROM ledger_transfers r WHERE r.pending_id = t.id AND r.flags & 12 <> 0)
      AND NOT EXISTS (SELECT 1 FROM ledger_expiries e WHERE e.pending_id = t.id)
), posted AS (
    SELECT debit_account_id, credit_account_id, amount FROM ledger_transfers WHERE flags & 10 = 0
), entries AS (
    SELECT debit_account_id AS id, amount::numeric AS dp, 0::numeric AS dpo, 0::numeric AS cp, 0::numeric AS cpo
    FROM open_pending
    UNION ALL SELECT credit_account_id, 0, 0, amount, 0 FROM open_pending
    UNION ALL SELECT debit_account_id, 0, amount, 0, 0 FROM posted
    UNION ALL SELECT credit_account_id, 0, 0, 0, amount FROM posted
), sums AS (
    SELECT id, sum(dp) AS dp, sum(dpo) AS dpo, sum(cp) AS cp, sum(cpo) AS cpo FROM entries GROUP BY id
)
SELECT coalesce(a.id, s.id) AS id, a.id IS NULL AS missing,
       ARRAY[a.debits_pending, a.debits_posted, a.credits_pending, a.credits_posted]::text AS stored,
       ARRAY[coalesce(s.dp, 0), coalesce(s.dpo, 0), coalesce(s.cp, 0), coalesce(s.cpo, 0)]::text AS summed
FROM ledger_accounts a FULL JOIN sums s ON s.id = a.id
WHERE a.id IS NULL
   OR (a.debits_pending, a.debits_posted, a.credits_pending, a.credits_posted)
      IS DISTINCT FROM (coalesce(s.dp, 0), coalesce(s.dpo, 0), coalesce(s.cp, 0), coalesce(s.cpo, 0))
ORDER BY 1"""

_LIMIT_BREACHES = """
SELECT id, flags, debits_pending, debits_posted, credits_pending, credits_posted FROM ledger_accounts
WHERE (flags & 2 <> 0 AND debits_pending::numeric + debits_posted > credits_posted)
   OR (flags & 4 <> 0 AND credits_pending::numeric + credits_posted > debits_posted)
ORDER BY id"""

_JOURNAL_ROWS = {
    JournalKind.accounts: "SELECT id, debits_pending, debits_posted, credits_pending, credits_posted, "
    "user_data_128, user_data_64, user_data_32, ledger, code, flags, timestamp "
    "FROM ledger_accounts ORDER BY timestamp",
    JournalKind.transfers: "SELECT id, debit_account_id, credit_account_id, amount, pending_id, user_data_128, "
    "user_data_64, user_data_32, timeout_s, ledger, code, flags, timestamp "
    "FROM ledger_transfers ORDER BY timestamp",
    JournalKind.expiries: "SELECT pending_id, timestamp FROM ledger_expiries ORDER BY timestamp",
}


class Check(msgspec.Struct, frozen=True):
    """One audited invariant: ``name``, whether it holds, what was examined, breaches."""

    name: str
    ok: bool
    examined: str
    breaches: list[str]


class AuditReport(msgspec.Struct, frozen=True):
    """All checks of one audit; ``ok`` when every check holds."""

    ok: bool
    checks: list[Check]


async def audit(connection: asyncpg.Connection) -> AuditReport:
    """Run every check on ``connection`` in one read-only snapshot; never raises on a breach.

    The report lists at most a few sample breaches per check (ids in hex).
    """
    async with connection.transaction(isolation="repeatable_read", readonly=True):
        checks = [
            await _debits_equal_credits(connection),
            await _balances_match_transfers(connection),
            await _limits_respected(connection),
            await _hash_chain_intact(connection),
        ]
    return AuditReport(ok=all(check.ok for check in checks), checks=checks)


def _check(name: str, examined: str, breaches: list[str]) -> Check:
    shown = breaches[:_SAMPLE_MAX]
    if len(breaches) > _SAMPLE_MAX:
        shown.append(f"... and {len(breaches) - _SAMPLE_MAX} more")
    return Check(name=name, ok=not breaches, examined=examined, breaches=shown)


async def _debits_equal_credits(connection: asyncpg.Connection) -> Check:
    ledgers = await connection.fetchval("SELECT count(DISTINCT ledger) FROM ledger_accounts")
    rows = await connection.fetch(_UNBALANCED_LEDGERS)
    breaches = [
        f"ledger {r[0]}: debits_posted {r[1]} != credits_posted {r[2]} or debits_pending {r[3]} != credits_pending {r[4]}"
        for r in rows
    ]
    return _check("debits_equal_credits", f"{ledgers} ledgers", breaches)


async def _balances_match_transfers(connection: asyncpg.Connection) -> Check:
    accounts = await connection.fetchval("SELECT count(*) FROM ledger_accounts")
    transfers = await connection.fetchval("SELECT count(*) FROM ledger_transfers")
    breaches = []
    for row in await connection.fetch(_BALANCE_MISMATCHES):
        if row["missing"]:
            breaches.append(f"transfers name missing account {row['id'].hex()}")
        else:
            breaches.append(f"account {row['id'].hex()}: stored {row['stored']} != summed {row['summed']}")
    return _check("balances_match_transfers", f"{accounts} accounts against {transfers} transfers", breaches)


async def _limits_respected(connection: asyncpg.Connection) -> Check:
    limited = await connection.fetchval("SELECT count(*) FROM ledger_accounts WHERE flags & 6 <> 0")
    breaches = [
        f"account {r['id'].hex()} (flags {r['flags']}): debits {r['debits_pending']}+{r['debits_posted']}, "
        f"credits {r['credits_pending']}+{r['credits_posted']}"
        for r in await connection.fetch(_LIMIT_BREACHES)
    ]
    return _check("limits_respected", f"{limited} accounts with a balance limit", breaches)


async def _hash_chain_intact(connection: asyncpg.Connection) -> Check:
    journal = await connection.fetch(
        "SELECT sequence, kind, timestamp_first, timestamp_last, prev_hash, hash FROM ledger_journal ORDER BY sequence"
    )
    head = await connection.fetchrow("SELECT sequence, timestamp_last, hash FROM ledger_head")
    streams = {kind: connection.cursor(sql, prefetch=4096).__aiter__() for kind, sql in _JOURNAL_ROWS.items()}
    # Both kinds of transfer batch cover rows of ledger_transfers, in one timestamp order.
    streams[JournalKind.transfers_digest] = streams[JournalKind.transfers]
    breaches: list[str] = []
    previous, rows_checked = GENESIS_HASH, 0
    for expected_sequence, batch in enumerate(journal, start=1):
        label = f"batch {batch['sequence']}"
        if batch["sequence"] != expected_sequence:
            breaches.append(f"{label}: expected sequence {expected_sequence}")
        if batch["prev_hash"] != previous:
            breaches.append(f"{label}: prev_hash does not match the previous batch's hash")
        kind = JournalKind(batch["kind"])
        count = batch["timestamp_last"] - batch["timestamp_first"] + 1
        rows = [tuple(row) for row in await _take(streams[kind], count)]
        rows_checked += len(rows)
        stamps = [row[-1] for row in rows]
        if stamps != list(range(batch["timestamp_first"], batch["timestamp_last"] + 1)):
            breaches.append(f"{label}: {kind.name} rows do not fill timestamps {batch['timestamp_first']}..{batch['timestamp_last']}")
        if batch_hash(batch["prev_hash"], kind, rows) != batch["hash"]:
            breaches.append(f"{label}: hash mismatch ({kind.name} rows changed)")
        previous = batch["hash"]
    for kind in _JOURNAL_ROWS:
        extra = await _take(streams[kind], 1)
        if extra:
            breaches.append(f"{kind.name} row with timestamp {extra[0][-1]} is in no journal batch")
    if head["sequence"] != len(journal) or head["hash"] != previous:
        breaches.append(f"head (sequence {head['sequence']}) does not name the last journal batch")
    assert set(_JOURNAL_ROWS) == set(RECORDERS)
    return _check("hash_chain_intact", f"{len(journal)} journal batches covering {rows_checked} rows", breaches)


async def _take(stream, count: int) -> list:
    rows = []
    while len(rows) < count:
        try:
            rows.append(await stream.__anext__())
        except StopAsyncIteration:
            break
    return rows
