"""Step 6: close the settlement cycle, exchange messages with the simbanks, reconcile, audit.

The open cycle is closed at a ledger commit point and issued: one pacs.008 per bank with a
non-zero net position goes to the outbox, and the :class:`engine.settlement.outbox.Dispatcher`
pushes every pending message (settlement instructions and disbursement payouts) to its
bank's simbank over signed HTTP. The engine then fetches each settlement instruction's
pacs.002 and confirms the banks whose instruction was accepted (``ACSC``): when all did,
the reservations are posted and the cycle is ``SETTLED``. Each bank's camt.053 of the
day is fetched and reconciled against what the engine expects (accepted payouts and
returns, plus the accepted settlement instructions, which the simbank books as debits of
the engine's account like any credit transfer it executes). Last, the ledger audit.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass, field

import aiohttp

from adapters import signing
from adapters.delivery import HttpDelivery
from adapters.iso20022 import camt053, ids, pacs002
from adapters.reconcile import EngineTransfer, Report, reconcile
from engine.demo.world import ENGINE_KEY_ID, World
from engine.settlement.cycles import BankPosition, Cycle, Cycles
from engine.settlement.outbox import Dispatcher, HttpTransport, expected_statement
from ledger.audit import AuditReport, audit

DRAIN_ROUNDS_MAX = 200
DRAIN_PAUSE_S = 0.05


@dataclass
class Clearing:
    """The cycle and what was exchanged (message bytes by artefact name)."""

    cycle: Cycle | None = None
    positions: list[BankPosition] = field(default_factory=list)
    messages: dict[str, bytes] = field(default_factory=dict)
    statuses: dict[str, str] = field(default_factory=dict)       # bank -> status of its instruction
    reconciliations: dict[str, Report] = field(default_factory=dict)
    audit: AuditReport | None = None
    undelivered: int = 0


async def settle(world: World) -> Clearing:
    """Run step 6 (see the module docstring)."""
    result = Clearing()
    cycles = Cycles(world.pool, world.ledger)
    closed = await cycles.close(actor="demo")
    await cycles.issue(closed.cycle_id, actor="demo")
    result.positions = await cycles.positions(closed.cycle_id)
    async with world.pool.acquire() as connection:
        outbox = await connection.fetch(
            "SELECT message_id, bank_code, kind, xml FROM settlement_outbox ORDER BY created_at, message_id")
    for row in outbox:
        result.messages[f"{row['bank_code']}-{row['kind']}-{row['message_id']}.pacs008.xml"] = bytes(row["xml"])
    result.undelivered = await _deliver(world)
    async with aiohttp.ClientSession() as session:
        for row in (row for row in outbox if row["kind"] == "settlement"):
            bank = row["bank_code"]
            answer = await _get(session, world, bank, f"/v1/pacs002/{row['message_id']}")
            report = pacs002.parse(answer)
            result.messages[f"{bank}-settlement-{report.message_id}.pacs002.xml"] = answer
            result.statuses[bank] = ",".join(sorted({t.status for t in report.transactions}))
            if result.statuses[bank] == "ACSC":
                await cycles.confirm(closed.cycle_id, bank, actor=f"bank:{bank}")
        today = dt.datetime.now(dt.timezone.utc).date()
        for bank in world.simbanks:
            statement_xml = await _get(session, world, bank, f"/v1/camt053?date={today.isoformat()}")
            result.messages[f"{bank}-{today.isoformat()}.camt053.xml"] = statement_xml
            statement = camt053.parse(statement_xml)
            async with world.pool.acquire() as connection:
                expected = await expected_statement(connection, bank)
            expected += _settlement_entries(result.positions, bank, result.statuses)
            result.reconciliations[bank] = reconcile(expected, statement.entries)
    result.cycle = await cycles.show(closed.cycle_id)
    async with world.pool.acquire() as connection:
        result.audit = await audit(connection)
    return result


async def _deliver(world: World) -> int:
    """Push every pending outbox message; return how many are still undelivered."""
    transports = {code: HttpTransport(HttpDelivery(bank.url, key_id=ENGINE_KEY_ID, key=world.engine_key))
                  for code, bank in world.simbanks.items()}
    dispatcher = Dispatcher(world.pool, world.ledger, transports, backoff_initial_s=0.01, backoff_max_s=0.1)
    try:
        for _ in range(DRAIN_ROUNDS_MAX):
            await dispatcher.run_once()
            async with world.pool.acquire() as connection:
                pending = await connection.fetchval("SELECT count(*) FROM settlement_outbox WHERE state = 'pending'")
            if not pending:
                break
            await asyncio.sleep(DRAIN_PAUSE_S)
        async with world.pool.acquire() as connection:
            return await connection.fetchval("SELECT count(*) FROM settlement_outbox WHERE state <> 'delivered'")
    finally:
        for transport in transports.values():
            await transport.close()


async def _get(session: aiohttp.ClientSession, world: World, bank: str, path_and_query: str) -> bytes:
    """A signed GET to ``bank``'s simbank; the body (raises on an HTTP error)."""
    headers = signing.sign(world.engine_key, "GET", path_and_query, b"", key_id=ENGINE_KEY_ID)
    async with session.get(world.simbanks[bank].url + path_and_query, headers=headers) as response:
        response.raise_for_status()
        return await response.read()


def _settlement_entries(positions: list[BankPosition], bank: str, statuses: dict[str, str]) -> list[EngineTransfer]:
    """The accepted settlement instruction of ``bank`` as the simbank books it (a debit)."""
    return [EngineTransfer(ids.end_to_end_id(position.transfer_id), abs(position.net_minor), "CNY", camt053.DEBIT)
            for position in positions
            if position.bank_code == bank and position.net_minor and statuses.get(bank) == "ACSC"]
