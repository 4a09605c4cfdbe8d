"""Settlement cycles in the database: close, issue instructions, confirm, settle, read.

Which cycle a transfer belongs to (the documented rule): cycle ``N`` covers the ledger
commit timestamps ``(timestamp_after, timestamp_last]``. Closing reads
``ledger_head.timestamp_last`` in the closing transaction. The ledger assigns timestamps
under the head's row lock and updates the head in the same transaction as the transfers
(:mod:`ledger.service`), so every committed transfer has a timestamp at or below the
committed head, and every transfer still in flight will commit above it: the value read is
a commit point. Closing takes no lock the tap path waits for, and the next cycle starts
exactly where this one ends, so every transfer is in exactly one cycle.

Positions count posted money only: plain and ``post_pending_transfer`` transfers; pending
reservations, voids and expiries move no posted money and are left out, as are the
settlement transfers themselves (code :data:`TRANSFER_CODE_SETTLEMENT`), which settle
earlier cycles.

Issuing (``CLOSED`` → ``PENDING_SETTLEMENT``) reserves, as pending ledger transfers, the
move of each bank's net between its settlement account and the clearing account, and
writes one pacs.008 instruction per bank to the outbox in the same transaction. Settling
(→ ``SETTLED``, once every bank with a non-zero position confirmed) posts them. A cycle
with no transfers (or all nets zero) has nothing to reserve or confirm and still goes all
the way to ``SETTLED``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import asyncpg

from engine.settlement import instructions
from engine.settlement.errors import CycleStateError, SettlementError, UnknownParticipantError
from engine.settlement.positions import CapAlert, cap_alerts, net_positions
from engine.settlement.registry import (CLEARING_ACCOUNT_ID, LEDGER_CNY, TRANSFER_CODE_SETTLEMENT,
                                        list_banks)
from engine.settlement.states import CycleState, check_transition
from ledger.ids import new_id
from ledger.results import CreateTransferResult
from ledger.service import Ledger, id_bytes
from ledger.types import Transfer, TransferFlags

# Flags of transfers that move no posted money.
_NOT_POSTED = int(TransferFlags.pending | TransferFlags.void_pending_transfer)

_FLOWS = f"""
SELECT da.bank_code AS debit_bank, ca.bank_code AS credit_bank, count(*) AS transfers,
       sum(t.amount)::bigint AS amount_minor
FROM ledger_transfers t
LEFT JOIN settlement_accounts da ON da.account_id = t.debit_account_id
LEFT JOIN settlement_accounts ca ON ca.account_id = t.credit_account_id
WHERE t.timestamp > $1 AND t.timestamp <= $2 AND t.flags & {_NOT_POSTED} = 0 AND t.code <> {TRANSFER_CODE_SETTLEMENT}
GROUP BY 1, 2"""

_COLLECTIONS = f"""
SELECT t.debit_account_id AS account_id, sum(t.amount)::bigint AS amount_minor, count(*) AS fares
FROM ledger_transfers t
JOIN settlement_accounts da ON da.account_id = t.debit_account_id AND da.kind = 'card' AND da.bank_code = $3
JOIN settlement_accounts ca ON ca.account_id = t.credit_account_id AND ca.kind = 'operator'
WHERE t.timestamp > $1 AND t.timestamp <= $2 AND t.flags & {_NOT_POSTED} = 0
GROUP BY 1 ORDER BY 1"""

_CYCLE_COLUMNS = ("cycle_id, state, timestamp_after, timestamp_last, transfer_count, unattributed_count, "
                  "opened_at, closed_at, settled_at")


@dataclass(frozen=True, slots=True)
class Cycle:
    """One settlement cycle; ``timestamp_last`` is ``None`` while it is open (ns, ledger clock)."""

    cycle_id: int
    state: str
    timestamp_after: int
    timestamp_last: int | None
    transfer_count: int
    unattributed_count: int
    opened_at: dt.datetime
    closed_at: dt.datetime | None
    settled_at: dt.datetime | None


@dataclass(frozen=True, slots=True)
class BankPosition:
    """A bank's frozen position in a cycle, and whether it confirmed settlement."""

    cycle_id: int
    bank_code: str
    debit_minor: int
    credit_minor: int
    net_minor: int
    transfer_id: int | None
    confirmed: bool


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One state change of a cycle (append-only)."""

    sequence: int
    from_state: str | None
    to_state: str
    actor: str
    at: dt.datetime


@dataclass(frozen=True, slots=True)
class Collection:
    """A fare collection request: the fares of one card account in the cycle."""

    account_id: int
    amount_minor: int
    fares: int


class Cycles:
    """Settlement cycles over ``pool`` and the ``ledger`` (see the module docstring).

    ``engine_code`` is the engine's member code in the instructions (``InstgAgt``).
    """

    def __init__(self, pool: asyncpg.Pool, ledger: Ledger, *, engine_code: str = "ONECARD") -> None:
        self._pool = pool
        self._ledger = ledger
        self._engine_code = engine_code

    async def close(self, *, actor: str = "operator", scheduled_at: dt.datetime | None = None) -> Cycle | None:
        """Close the open cycle at a commit point, freeze every bank's position, record cap
        alerts, open the next cycle; return the closed cycle (state ``CLOSED``).

        With ``scheduled_at`` (a scheduled close time), close only if no cycle was closed
        for that time yet, otherwise return ``None``: several engine processes running the
        same schedule close once per scheduled time.

        Raises
        ------
        CycleStateError
            Another close won the race (the open cycle changed under us): retry.
        """
        async with self._pool.acquire() as connection, connection.transaction():
            row = await connection.fetchrow(
                "SELECT cycle_id, timestamp_after FROM settlement_cycles WHERE state = 'OPEN' FOR UPDATE")
            if row is None and scheduled_at is None:
                raise CycleStateError("the open cycle was closed concurrently; retry")
            # Closers queue on the open cycle's row lock, so this check cannot race.
            if row is None or (scheduled_at is not None and await connection.fetchval(
                    "SELECT 1 FROM settlement_cycles WHERE scheduled_close_at = $1", scheduled_at)):
                return None
            cycle_id, after = row["cycle_id"], row["timestamp_after"]
            cut = await connection.fetchval("SELECT timestamp_last FROM ledger_head")
            assert cut >= after, "the ledger clock never goes back"
            banks = await list_banks(connection)
            flows, count, unattributed = await _flows(connection, after, cut)
            positions = net_positions(flows, [bank.bank_code for bank in banks])
            await connection.executemany(
                "INSERT INTO settlement_positions (cycle_id, bank_code, debit_minor, credit_minor, net_minor)"
                " VALUES ($1, $2, $3, $4, $5)",
                [(cycle_id, p.bank_code, p.debit_minor, p.credit_minor, p.net_minor) for p in positions])
            await connection.execute(
                "UPDATE settlement_cycles SET state = 'CLOSED', timestamp_last = $2, transfer_count = $3,"
                " unattributed_count = $4, closed_at = now(), scheduled_close_at = $5 WHERE cycle_id = $1",
                cycle_id, cut, count, unattributed, scheduled_at)
            await _history(connection, cycle_id, CycleState.OPEN, CycleState.CLOSED, actor)
            await connection.execute(
                "INSERT INTO settlement_cycles (cycle_id, state, timestamp_after) VALUES ($1, 'OPEN', $2)",
                cycle_id + 1, cut)
            await _history(connection, cycle_id + 1, None, CycleState.OPEN, actor)
            caps = {bank.bank_code: bank.net_debit_cap_minor for bank in banks}
            await _record_alerts(connection, cycle_id, cap_alerts(positions, caps))
            return await _cycle(connection, cycle_id)

    async def issue(self, cycle_id: int, *, actor: str = "operator") -> Cycle:
        """``CLOSED`` → ``PENDING_SETTLEMENT``: reserve the settlement transfers and write
        one pacs.008 per bank with a non-zero position to the outbox, in one transaction.

        Raises
        ------
        UnknownParticipantError
            No such cycle.
        CycleStateError
            The cycle is not ``CLOSED``.
        """
        async with self._pool.acquire() as connection, connection.transaction():
            cycle = await _lock(connection, cycle_id)
            check_transition(cycle_id, cycle.state, CycleState.PENDING_SETTLEMENT)
            await self._reserve(connection, cycle)
            await _move(connection, cycle_id, CycleState.CLOSED, CycleState.PENDING_SETTLEMENT, actor)
            return await _cycle(connection, cycle_id)

    async def confirm(self, cycle_id: int, bank_code: str, *, actor: str = "") -> Cycle:
        """Record that ``bank_code`` settled its position in ``cycle_id`` (again: no change);
        the cycle becomes ``SETTLED`` when every bank with a non-zero position confirmed.

        Raises
        ------
        UnknownParticipantError
            No such cycle, or the bank has no position in it.
        CycleStateError
            The cycle is not ``PENDING_SETTLEMENT`` (or already ``SETTLED``: confirming
            then is accepted and changes nothing).
        """
        async with self._pool.acquire() as connection, connection.transaction():
            cycle = await _lock(connection, cycle_id)
            position = await connection.fetchrow(
                "SELECT confirmed_at FROM settlement_positions WHERE cycle_id = $1 AND bank_code = $2",
                cycle_id, bank_code)
            if position is None:
                raise UnknownParticipantError(f"cycle {cycle_id}: no position of bank {bank_code!r}")
            if cycle.state == CycleState.SETTLED.value:
                return cycle
            if cycle.state != CycleState.PENDING_SETTLEMENT.value:
                raise CycleStateError(f"cycle {cycle_id} is {cycle.state}; only a PENDING_SETTLEMENT cycle is confirmed")
            await connection.execute(
                "UPDATE settlement_positions SET confirmed_at = now()"
                " WHERE cycle_id = $1 AND bank_code = $2 AND confirmed_at IS NULL", cycle_id, bank_code)
            await self._settle_if_confirmed(connection, cycle_id, actor or f"bank:{bank_code}")
            return await _cycle(connection, cycle_id)

    async def settle(self, cycle_id: int, *, actor: str = "operator") -> Cycle:
        """Settle ``cycle_id`` on the operator's word: issue it if still ``CLOSED``, confirm
        every bank, post the reserved transfers; return it (``SETTLED``).

        Raises
        ------
        UnknownParticipantError
            No such cycle.
        CycleStateError
            The cycle is ``OPEN`` or already ``SETTLED``.
        """
        cycle = await self.show(cycle_id)
        if cycle.state == CycleState.CLOSED.value:
            await self.issue(cycle_id, actor=actor)
        async with self._pool.acquire() as connection, connection.transaction():
            cycle = await _lock(connection, cycle_id)
            check_transition(cycle_id, cycle.state, CycleState.SETTLED)
            await connection.execute(
                "UPDATE settlement_positions SET confirmed_at = now() WHERE cycle_id = $1 AND confirmed_at IS NULL",
                cycle_id)
            await self._settle_if_confirmed(connection, cycle_id, actor)
            return await _cycle(connection, cycle_id)

    async def close_and_issue(self, *, actor: str = "scheduler", scheduled_at: dt.datetime | None = None
                              ) -> Cycle | None:
        """Close the open cycle and issue its instructions (what the schedule runs); ``None``
        when a cycle was already closed for ``scheduled_at`` (see :meth:`close`)."""
        closed = await self.close(actor=actor, scheduled_at=scheduled_at)
        return None if closed is None else await self.issue(closed.cycle_id, actor=actor)

    async def show(self, cycle_id: int) -> Cycle:
        """The cycle ``cycle_id``.

        Raises
        ------
        UnknownParticipantError
            No such cycle.
        """
        async with self._pool.acquire() as connection:
            return await _cycle(connection, cycle_id)

    async def list(self, *, limit: int = 100) -> list[Cycle]:
        """The newest ``limit`` cycles, newest first."""
        assert 1 <= limit <= 10_000
        async with self._pool.acquire() as connection:
            rows = await connection.fetch(
                f"SELECT {_CYCLE_COLUMNS} FROM settlement_cycles ORDER BY cycle_id DESC LIMIT $1", limit)
        return [Cycle(**dict(row)) for row in rows]

    async def positions(self, cycle_id: int, bank_code: str | None = None) -> list[BankPosition]:
        """The frozen positions of ``cycle_id`` (of one bank when ``bank_code`` is given),
        by bank code; empty while the cycle is open."""
        async with self._pool.acquire() as connection:
            rows = await connection.fetch(
                "SELECT cycle_id, bank_code, debit_minor, credit_minor, net_minor, transfer_id,"
                " confirmed_at IS NOT NULL AS confirmed FROM settlement_positions"
                " WHERE cycle_id = $1 AND ($2::text IS NULL OR bank_code = $2) ORDER BY bank_code",
                cycle_id, bank_code)
        return [BankPosition(**{**dict(row), "transfer_id": _optional_id(row["transfer_id"])}) for row in rows]

    async def history(self, cycle_id: int) -> list[HistoryEntry]:
        """The state changes of ``cycle_id``, oldest first."""
        async with self._pool.acquire() as connection:
            rows = await connection.fetch(
                "SELECT sequence, from_state, to_state, actor, at FROM settlement_cycle_history"
                " WHERE cycle_id = $1 ORDER BY sequence", cycle_id)
        return [HistoryEntry(**dict(row)) for row in rows]

    async def collections(self, cycle_id: int, bank_code: str) -> list[Collection]:
        """Fare collection requests of ``bank_code`` for a closed cycle: per card account it
        issued, the fares posted in the cycle.

        Raises
        ------
        UnknownParticipantError
            No such cycle.
        CycleStateError
            The cycle is still open.
        """
        async with self._pool.acquire() as connection:
            cycle = await _cycle(connection, cycle_id)
            if cycle.timestamp_last is None:
                raise CycleStateError(f"cycle {cycle_id} is OPEN; collections exist once it is closed")
            rows = await connection.fetch(_COLLECTIONS, cycle.timestamp_after, cycle.timestamp_last, bank_code)
        return [Collection(int.from_bytes(row["account_id"], "big"), row["amount_minor"], row["fares"])
                for row in rows]

    async def provisional_alerts(self) -> list[CapAlert]:
        """Cap alerts on the running positions of the open cycle (nothing is recorded).

        Call periodically to warn before a bank's net debit reaches its cap.
        """
        async with self._pool.acquire() as connection:
            after = await connection.fetchval("SELECT timestamp_after FROM settlement_cycles WHERE state = 'OPEN'")
            cut = await connection.fetchval("SELECT timestamp_last FROM ledger_head")
            banks = await list_banks(connection)
            flows, _, _ = await _flows(connection, after, cut)
        positions = net_positions(flows, [bank.bank_code for bank in banks])
        return cap_alerts(positions, {bank.bank_code: bank.net_debit_cap_minor for bank in banks})

    # -- internals ---------------------------------------------------------------------

    async def _reserve(self, connection: asyncpg.Connection, cycle: Cycle) -> None:
        banks = {bank.bank_code: bank for bank in await list_banks(connection)}
        rows = await connection.fetch(
            "SELECT bank_code, net_minor FROM settlement_positions WHERE cycle_id = $1 AND net_minor <> 0"
            " ORDER BY bank_code", cycle.cycle_id)
        if not rows:
            return
        transfers, messages = [], []
        created_at = dt.datetime.now(dt.timezone.utc)
        for row in rows:
            bank = banks[row["bank_code"]]
            net_minor = row["net_minor"]
            pays = net_minor < 0
            transfer = Transfer(
                id=new_id(), amount=abs(net_minor), ledger=LEDGER_CNY, code=TRANSFER_CODE_SETTLEMENT,
                debit_account_id=bank.settlement_account_id if pays else CLEARING_ACCOUNT_ID,
                credit_account_id=CLEARING_ACCOUNT_ID if pays else bank.settlement_account_id,
                flags=int(TransferFlags.pending), user_data_64=cycle.cycle_id)
            transfers.append(transfer)
            messages.append(instructions.build(
                instructions.Instruction(cycle.cycle_id, bank.bank_code, bank.settlement_account_id,
                                         net_minor, transfer.id),
                engine_code=self._engine_code, created_at=created_at))
        results = await self._ledger.create_transfers(transfers, connection=connection)
        failed = [(t, r) for t, r in zip(transfers, results) if r is not CreateTransferResult.ok]
        if failed:
            raise SettlementError(f"cycle {cycle.cycle_id}: settlement transfer refused by the ledger: "
                                  f"{failed[0][1].name}")
        await connection.executemany(
            "UPDATE settlement_positions SET transfer_id = $3 WHERE cycle_id = $1 AND bank_code = $2",
            [(cycle.cycle_id, row["bank_code"], id_bytes(t.id)) for row, t in zip(rows, transfers)])
        await connection.executemany(
            "INSERT INTO settlement_outbox (message_id, bank_code, kind, cycle_id, xml, state)"
            " VALUES ($1, $2, 'settlement', $3, $4, $5)",
            [(message.message_id, row["bank_code"], cycle.cycle_id, message.xml,
              "pending" if banks[row["bank_code"]].delivery != "pull" else "delivered")
             for row, message in zip(rows, messages)])

    async def _settle_if_confirmed(self, connection: asyncpg.Connection, cycle_id: int, actor: str) -> None:
        waiting = await connection.fetchval(
            "SELECT count(*) FROM settlement_positions WHERE cycle_id = $1 AND net_minor <> 0"
            " AND confirmed_at IS NULL", cycle_id)
        if waiting:
            return
        rows = await connection.fetch(
            "SELECT transfer_id, abs(net_minor) AS amount FROM settlement_positions"
            " WHERE cycle_id = $1 AND transfer_id IS NOT NULL ORDER BY bank_code", cycle_id)
        posts = [Transfer(id=new_id(), pending_id=int.from_bytes(row["transfer_id"], "big"), amount=row["amount"],
                          ledger=LEDGER_CNY, code=TRANSFER_CODE_SETTLEMENT,
                          flags=int(TransferFlags.post_pending_transfer), user_data_64=cycle_id)
                 for row in rows]
        if posts:
            results = await self._ledger.create_transfers(posts, connection=connection)
            refused = [r for r in results if r is not CreateTransferResult.ok]
            if refused:
                raise SettlementError(f"cycle {cycle_id}: posting settlement refused by the ledger: {refused[0].name}")
        await _move(connection, cycle_id, CycleState.PENDING_SETTLEMENT, CycleState.SETTLED, actor)
        await connection.execute("UPDATE settlement_cycles SET settled_at = now() WHERE cycle_id = $1", cycle_id)


async def _flows(connection: asyncpg.Connection, after: int, cut: int) -> tuple[list[tuple[str, str, int]], int, int]:
    rows = await connection.fetch(_FLOWS, after, cut)
    flows, count, unattributed = [], 0, 0
    for row in rows:
        count += row["transfers"]
        if row["debit_bank"] is None or row["credit_bank"] is None:
            unattributed += row["transfers"]
            continue
        flows.append((row["debit_bank"], row["credit_bank"], row["amount_minor"]))
    return flows, count, unattributed


async def _cycle(connection: asyncpg.Connection, cycle_id: int) -> Cycle:
    row = await connection.fetchrow(f"SELECT {_CYCLE_COLUMNS} FROM settlement_cycles WHERE cycle_id = $1", cycle_id)
    if row is None:
        raise UnknownParticipantError(f"cycle {cycle_id}: no such cycle")
    return Cycle(**dict(row))


async def _lock(connection: asyncpg.Connection, cycle_id: int) -> Cycle:
    row = await connection.fetchrow(
        f"SELECT {_CYCLE_COLUMNS} FROM settlement_cycles WHERE cycle_id = $1 FOR UPDATE", cycle_id)
    if row is None:
        raise UnknownParticipantError(f"cycle {cycle_id}: no such cycle")
    return Cycle(**dict(row))


async def _move(connection: asyncpg.Connection, cycle_id: int, current: CycleState, wanted: CycleState,
                actor: str) -> None:
    check_transition(cycle_id, current.value, wanted)
    updated = await connection.execute(
        "UPDATE settlement_cycles SET state = $3 WHERE cycle_id = $1 AND state = $2",
        cycle_id, current.value, wanted.value)
    assert updated == "UPDATE 1", f"cycle {cycle_id} was not {current.value}"
    await _history(connection, cycle_id, current, wanted, actor)


async def _history(connection: asyncpg.Connection, cycle_id: int, current: CycleState | None,
                   wanted: CycleState, actor: str) -> None:
    await connection.execute(
        "INSERT INTO settlement_cycle_history (cycle_id, sequence, from_state, to_state, actor)"
        " SELECT $1, coalesce(max(sequence), 0) + 1, $2, $3, $4 FROM settlement_cycle_history WHERE cycle_id = $1",
        cycle_id, current.value if current else None, wanted.value, actor)


async def _record_alerts(connection: asyncpg.Connection, cycle_id: int, alerts: list[CapAlert]) -> None:
    await connection.executemany(
        "INSERT INTO settlement_alerts (cycle_id, bank_code, kind, net_minor, cap_minor) VALUES ($1, $2, $3, $4, $5)",
        [(cycle_id, a.bank_code, a.kind, a.net_minor, a.cap_minor) for a in alerts])


def _optional_id(value: bytes | None) -> int | None:
    return None if value is None else int.from_bytes(value, "big")
