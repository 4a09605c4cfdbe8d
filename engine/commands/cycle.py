"""``onecard cycle close|list|show|settle``: settlement cycles."""

from __future__ import annotations

import argparse
import dataclasses

from adapters.iso20022.money import format_amount
from engine.arguments import record_id
from engine.output import add_command, emit
from engine.settlement import report
from engine.settlement.cycles import Cycles
from engine.settlement.registry import CURRENCY
from engine.settlement.runtime import reports_folder, run_with_database


def register(subparsers) -> None:
    group = subparsers.add_parser("cycle", help="settlement cycles: close, list, show, settle")
    commands = group.add_subparsers(dest="cycle_command", metavar="ACTION", required=True)
    close = add_command(commands, "close", "close the open cycle now, freeze positions, issue instructions")
    close.add_argument("--no-issue", action="store_true", help="only close (leave it CLOSED)")
    close.set_defaults(handler=_close)
    listing = add_command(commands, "list", "list cycles, newest first")
    listing.add_argument("--limit", type=record_id, default=20)
    listing.set_defaults(handler=_list)
    show = add_command(commands, "show", "show a cycle's positions and history")
    show.add_argument("cycle_id", type=record_id)
    show.add_argument("--csv", action="store_true", help="print the settlement report as CSV")
    show.set_defaults(handler=_show)
    settle = add_command(commands, "settle", "settle a closed cycle (confirms every bank)")
    settle.add_argument("cycle_id", type=record_id)
    settle.set_defaults(handler=_settle)


def _close(args: argparse.Namespace) -> int:
    async def work(pool, ledger):
        cycles = Cycles(pool, ledger)
        cycle = await cycles.close(actor="cli")
        if not args.no_issue:
            cycle = await cycles.issue(cycle.cycle_id, actor="cli")
        positions = await cycles.positions(cycle.cycle_id)
        alerts = await _alerts(pool, cycle.cycle_id)
        return cycle, positions, alerts

    cycle, positions, alerts = run_with_database(work)
    folder = reports_folder()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"cycle-{cycle.cycle_id}.csv").write_text(report.render_csv(cycle, positions))
    (folder / f"cycle-{cycle.cycle_id}.json").write_bytes(report.render_json(cycle, positions))
    lines = [str(cycle.cycle_id)] + [f"alert: {a['bank_code']} net debit {a['kind']} its cap" for a in alerts]
    emit(args, "\n".join(lines), {"cycle": dataclasses.asdict(cycle), "alerts": alerts,
                                  "report_csv": str(folder / f"cycle-{cycle.cycle_id}.csv")})
    return 0


async def _alerts(pool, cycle_id: int) -> list[dict]:
    async with pool.acquire() as connection:
        rows = await connection.fetch(
            "SELECT bank_code, kind, net_minor, cap_minor FROM settlement_alerts WHERE cycle_id = $1 ORDER BY bank_code",
            cycle_id)
    return [dict(row) for row in rows]


def _list(args: argparse.Namespace) -> int:
    cycles = run_with_database(lambda pool, ledger: Cycles(pool, ledger).list(limit=args.limit))
    lines = [f"{c.cycle_id:>6}  {c.state:<18}  transfers {c.transfer_count:>8}  "
             f"closed {c.closed_at.isoformat() if c.closed_at else '-'}" for c in cycles]
    emit(args, "\n".join(lines), [dataclasses.asdict(c) for c in cycles])
    return 0


def _show(args: argparse.Namespace) -> int:
    async def work(pool, ledger):
        cycles = Cycles(pool, ledger)
        cycle = await cycles.show(args.cycle_id)
        return cycle, await cycles.positions(cycle.cycle_id), await cycles.history(cycle.cycle_id)

    cycle, positions, history = run_with_database(work)
    if args.csv:
        print(report.render_csv(cycle, positions), end="")
        return 0
    if args.json:
        print(report.render_json(cycle, positions).decode())
        return 0
    lines = [f"cycle {cycle.cycle_id} {cycle.state}: {cycle.transfer_count} transfers "
             f"({cycle.unattributed_count} unattributed), ledger time ({cycle.timestamp_after}, {cycle.timestamp_last}]"]
    lines += [f"  {row['bank_code']:<16} owes {format_amount(row['debit_minor'], CURRENCY):>14}  "
              f"owed {format_amount(row['credit_minor'], CURRENCY):>14}  "
              f"net {row['net']:>16} {CURRENCY}{'  confirmed' if p.confirmed else ''}"
              for row, p in zip(report.rows(cycle, positions), positions)]
    lines += [f"  {h.at.isoformat()}  {h.from_state or '-'} -> {h.to_state}  by {h.actor}" for h in history]
    emit(args, "\n".join(lines), None)
    return 0


def _settle(args: argparse.Namespace) -> int:
    cycle = run_with_database(lambda pool, ledger: Cycles(pool, ledger).settle(args.cycle_id, actor="cli"))
    emit(args, f"cycle {cycle.cycle_id} {cycle.state}", dataclasses.asdict(cycle))
    return 0
