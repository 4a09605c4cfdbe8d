"""The ledger store: TigerBeetle-style accounts and transfers on PostgreSQL (asyncpg).

:class:`Ledger` is the one place that reads and writes the ledger tables. A
``create_transfers`` call runs as one transaction:

1. lock every account the batch names (and the accounts of the pending transfers it
   posts or voids) with ``SELECT ... ORDER BY id FOR UPDATE`` -- always in id order, so
   two batches cannot deadlock on accounts;
2. fetch the existing transfers whose ids the batch uses (idempotency, pending lookups);
3. decide every item in memory (:mod:`ledger.posting`);
4. if anything was created: lock the journal head, assign strictly increasing
   nanosecond timestamps, hash the batch into the journal chain, and write transfers,
   balances, pending states, history rows, the journal row and the new head in ONE
   statement; commit (``synchronous_commit`` stays on, so returned = durable).

Because the head row stays locked until commit, timestamps increase in commit order: a
reader that sees a transfer with timestamp ``T`` also sees every transfer below ``T``,
so a timestamp is a consistent cut (used by settlement cycles).

Serialization failures, deadlocks and id races (two batches inserting the same new id)
are retried up to ``RETRY_MAX`` times, in a savepoint when the call runs inside the
caller's transaction (``connection=``). Caller transactions must use READ COMMITTED.

What it cannot do: a caller's transaction holds the journal head from its first write
until it commits, so a long caller transaction (a large disbursement) delays every other
writer until then; and a second write in such a transaction locks accounts after the
head, which can deadlock with a concurrent writer (retried here, then
:class:`ledger.errors.ConflictError`).
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import Awaitable, Callable, Sequence, TypeVar

import asyncpg

from ledger.errors import ConflictError, InvalidRequestError
from ledger.journal import JournalKind, batch_hash
from ledger.limits import BATCH_MAX, LOOKUP_MAX, NANOSECONDS_PER_SECOND, RETRY_MAX
from ledger.posting import AccountBatch, AccountState, PendingStatus, TransferBatch
from ledger.results import CreateAccountResult, CreateTransferResult
from ledger.types import (
    Account,
    AccountBalance,
    AccountFilter,
    AccountFilterFlags,
    Transfer,
    check_batch,
)

T = TypeVar("T")

_RETRYABLE = (
    asyncpg.exceptions.SerializationError,
    asyncpg.exceptions.DeadlockDetectedError,
    asyncpg.exceptions.UniqueViolationError,
)
_U64_SIGN = 2**63
_U64_WRAP = 2**64

_ACCOUNT_COLUMNS = ("id, debits_pending, debits_posted, credits_pending, credits_posted, "
                    "user_data_128, user_data_64, user_data_32, ledger, code, flags, timestamp")
_TRANSFER_COLUMNS = ("id, debit_account_id, credit_account_id, amount, pending_id, user_data_128, "
                     "user_data_64, user_data_32, timeout_s, ledger, code, flags, timestamp")

_LOCK_ACCOUNTS = """
SELECT id, ledger, flags, debits_pending, debits_posted, credits_pending, credits_posted
FROM ledger_accounts
WHERE id = ANY($1::bytea[])
   OR id IN (SELECT debit_account_id FROM ledger_transfers WHERE id = ANY($2::bytea[]))
   OR id IN (SELECT credit_account_id FROM ledger_transfers WHERE id = ANY($2::bytea[]))
ORDER BY id
FOR UPDATE"""

_TRANSFER_COLUMN_NAMES = tuple(column.strip() for column in _TRANSFER_COLUMNS.split(","))
_TRANSFER_COLUMNS_T = ", ".join("t." + column.strip() for column in _TRANSFER_COLUMNS.split(","))

_FETCH_TRANSFERS = f"""
SELECT {_TRANSFER_COLUMNS_T}, p.status, p.expires_at_ns
FROM ledger_transfers t LEFT JOIN ledger_pending p ON p.id = t.id
WHERE t.id = ANY($1::bytea[])"""

_LOCK_HEAD = "SELECT sequence, timestamp_last, hash FROM ledger_head FOR UPDATE"

_JOURNAL_AND_HEAD = """
journal AS (
    INSERT INTO ledger_journal (sequence, kind, timestamp_first, timestamp_last, prev_hash, hash)
    VALUES ($1, $2, $3, $4, $5, $6)
)
UPDATE ledger_head SET sequence = $1, timestamp_last = $4, hash = $6"""

_WRITE_TRANSFERS = f"""
WITH accounts AS (
    UPDATE ledger_accounts a
    SET flags = u.flags, debits_pending = u.debits_pending, debits_posted = u.debits_posted,
        credits_pending = u.credits_pending, credits_posted = u.credits_posted
    FROM unnest($7::bytea[], $8::int4[], $9::int8[], $10::int8[], $11::int8[], $12::int8[])
        AS u(id, flags, debits_pending, debits_posted, credits_pending, credits_posted)
    WHERE a.id = u.id
),
pending AS (
    INSERT INTO ledger_pending (id, status, expires_at_ns)
    SELECT * FROM unnest($13::bytea[], $14::int2[], $15::int8[])
    ON CONFLICT (id) DO UPDATE SET status = EXCLUDED.status
),
history AS (
    INSERT INTO ledger_account_balances
        (account_id, timestamp, debits_pending, debits_posted, credits_pending, credits_posted)
    SELECT * FROM unnest($16::bytea[], $17::int8[], $18::int8[], $19::int8[], $20::int8[], $21::int8[])
),
{_JOURNAL_AND_HEAD}"""

_WRITE_ACCOUNTS = f"""
WITH accounts AS (
    INSERT INTO ledger_accounts ({_ACCOUNT_COLUMNS})
    SELECT * FROM unnest($7::bytea[], $8::int8[], $9::int8[], $10::int8[], $11::int8[],
        $12::bytea[], $13::int8[], $14::int8[], $15::int8[], $16::int4[], $17::int4[], $18::int8[])
),
{_JOURNAL_AND_HEAD}"""

_WRITE_EXPIRIES = f"""
WITH expiries AS (
    INSERT INTO ledger_expiries (pending_id, timestamp) SELECT * FROM unnest($7::bytea[], $8::int8[])
),
accounts AS (
    UPDATE ledger_accounts a
    SET flags = u.flags, debits_pending = u.debits_pending, credits_pending = u.credits_pending
    FROM unnest($9::bytea[], $10::int4[], $11::int8[], $12::int8[])
        AS u(id, flags, debits_pending, credits_pending)
    WHERE a.id = u.id
),
pending AS (
    UPDATE ledger_pending p SET status = 4 FROM unnest($7::bytea[]) AS u(id) WHERE p.id = u.id
),
{_JOURNAL_AND_HEAD}"""

_DUE_EXPIRIES = """
SELECT p.id, t.debit_account_id, t.credit_account_id FROM ledger_pending p
JOIN ledger_transfers t ON t.id = p.id
WHERE p.status = 1 AND p.expires_at_ns > 0 AND p.expires_at_ns <= $1
ORDER BY p.expires_at_ns LIMIT $2"""


def id_bytes(value: int) -> bytes:
    """The 16-byte big-endian form of a 128-bit id, as stored (``bytea``).

    >>> id_bytes(1).hex()
    '00000000000000000000000000000001'
    """
    return value.to_bytes(16, "big")


def _int(value: bytes) -> int:
    return int.from_bytes(value, "big")


def _signed64(value: int) -> int:
    return value - _U64_WRAP if value >= _U64_SIGN else value


def _unsigned64(value: int) -> int:
    return value + _U64_WRAP if value < 0 else value


def _transfer_row(t: Transfer, timestamp: int) -> tuple:
    return (
        t.id.to_bytes(16, "big"), t.debit_account_id.to_bytes(16, "big"),
        t.credit_account_id.to_bytes(16, "big"), t.amount, t.pending_id.to_bytes(16, "big"),
        t.user_data_128.to_bytes(16, "big"), _signed64(t.user_data_64), int(t.user_data_32), t.timeout_s,
        int(t.ledger), int(t.code), int(t.flags), timestamp,
    )


def _transfer_from_row(row: Sequence) -> Transfer:
    return Transfer(
        id=_int(row[0]), debit_account_id=_int(row[1]), credit_account_id=_int(row[2]), amount=row[3],
        pending_id=_int(row[4]), user_data_128=_int(row[5]), user_data_64=_unsigned64(row[6]),
        user_data_32=row[7], timeout_s=row[8], ledger=row[9], code=row[10], flags=row[11],
        timestamp=row[12],
    )


def _account_row(a: Account, timestamp: int) -> tuple:
    return (
        id_bytes(a.id), 0, 0, 0, 0, id_bytes(a.user_data_128), _signed64(a.user_data_64),
        int(a.user_data_32), int(a.ledger), int(a.code), int(a.flags), timestamp,
    )


def _account_from_row(row: Sequence) -> Account:
    return Account(
        id=_int(row[0]), debits_pending=row[1], debits_posted=row[2], credits_pending=row[3],
        credits_posted=row[4], user_data_128=_int(row[5]), user_data_64=_unsigned64(row[6]),
        user_data_32=row[7], ledger=row[8], code=row[9], flags=row[10], timestamp=row[11],
    )


def _columns(rows: list[tuple], width: int) -> list[list]:
    if not rows:
        return [[] for _ in range(width)]
    columns = [list(column) for column in zip(*rows)]
    assert len(columns) == width
    return columns


class Ledger:
    """Accounts and transfers with TigerBeetle semantics, stored in PostgreSQL.

    Parameters
    ----------
    pool : asyncpg.Pool
        Connections to a database migrated with :func:`ledger.db.migrate`.

    Every ``create_*`` call takes a list of at most ``BATCH_MAX`` (8,189) items and
    returns one result per item, in the same order. With ``connection=`` the call runs
    inside that connection's open transaction (in a savepoint) and commits with it;
    otherwise it commits its own transaction before returning.
    """

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def create_accounts(
        self, accounts: Sequence[Account], *, connection: asyncpg.Connection | None = None
    ) -> list[CreateAccountResult]:
        """Create accounts; one :class:`CreateAccountResult` per account.

        Raises
        ------
        InvalidRequestError
            Not a list of :class:`Account`, more than ``BATCH_MAX`` items, a field out of
            range or an unknown flag (the message names ``accounts[i].field``).
        ConflictError
            Still conflicting with concurrent writers after ``RETRY_MAX`` retries.
        """
        check_batch("accounts", accounts, Account, BATCH_MAX)
        if not accounts:
            return []
        return await self._write(connection, lambda c: self._create_accounts(c, accounts))

    async def create_transfers(
        self, transfers: Sequence[Transfer], *, connection: asyncpg.Connection | None = None
    ) -> list[CreateTransferResult]:
        """Create transfers; one :class:`CreateTransferResult` per transfer.

        Raises
        ------
        InvalidRequestError
            Not a list of :class:`Transfer`, more than ``BATCH_MAX`` items, a field out of
            range or an unknown flag (the message names ``transfers[i].field``).
        ConflictError
            Still conflicting with concurrent writers after ``RETRY_MAX`` retries.
        """
        check_batch("transfers", transfers, Transfer, BATCH_MAX)
        if not transfers:
            return []
        return await self._write(connection, lambda c: self._create_transfers(c, transfers))

    async def expire_pending_transfers(
        self, *, now_ns: int | None = None, limit: int = BATCH_MAX
    ) -> int:
        """Release up to ``limit`` pending transfers whose timeout passed; return how many.

        The engine calls this periodically (e.g. every second); until then an expired
        pending transfer still holds its amount but answers
        ``pending_transfer_expired`` to a post or void.
        """
        assert 1 <= limit <= BATCH_MAX
        now = time.time_ns() if now_ns is None else now_ns
        return await self._write(None, lambda c: self._expire(c, now, limit))

    async def lookup_accounts(
        self, ids: Sequence[int], *, connection: asyncpg.Connection | None = None
    ) -> list[Account]:
        """The accounts with these ids that exist, in the order asked (missing ones skipped).

        Raises
        ------
        InvalidRequestError
            More than ``LOOKUP_MAX`` ids or an id that is not a 128-bit unsigned int.
        """
        keys = _id_keys("ids", ids)
        rows = await self._fetch(
            connection, f"SELECT {_ACCOUNT_COLUMNS} FROM ledger_accounts WHERE id = ANY($1::bytea[])", keys
        )
        found = {row[0]: row for row in rows}
        return [_account_from_row(found[key]) for key in keys if key in found]

    async def lookup_transfers(
        self, ids: Sequence[int], *, connection: asyncpg.Connection | None = None
    ) -> list[Transfer]:
        """The transfers with these ids that exist, in the order asked (missing ones skipped).

        Raises
        ------
        InvalidRequestError
            More than ``LOOKUP_MAX`` ids or an id that is not a 128-bit unsigned int.
        """
        keys = _id_keys("ids", ids)
        rows = await self._fetch(
            connection, f"SELECT {_TRANSFER_COLUMNS} FROM ledger_transfers WHERE id = ANY($1::bytea[])", keys
        )
        found = {row[0]: row for row in rows}
        return [_transfer_from_row(found[key]) for key in keys if key in found]

    async def get_account_transfers(
        self, filter: AccountFilter, *, connection: asyncpg.Connection | None = None
    ) -> list[Transfer]:
        """Transfers debiting and/or crediting ``filter.account_id``, by timestamp.

        Raises
        ------
        InvalidRequestError
            ``filter`` is not an :class:`AccountFilter` or a field is out of range.
        """
        sql, args = _filter_query(filter, f"SELECT {_TRANSFER_COLUMNS_T} FROM ledger_transfers t", transfers=True)
        return [_transfer_from_row(row) for row in await self._fetch(connection, sql, *args)]

    async def get_account_balances(
        self, filter: AccountFilter, *, connection: asyncpg.Connection | None = None
    ) -> list[AccountBalance]:
        """Balances of a ``history`` account after each of its transfers matching ``filter``.

        An account without the ``history`` flag has no rows (an empty list).

        Raises
        ------
        InvalidRequestError
            ``filter`` is not an :class:`AccountFilter` or a field is out of range.
        """
        select = (
            "SELECT b.debits_pending, b.debits_posted, b.credits_pending, b.credits_posted, b.timestamp "
            "FROM ledger_account_balances b JOIN ledger_transfers t ON t.timestamp = b.timestamp "
            "AND (t.debit_account_id = b.account_id OR t.credit_account_id = b.account_id)"
        )
        sql, args = _filter_query(filter, select, transfers=False)
        return [AccountBalance(*row) for row in await self._fetch(connection, sql, *args)]

    # -- store internals ------------------------------------------------------------

    async def _fetch(self, connection: asyncpg.Connection | None, sql: str, *args: object) -> list:
        if connection is not None:
            return await connection.fetch(sql, *args)
        async with self._pool.acquire() as acquired:
            return await acquired.fetch(sql, *args)

    async def _write(
        self, connection: asyncpg.Connection | None, work: Callable[[asyncpg.Connection], Awaitable[T]]
    ) -> T:
        for attempt in range(RETRY_MAX):
            try:
                if connection is not None:
                    async with connection.transaction():
                        return await work(connection)
                async with self._pool.acquire() as acquired, acquired.transaction():
                    return await work(acquired)
            except _RETRYABLE:
                # Back off a little, randomly, so the colliding writers do not meet again.
                await asyncio.sleep(random.uniform(0, 0.001 * 2**min(attempt, 6)))
        raise ConflictError(f"ledger write still conflicting after {RETRY_MAX} retries; retry later")

    async def _create_accounts(self, connection: asyncpg.Connection, accounts: Sequence[Account]) -> list:
        keys = list({id_bytes(a.id) for a in accounts if 0 < a.id})
        rows = await connection.fetch(
            f"SELECT {_ACCOUNT_COLUMNS} FROM ledger_accounts WHERE id = ANY($1::bytea[])", keys
        )
        batch = AccountBatch({_int(row[0]): _account_from_row(row) for row in rows})
        results = batch.run(accounts)
        if batch.created:
            head, first = await _lock_head(connection, len(batch.created))
            created = [_account_row(a, first + index) for index, a in enumerate(batch.created)]
            await connection.execute(
                _WRITE_ACCOUNTS, *_journal_args(head, JournalKind.accounts, first, created), *_columns(created, 12)
            )
        return results

    async def _create_transfers(self, connection: asyncpg.Connection, transfers: Sequence[Transfer]) -> list:
        account_keys: set[bytes] = set()
        pending_keys: set[bytes] = set()
        for t in transfers:
            account_keys.add(t.debit_account_id.to_bytes(16, "big"))
            account_keys.add(t.credit_account_id.to_bytes(16, "big"))
            if t.pending_id:
                pending_keys.add(t.pending_id.to_bytes(16, "big"))
        transfer_keys = pending_keys.union(t.id.to_bytes(16, "big") for t in transfers)
        account_rows = await connection.fetch(_LOCK_ACCOUNTS, sorted(account_keys), list(pending_keys))
        transfer_rows = await connection.fetch(_FETCH_TRANSFERS, list(transfer_keys))
        accounts = {}
        for row in account_rows:
            account_id = _int(row[0])
            accounts[account_id] = AccountState(account_id, *row[1:])
        existing: dict[int, Transfer] = {}
        pending: dict[int, tuple[PendingStatus, int]] = {}
        for row in transfer_rows:
            transfer = _transfer_from_row(row)
            existing[transfer.id] = transfer
            if row[13] is not None:
                pending[transfer.id] = (PendingStatus(row[13]), row[14])
        batch = TransferBatch(accounts, existing, pending, time.time_ns())
        results = batch.run(transfers)
        if not batch.created:
            return results
        head, first = await _lock_head(connection, len(batch.created))
        created = [_transfer_row(t, first + index) for index, t in enumerate(batch.created)]
        timestamps = {t.id: first + index for index, t in enumerate(batch.created)}
        touched = [
            (id_bytes(a.id), int(a.flags), a.debits_pending, a.debits_posted, a.credits_pending, a.credits_posted)
            for a in batch.touched.values()
        ]
        pending_rows = []
        for pending_id, status in batch.pending_changes.items():
            # Only a pending transfer created in this batch needs its expiry; for one created
            # earlier the upsert keeps the stored expiry and changes the status alone.
            timeout_s = batch.transfers[pending_id].timeout_s
            created_at = timestamps.get(pending_id)
            expires = created_at + timeout_s * NANOSECONDS_PER_SECOND if created_at and timeout_s else 0
            pending_rows.append((id_bytes(pending_id), int(status), expires))
        history = [(id_bytes(row[0]), first + row[1], *row[2:]) for row in batch.history]
        # Binary COPY encodes rows without asyncpg's per-element array checks: the bulk
        # of a batch goes this way, the rest (balances, states, journal) in one statement.
        await connection.copy_records_to_table("ledger_transfers", records=created, columns=_TRANSFER_COLUMN_NAMES)
        await connection.execute(
            _WRITE_TRANSFERS,
            *_journal_args(head, JournalKind.transfers, first, created),
            *_columns(touched, 6), *_columns(pending_rows, 3), *_columns(history, 6),
        )
        return results

    async def _expire(self, connection: asyncpg.Connection, now_ns: int, limit: int) -> int:
        due = await connection.fetch(_DUE_EXPIRIES, now_ns, limit)
        if not due:
            return 0
        account_keys = sorted({row[1] for row in due} | {row[2] for row in due})
        pending_keys = [row[0] for row in due]
        account_rows = await connection.fetch(_LOCK_ACCOUNTS, account_keys, [])
        transfer_rows = await connection.fetch(_FETCH_TRANSFERS, pending_keys)
        accounts = {_int(row[0]): AccountState(_int(row[0]), *row[1:]) for row in account_rows}
        existing = {_int(row[0]): _transfer_from_row(row) for row in transfer_rows}
        pending = {_int(row[0]): (PendingStatus(row[13]), row[14]) for row in transfer_rows}
        batch = TransferBatch(accounts, existing, pending, now_ns)
        expired = [pending_id for pending_id in sorted(existing) if batch.expire(pending_id)]
        if not expired:
            return 0
        head, first = await _lock_head(connection, len(expired))
        rows = [(id_bytes(pending_id), first + index) for index, pending_id in enumerate(expired)]
        touched = [(id_bytes(a.id), int(a.flags), a.debits_pending, a.credits_pending) for a in batch.touched.values()]
        await connection.execute(
            _WRITE_EXPIRIES, *_journal_args(head, JournalKind.expiries, first, rows),
            *_columns(rows, 2), *_columns(touched, 4),
        )
        return len(expired)


async def _lock_head(connection: asyncpg.Connection, count: int) -> tuple[asyncpg.Record, int]:
    """Lock the journal head; return it and the first of ``count`` fresh timestamps."""
    assert count >= 1
    head = await connection.fetchrow(_LOCK_HEAD)
    first = max(time.time_ns(), head["timestamp_last"] + 1)
    return head, first


def _journal_args(head: asyncpg.Record, kind: JournalKind, first: int, rows: list[tuple]) -> tuple:
    digest = batch_hash(head["hash"], kind, rows)
    return (head["sequence"] + 1, int(kind), first, first + len(rows) - 1, head["hash"], digest)


def _id_keys(name: str, ids: Sequence[int]) -> list[bytes]:
    if not isinstance(ids, (list, tuple)):
        raise InvalidRequestError(f"{name}: must be a list, got {type(ids).__name__}")
    if len(ids) > LOOKUP_MAX:
        raise InvalidRequestError(f"{name}: at most {LOOKUP_MAX} ids per call, got {len(ids)}")
    for index, value in enumerate(ids):
        if type(value) is not int or not 0 <= value < 2**128:
            raise InvalidRequestError(f"{name}[{index}]: must be a 128-bit unsigned int, got {value!r}")
    return [id_bytes(value) for value in ids]


def _filter_query(filter: AccountFilter, select: str, *, transfers: bool) -> tuple[str, list]:
    if type(filter) is not AccountFilter:
        raise InvalidRequestError(f"filter: must be AccountFilter, got {type(filter).__name__}")
    _id_keys("filter.account_id", [filter.account_id])
    if not 1 <= filter.limit <= LOOKUP_MAX:
        raise InvalidRequestError(f"filter.limit: must be in 1..{LOOKUP_MAX}, got {filter.limit!r}")
    if filter.flags & ~0b111:
        raise InvalidRequestError(f"filter.flags: unknown flag bits {filter.flags & ~0b111:#x}")
    account = id_bytes(filter.account_id)
    debits = bool(filter.flags & AccountFilterFlags.debits)
    credits = bool(filter.flags & AccountFilterFlags.credits)
    args: list = [account]
    sides = []
    if debits:
        sides.append("t.debit_account_id = $1")
    if credits:
        sides.append("t.credit_account_id = $1")
    if not sides:
        raise InvalidRequestError("filter.flags: must select debits, credits or both")
    where = [f"({' OR '.join(sides)})"]
    if not transfers:
        where.append("b.account_id = $1")
    for column, value, encode in (
        ("timestamp_min", filter.timestamp_min, None),
        ("timestamp_max", filter.timestamp_max, None),
        ("user_data_128", filter.user_data_128, id_bytes),
        ("user_data_64", filter.user_data_64, _signed64),
        ("user_data_32", filter.user_data_32, None),
        ("code", filter.code, None),
    ):
        if value:
            args.append(encode(value) if encode else value)
            operator = {"timestamp_min": ">=", "timestamp_max": "<="}.get(column, "=")
            name = "timestamp" if column.startswith("timestamp") else column
            where.append(f"t.{name} {operator} ${len(args)}")
    order = "DESC" if filter.flags & AccountFilterFlags.reversed else "ASC"
    args.append(filter.limit)
    sql = f"{select} WHERE {' AND '.join(where)} ORDER BY t.timestamp {order} LIMIT ${len(args)}"
    return sql, args
