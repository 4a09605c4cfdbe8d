"""The disbursement store: the one place that reads and writes the disbursement tables
(``engine/migrations/0100_disbursement.sql``) with asyncpg.

Personal data goes through the key service (:class:`hsm.service.KeyService`) before it
reaches the database: an identity number is kept as its keyed hash (HMAC-SHA256 under the
``bank-mac`` key ``ID_HASH_KEY``, used for lookups) and sealed (AES-256-GCM under the
``field-enc`` key ``FIELD_KEY``, bound to its hash); a card number as its token (key
``PAN_TOKEN_KEY``) and last 4 digits. The keys must exist (``onecard keys generate``).

Validation streams: lines come in chunks of ``CHUNK_LINES``, each with its lines prepared
(:func:`~engine.disbursement.validation.prepare_line`: normalised, identity number checked,
amount parsed), by a child process for a large CSV or XLSX file
(:mod:`engine.disbursement.reading`). For each chunk the identity numbers are hashed and
the card numbers tokenised in one key-service call each, the cardholders and whether each
was paid in the period fetched in one query (while the previous chunk is validated), then
:class:`~engine.disbursement.validation.BatchValidator` decides every line from dicts.
State changes follow :mod:`engine.disbursement.lifecycle`: the batch row is
locked (``FOR UPDATE``), the transition checked, a history row appended (the table refuses
updates and deletes) and the state updated, in one transaction.

Lines are spooled while validating, under a batch id reserved from the table's sequence
when validation starts, and stored at submit with one COPY (:mod:`engine.disbursement.lines`);
funding and execution are in :mod:`engine.disbursement.execution`.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import functools
import re
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from typing import NamedTuple

import asyncpg
import msgspec

from adapters.batch_file import BatchLine, BatchSource
from engine.disbursement.lines import LINE_COLUMNS, LineSpool, seal_fields
from engine.disbursement.lifecycle import (WITHDRAWN_STATES, BatchState, HistoryEntry, check_approval,
                                           check_content_hash, next_history)
from engine.disbursement.registry import CardholderRecord, CardholderRow, CardStatus, Category, ImportResult
from engine.disbursement.resident_id import IdCheck
from engine.disbursement.users import normalise_user
from engine.disbursement.reading import chunk_reader
from engine.disbursement.validation import BatchSummary, BatchValidator, LineOutcome, PreparedLine, ValidationContext
from engine.config import Config
from engine.errors import ConflictError, FieldError, NotFoundError
from hsm.inputs import is_pan
from hsm.service import KeyService, open_key_service
from ledger import db

ID_HASH_KEY = "cardholder-id-hash"
PAN_TOKEN_KEY = "pan-token"
FIELD_KEY = "field-enc"
CHUNK_LINES = 5_000
PROGRAMME_KINDS = ("subsidy", "wage")
# The rules of disbursement_programmes (migration 0100), checked here for every caller.
PROGRAMME_CODE_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,32}")
PROGRAMME_NAME_CHARACTERS_MAX = 128
PER_PERSON_MAX_MINOR_MAX = 2**63 - 1
BATCH_LIST_DEFAULT = 20
BATCH_LIST_MAX = 1_000

assert CHUNK_LINES > 0
assert 1 <= BATCH_LIST_DEFAULT <= BATCH_LIST_MAX


def check_programme_code(text: str, field: str = "code") -> str:
    """``text`` if it is a programme code: 1 to 32 characters of ``[A-Za-z0-9_-]``.

    Raises ``FieldError`` naming ``field``.

    >>> check_programme_code("ELDERLY-2026")
    'ELDERLY-2026'
    >>> check_programme_code("高龄", "CODE")
    Traceback (most recent call last):
    ...
    engine.errors.FieldError: CODE: must be 1 to 32 characters of A-Z a-z 0-9 _ -, got '高龄'
    """
    if not PROGRAMME_CODE_PATTERN.fullmatch(text):
        raise FieldError(field, f"must be 1 to 32 characters of A-Z a-z 0-9 _ -, got {text[:40]!r}")
    return text


def check_programme_name(text: str, field: str = "name") -> str:
    """A programme name without surrounding spaces: 1 to 128 printable characters.

    Raises ``FieldError`` naming ``field``.

    >>> check_programme_name(" 高龄津贴 ")
    '高龄津贴'
    >>> check_programme_name("  ", "--name")
    Traceback (most recent call last):
    ...
    engine.errors.FieldError: --name: must be 1 to 128 printable characters, not empty
    """
    value = text.strip()
    if not value or len(value) > PROGRAMME_NAME_CHARACTERS_MAX or not value.isprintable():
        raise FieldError(field, f"must be 1 to {PROGRAMME_NAME_CHARACTERS_MAX} printable characters, not empty")
    return value


class Programme(msgspec.Struct, frozen=True):
    """A disbursement programme: ``code``, ``kind`` (subsidy or wage), ``name`` and the
    per-person maximum per period in fen."""

    code: str
    kind: str
    name: str
    per_person_max_minor: int


class BatchRecord(msgspec.Struct, frozen=True):
    """A stored batch: its id, programme, period (``YYYY-MM``), state, submitter, content
    hash and totals (fen)."""

    id: int
    programme_code: str
    period: str
    state: BatchState
    submitted_by: str
    content_sha256: str
    lines_count: int
    accepted_count: int
    accepted_minor: int


_BATCH_COLUMNS = ", ".join(BatchRecord.__struct_fields__)


def _batch_record(record: asyncpg.Record) -> BatchRecord:
    values = dict(record)
    values["state"] = BatchState(values["state"])
    return BatchRecord(**values)


def _same_content(batch_id: int | None, period: str) -> ConflictError:
    which = f"batch {batch_id}" if batch_id is not None else "another batch"
    return ConflictError(f"the same batch content was already submitted as {which} for period {period}; "
                         "cancel it first to submit it again")


def _sealed_context(id_hash: bytes) -> bytes:
    return b"disbursement_cardholders.id_number:" + id_hash


class _Prefetched(NamedTuple):
    """A chunk (:data:`engine.disbursement.reading.Chunk`), and the registry records,
    payments in the period and card tokens its lines need."""

    lines: list[BatchLine]
    prepared: list[PreparedLine]
    fields: bytes
    content: bytes
    records: dict[str, CardholderRecord]
    paid: set[str]
    tokens: dict[str, str]


_STATUSES = {status.value: status for status in CardStatus}
# The columns _cardholder_record reads, in its order (the categories as one text).
_CARDHOLDER_COLUMNS = "id_hash, name, status, pan_token, pan_last4, bank_code, array_to_string(categories, ';')"


@functools.lru_cache(maxsize=64)
def _categories(text: str | None) -> frozenset[Category]:
    """The categories of ``array_to_string(categories, ';')`` (few distinct sets: one
    frozenset each, not one per cardholder)."""
    return frozenset(map(Category, text.split(";"))) if text else frozenset()


def _cardholder_record(id_number: str, record: asyncpg.Record) -> CardholderRecord:
    """The record of a row of :data:`_CARDHOLDER_COLUMNS` (``id_number``: its hash's number)."""
    return CardholderRecord(id_number, record[1], _STATUSES[record[2]], record[3], record[4], record[5],
                            _categories(record[6]))


class DisbursementStore:
    """Disbursement tables on ``pool``, personal data through ``keys``."""

    def __init__(self, pool: asyncpg.Pool, keys: KeyService) -> None:
        self._pool = pool
        self._keys = keys

    @property
    def pool(self) -> asyncpg.Pool:
        """The connection pool (execution and reports share it)."""
        return self._pool

    @property
    def keys(self) -> KeyService:
        """The key service (sealed line fields are opened through it)."""
        return self._keys

    async def id_hash(self, id_number: str) -> bytes:
        """The 32-byte keyed hash of a normalised identity number (the lookup key)."""
        return await self._keys.generate_mac(ID_HASH_KEY, id_number.encode("ascii"))

    async def import_cardholders(self, rows: Iterable[CardholderRow]) -> int:
        """Insert or update the ``ok`` rows (others are skipped); return how many were written.

        A row replaces the cardholder with the same identity number (new card, status,
        name). Raises ``ConflictError`` when a card number is registered to another person.
        """
        written = 0
        async with self._pool.acquire() as connection, connection.transaction():
            for row in rows:
                if row.result is not ImportResult.ok:
                    continue
                id_hash = await self.id_hash(row.id_number)
                sealed = await self._keys.encrypt_field(row.id_number.encode("ascii"), _sealed_context(id_hash))
                token = await self._keys.tokenize_pan(row.card_number, PAN_TOKEN_KEY)
                try:
                    await connection.execute(
                        """
                        INSERT INTO disbursement_cardholders
                            (id_hash, id_sealed, name, pan_token, pan_last4, bank_code, status, categories)
                        VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                        ON CONFLICT (id_hash) DO UPDATE SET
                            id_sealed = excluded.id_sealed, name = excluded.name,
                            pan_token = excluded.pan_token, pan_last4 = excluded.pan_last4,
                            bank_code = excluded.bank_code, status = excluded.status,
                            categories = excluded.categories, updated_at = now()
                        """,
                        id_hash, sealed, row.name, token, row.card_number[-4:], row.bank_code,
                        row.status.value, sorted(c.value for c in row.categories),
                    )
                except asyncpg.UniqueViolationError:
                    raise ConflictError(
                        f"line {row.line}: the card ending {row.card_number[-4:]} is registered to another person"
                    ) from None
                written += 1
        return written

    async def cardholders(self, id_numbers: Sequence[str]) -> dict[str, CardholderRecord]:
        """The registered cardholders among normalised, valid ``id_numbers`` (one query)."""
        hashes = await self._hashes(id_numbers)
        async with self._pool.acquire() as connection:
            records = await connection.fetch(
                f"SELECT {_CARDHOLDER_COLUMNS} FROM disbursement_cardholders WHERE id_hash = ANY($1::bytea[])",
                list(hashes))
        return {hashes[r[0]]: _cardholder_record(hashes[r[0]], r) for r in records}

    async def paid_in_period(self, programme_code: str, period: str, id_numbers: Sequence[str]) -> set[str]:
        """Which of ``id_numbers`` the programme already paid in ``period`` (one query)."""
        hashes = await self._hashes(id_numbers)
        async with self._pool.acquire() as connection:
            records = await connection.fetch(
                "SELECT id_hash FROM disbursement_payments "
                "WHERE programme_code = $1 AND period = $2 AND id_hash = ANY($3::bytea[])",
                programme_code, period, list(hashes))
        return {hashes[r[0]] for r in records}

    async def _hashes(self, id_numbers: Iterable[str]) -> dict[bytes, str]:
        numbers = list(set(id_numbers))
        macs = await self._keys.generate_macs(ID_HASH_KEY, [n.encode("ascii") for n in numbers])
        return dict(zip(macs, numbers))

    def _connection(self, connection: asyncpg.Connection | None) -> contextlib.AbstractAsyncContextManager:
        """``connection`` if given, else one acquired from the pool for the block."""
        return contextlib.nullcontext(connection) if connection is not None else self._pool.acquire()

    async def create_programme(self, code: str, kind: str, name: str,
                               per_person_max_minor: int) -> tuple[Programme, bool]:
        """Create a programme; return it and whether this call created it.

        The same call again returns the stored programme and ``False`` (so a caller that
        funds a new programme funds it once); a repeat with other fields is a conflict.
        ``name`` is stored without surrounding spaces.

        Raises
        ------
        UsageError
            ``code`` is not 1 to 32 of ``[A-Za-z0-9_-]``, ``kind`` is not subsidy or wage,
            ``name`` is not 1 to 128 printable characters, or the maximum is not positive
            (each names its field).
        ConflictError
            ``code`` exists with other fields (the differing field is named).
        """
        code = check_programme_code(code)
        if kind not in PROGRAMME_KINDS:
            raise FieldError("kind", f"must be subsidy or wage, got {kind[:20]!r}")
        name = check_programme_name(name)
        if not 0 < per_person_max_minor <= PER_PERSON_MAX_MINOR_MAX:
            raise FieldError("per_person_max_minor", f"must be from 1 to {PER_PERSON_MAX_MINOR_MAX} fen, "
                                                     f"got {per_person_max_minor}")
        wanted = Programme(code, kind, name, per_person_max_minor)
        async with self._pool.acquire() as connection:
            created = await connection.fetchval(
                "INSERT INTO disbursement_programmes (code, kind, name, per_person_max_minor) "
                "VALUES ($1, $2, $3, $4) ON CONFLICT (code) DO NOTHING RETURNING true",
                code, kind, name, per_person_max_minor)
        stored = await self.programme(code)
        for field in Programme.__struct_fields__:
            if getattr(stored, field) != getattr(wanted, field):
                raise ConflictError(f"programme {code} exists with a different {field}")
        return stored, bool(created)

    async def programme(self, code: str) -> Programme:
        """The programme ``code``; ``NotFoundError`` if there is none."""
        async with self._pool.acquire() as connection:
            record = await connection.fetchrow(
                "SELECT code, kind, name, per_person_max_minor FROM disbursement_programmes WHERE code = $1", code)
        if record is None:
            raise NotFoundError(f"no programme {code}")
        return Programme(*record.values())

    async def validate(self, source: BatchSource, programme: Programme, period: str, today: datetime.date,
                       on_outcome: Callable[[LineOutcome], None], spool: LineSpool | None = None) -> BatchSummary:
        """Validate every line of ``source`` (chunked prefetch, see the module docstring),
        handing each outcome to ``on_outcome`` in file order; return the summary. With
        ``spool``, a batch id is reserved for it (if it has none) and every chunk of
        outcomes is spooled for :meth:`submit` to store.

        Raises
        ------
        TotalsMismatchError, AdapterError
            The file is refused as a whole (totals, encoding, format).
        """
        records: dict[str, CardholderRecord] = {}
        paid: set[str] = set()
        tokens: dict[str, str] = {}
        validator = BatchValidator(ValidationContext(
            lookup_cardholder=records.get, already_paid=paid.__contains__, pan_token=tokens.__getitem__,
            per_person_max_minor=programme.per_person_max_minor, today=today))
        if spool is not None and spool.batch_id is None:
            spool.reserve(await self._reserve_batch_id())
        reader = chunk_reader(source, today, CHUNK_LINES)
        chunks = reader.chunks()
        ahead: asyncio.Future[_Prefetched] | None = None
        try:
            while True:
                chunk = next(chunks, None)
                # The next chunk's registry queries run while this one is validated.
                fetching = asyncio.ensure_future(self._prefetch(*chunk, programme.code, period)) if chunk else None
                if ahead is not None:
                    current = await ahead
                    records.clear()
                    records.update(current.records)
                    paid.clear()
                    paid.update(current.paid)
                    tokens.clear()
                    tokens.update(current.tokens)
                    validator.add_content(current.content)
                    outcomes = list(map(validator.check_prepared, current.lines, current.prepared))
                    for outcome in outcomes:
                        on_outcome(outcome)
                    if spool is not None:
                        spool.add_chunk(outcomes, current.fields)
                ahead = fetching
                if ahead is None:
                    break
        finally:
            chunks.close()
            if ahead is not None and not ahead.done():
                ahead.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await ahead
        return validator.finish(reader.declared_totals())

    async def _prefetch(self, lines: list[BatchLine], prepared: list[PreparedLine], fields: bytes, content: bytes,
                        programme_code: str, period: str) -> _Prefetched:
        """The registry records, payments in the period and card tokens a chunk's lines need:
        one key-service call per kind and one query."""
        # Only a valid identity number is ever looked up (BatchValidator._decide).
        hashes = await self._hashes(p.id_number for p in prepared if p.id_check == IdCheck.valid)
        # A malformed card number has no token; it can match no registered card.
        tokens = dict.fromkeys((p.pan for p in prepared), "")
        well_formed = list(filter(is_pan, tokens))
        tokens.update(zip(well_formed, await self._keys.tokenize_pans(well_formed, PAN_TOKEN_KEY)))
        # One query (the hashes sent once): each registered cardholder and whether the
        # programme paid them in the period (asked only of a registered cardholder).
        async with self._pool.acquire() as connection:
            found = await connection.fetch(
                f"SELECT {_CARDHOLDER_COLUMNS}, EXISTS (SELECT FROM disbursement_payments p"
                " WHERE p.programme_code = $2 AND p.period = $3 AND p.id_hash = c.id_hash)"
                " FROM disbursement_cardholders c WHERE c.id_hash = ANY($1::bytea[])",
                list(hashes), programme_code, period)
        records = {}
        paid = set()
        for record in found:
            id_number = hashes[record[0]]
            records[id_number] = _cardholder_record(id_number, record)
            if record[7]:
                paid.add(id_number)
        return _Prefetched(lines, prepared, fields, content, records, paid, tokens)

    async def submit(self, programme_code: str, period: str, submitted_by: str, summary: BatchSummary,
                     at_ms: int, spool: LineSpool | None = None) -> BatchRecord:
        """Record a validated batch: RECEIVED then VALIDATED, with both history rows, and
        the lines of ``spool`` (required to execute the batch later), in one transaction.

        The same content is refused again for the same programme and period while a batch
        with it stands (not CANCELLED or REJECTED): the same people and amounts next month,
        or again after a cancel, are new batches. Paying a person twice in a period is
        prevented by ``already_paid_in_period`` and the payments table, not by this check.

        Raises
        ------
        UsageError
            ``submitted_by`` is not a user name (:func:`normalise_user`).
        ConflictError
            A standing batch of the programme and period has this content (named by its id).
        """
        submitted_by = normalise_user(submitted_by, "submitted_by")
        async with self._pool.acquire() as connection, connection.transaction():
            existing = await connection.fetchval(
                "SELECT id FROM disbursement_batches WHERE programme_code = $1 AND period = $2 "
                "AND content_sha256 = $3 AND state <> ALL($4::text[])",
                programme_code, period, summary.content_sha256, list(WITHDRAWN_STATES))
            if existing is not None:
                raise _same_content(existing, period)
            # The spooled lines carry the id reserved when they were validated.
            batch_id = spool.batch_id if spool is not None and spool.batch_id is not None else (
                await self._reserve_batch_id(connection))
            try:
                await connection.execute(
                    """
                    INSERT INTO disbursement_batches (id, programme_code, period, state, submitted_by, content_sha256,
                                                      lines_count, accepted_count, accepted_minor)
                    OVERRIDING SYSTEM VALUE VALUES ($1, $2, $3, 'received', $4, $5, $6, $7, $8)
                    """,
                    batch_id, programme_code, period, submitted_by, summary.content_sha256, summary.lines_count,
                    summary.accepted_count, summary.accepted_minor)
            except asyncpg.UniqueViolationError:
                # Another submit of the same content committed between the check and the insert.
                raise _same_content(None, period) from None
            first = HistoryEntry(1, BatchState.received, submitted_by, at_ms, summary.content_sha256)
            await self._append(connection, batch_id, first)
            await self._append(connection, batch_id, next_history([first], BatchState.validated, "system", at_ms))
            if spool is not None:
                await self._store_lines(connection, batch_id, summary.content_sha256, spool)
        return await self.batch(batch_id)

    async def _reserve_batch_id(self, connection: asyncpg.Connection | None = None) -> int:
        """A new batch id from the table's identity sequence (unused if the batch is never stored)."""
        async with self._connection(connection) as connection:
            return await connection.fetchval("SELECT nextval(pg_get_serial_sequence('disbursement_batches', 'id'))")

    async def _store_lines(self, connection: asyncpg.Connection, batch_id: int, content_sha256: str,
                           spool: LineSpool) -> None:
        for chunk, (first_line, plain) in enumerate(spool.fields()):
            sealed = await seal_fields(self._keys, content_sha256, first_line, plain)
            await connection.execute(
                "INSERT INTO disbursement_line_fields (batch_id, chunk, first_line, sealed) VALUES ($1, $2, $3, $4)",
                batch_id, chunk, first_line, sealed)
        # One COPY for every line: the spool is read while the server inserts what it has.
        status = await connection.copy_to_table("disbursement_lines", source=spool.rows(), columns=LINE_COLUMNS,
                                                format="csv")
        lines_count = await connection.fetchval("SELECT lines_count FROM disbursement_batches WHERE id = $1", batch_id)
        assert status == f"COPY {spool.lines}" and spool.lines == lines_count, "every line is stored"

    async def batch(self, batch_id: int) -> BatchRecord:
        """The batch ``batch_id``; ``NotFoundError`` if there is none."""
        async with self._pool.acquire() as connection:
            return await self._batch(connection, batch_id)

    async def list_batches(self, *, programme_code: str | None = None, state: BatchState | None = None,
                           limit: int = BATCH_LIST_DEFAULT) -> list[BatchRecord]:
        """Batches newest first (by id), of one programme and/or in one state if given, at
        most ``limit`` (1 to :data:`BATCH_LIST_MAX`).

        Raises
        ------
        UsageError
            ``limit`` out of range.
        NotFoundError
            No programme ``programme_code`` (a mistyped code is not an empty list).
        """
        if not 1 <= limit <= BATCH_LIST_MAX:
            raise FieldError("limit", f"must be from 1 to {BATCH_LIST_MAX}, got {limit}")
        if programme_code is not None:
            await self.programme(programme_code)
        async with self._pool.acquire() as connection:
            records = await connection.fetch(
                f"SELECT {_BATCH_COLUMNS} FROM disbursement_batches"
                " WHERE ($1::text IS NULL OR programme_code = $1) AND ($2::text IS NULL OR state = $2)"
                " ORDER BY id DESC LIMIT $3",
                programme_code, state.value if state is not None else None, limit)
        return [_batch_record(r) for r in records]

    async def history(self, batch_id: int) -> list[HistoryEntry]:
        """The batch's history, oldest first."""
        async with self._pool.acquire() as connection:
            return await self._history(connection, batch_id)

    async def transition(self, batch_id: int, target: BatchState, actor: str, at_ms: int) -> HistoryEntry:
        """Move a batch to ``target`` (``ConflictError`` naming both states if not allowed)."""
        async with self._pool.acquire() as connection, connection.transaction():
            return await self.transition_in(connection, batch_id, target, actor, at_ms)

    async def transition_in(self, connection: asyncpg.Connection, batch_id: int, target: BatchState, actor: str,
                            at_ms: int) -> HistoryEntry:
        """:meth:`transition` in the caller's transaction (the batch row is locked until it ends);
        ``actor`` is stored in its normal form (``UsageError`` if it is not a user name)."""
        assert connection.is_in_transaction(), "the caller's transaction holds the batch lock"
        actor = normalise_user(actor, "actor")
        await self._batch(connection, batch_id, lock=True)
        entry = next_history(await self._history(connection, batch_id), target, actor, at_ms)
        await self._append(connection, batch_id, entry)
        return entry

    async def locked_batch(self, connection: asyncpg.Connection, batch_id: int) -> BatchRecord:
        """The batch, its row locked (``FOR UPDATE``) in the caller's transaction."""
        assert connection.is_in_transaction(), "a row lock lasts for the caller's transaction"
        return await self._batch(connection, batch_id, lock=True)

    async def approve(self, batch_id: int, approver: str, content_sha256: str, at_ms: int) -> HistoryEntry:
        """Approve a validated batch as ``approver`` for the content hash the approver saw.

        Raises
        ------
        UsageError
            ``approver`` is not a user name, or ``content_sha256`` is not 64 hex digits
            (either case).
        ConflictError
            The approver submitted the batch (compared in normal form), the hash is not the
            batch's, or the batch is not VALIDATED.
        """
        approver = normalise_user(approver, "approver")
        content_sha256 = check_content_hash(content_sha256)
        async with self._pool.acquire() as connection, connection.transaction():
            batch = await self._batch(connection, batch_id, lock=True)
            check_approval(batch.submitted_by, approver, batch.content_sha256, content_sha256)
            entry = next_history(await self._history(connection, batch_id), BatchState.approved, approver, at_ms)
            await self._append(connection, batch_id, entry)
            return entry

    async def _batch(self, connection: asyncpg.Connection, batch_id: int, *, lock: bool = False) -> BatchRecord:
        record = await connection.fetchrow(
            f"SELECT {_BATCH_COLUMNS} FROM disbursement_batches WHERE id = $1" + (" FOR UPDATE" if lock else ""),
            batch_id)
        if record is None:
            raise NotFoundError(f"no batch {batch_id}")
        return _batch_record(record)

    async def _history(self, connection: asyncpg.Connection, batch_id: int) -> list[HistoryEntry]:
        records = await connection.fetch(
            "SELECT sequence, state, actor, at_ms, content_sha256 FROM disbursement_batch_history "
            "WHERE batch_id = $1 ORDER BY sequence", batch_id)
        return [HistoryEntry(r["sequence"], BatchState(r["state"]), r["actor"], r["at_ms"], r["content_sha256"])
                for r in records]

    async def _append(self, connection: asyncpg.Connection, batch_id: int, entry: HistoryEntry) -> None:
        await connection.execute(
            "INSERT INTO disbursement_batch_history (batch_id, sequence, state, actor, at_ms, content_sha256) "
            "VALUES ($1, $2, $3, $4, $5, $6)",
            batch_id, entry.sequence, entry.state.value, entry.actor, entry.at_ms, entry.content_sha256)
        await connection.execute("UPDATE disbursement_batches SET state = $2 WHERE id = $1",
                                 batch_id, entry.state.value)


@contextlib.asynccontextmanager
async def open_store(config: Config) -> AsyncIterator[DisbursementStore]:
    """A store on the configured database and key service, closed on exit (for the CLI)."""
    keys = open_key_service(config)
    try:
        pool = await db.create_pool(db.database_url(config), size_max=2)
        try:
            yield DisbursementStore(pool, keys)
        finally:
            await pool.close()
    finally:
        await keys.close()
