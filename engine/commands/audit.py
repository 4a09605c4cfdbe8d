"""``onecard audit``: check the ledger's invariants; exit 1 if any is breached."""

from __future__ import annotations

import argparse
import asyncio

from engine.config import Config
from engine.output import add_command, emit
from ledger import db
from ledger.audit import AuditReport, audit

EXIT_BREACH = 1


def register(subparsers) -> None:
    add_command(
        subparsers, "audit",
        "check the ledger: debits = credits, balances = transfers, limits, journal hash chain",
    ).set_defaults(handler=_audit)


def _audit(args: argparse.Namespace) -> int:
    async def run() -> AuditReport:
        pool = await db.open_database(Config.from_env(), size_max=1)
        try:
            async with pool.acquire() as connection:
                return await audit(connection)
        finally:
            await pool.close()

    report = asyncio.run(run())
    emit(args, render(report), report)
    return 0 if report.ok else EXIT_BREACH


def render(report: AuditReport) -> str:
    """The human form of a report: one line per check, breaches indented below it."""
    lines = []
    for check in report.checks:
        lines.append(f"{'ok    ' if check.ok else 'BREACH'} {check.name}: {check.examined}")
        lines.extend(f"         {breach}" for breach in check.breaches)
    lines.append("audit passed" if report.ok else "audit FAILED")
    return "\n".join(lines)
