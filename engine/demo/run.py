"""The demo's steps in order, with progress bars (see :mod:`engine.demo`)."""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import msgspec
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from engine.config import Config
from engine.demo import CARDHOLDERS_DEFAULT, OUT_DEFAULT, TAPS_DEFAULT
from engine.demo import batches as batches_step
from engine.demo import cardholders, clearing, keys, report, transit
from engine.demo.world import PARTNER_BANKS, add_participants, open_world


@dataclass(frozen=True)
class DemoOptions:
    """``cardholders`` and ``taps`` counts, the artefact folder ``out``, the ``seed``."""

    cardholders: int = CARDHOLDERS_DEFAULT
    taps: int = TAPS_DEFAULT
    out: Path = OUT_DEFAULT
    seed: int = 1


async def run_demo(options: DemoOptions, config: Config, console: Console | None = None) -> dict:
    """Run every step; return the summary (also written to ``out/summary.json``).

    Raises
    ------
    ledger.errors.DatabaseError, hsm.errors.HsmError, engine.errors.EngineError
        A step could not run (the message says which and why).
    """
    console = console or Console(stderr=True)
    timings: dict[str, float] = {}
    banks = list(PARTNER_BANKS)
    started_s = time.monotonic()
    with Progress(TextColumn("{task.description:<34}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=False) as progress:

        async def step(name: str, total: int, work: Callable[[Callable[[int], None]], object]):
            task = progress.add_task(name, total=total)
            began = time.monotonic()
            result = work(lambda n: progress.advance(task, n))
            if inspect.isawaitable(result):
                result = await result
            progress.update(task, completed=total)
            timings[name] = round(time.monotonic() - began, 2)
            return result

        async with open_world(config) as world:
            await step("1 banks, operators, payers", 1, lambda _: add_participants(world))
            people = await step("2 draw cardholders", 1,
                                lambda _: cardholders.draw(options.cardholders, banks, options.seed))
            sim = transit.simulation(people, options.taps, options.seed)

            async def ceremony(_):
                records = [await keys.import_issuer_key(world.key_service, f"imk-{bank.lower()}",
                                                        transit.SCHEMES[index], sim.issuer_master_keys[transit.SCHEMES[index]])
                           for index, bank in enumerate(banks)]
                await keys.generate_data_keys(world.key_service)
                return records

            ceremonies = await step("3 key ceremony", len(banks), ceremony)
            tokens = await step("2 register + enrol cardholders", len(people),
                                lambda advance: cardholders.register(world, people, advance))
            gate_keys = await transit.provision(world, sim, people, tokens, banks)
            day = await step("4 transit day (taps over HTTP)", options.taps,
                             lambda advance: transit.ride(world, sim, gate_keys, options.taps,
                                                          world.config.home / "gates", advance))
            await step("4 close transit day", 1, lambda _: transit.close_transit_day(world, day))
            batches = await step("5 subsidy + wage batches", 2,
                                 lambda _: batches_step.run_batches(world, options.out, batch_lines(options),
                                                                    options.seed))
            settled = await step("6 settle, reconcile, audit", 1, lambda _: clearing.settle(world))
            async with world.pool.acquire() as connection:
                taps = await report.tap_figures(connection)
            summary = {
                "database": world.database_name,
                "cardholders": _people_figures(people, tokens),
                "key_ceremony": [{"label": r.label, "scheme": r.scheme, "kcv": list(r.lines)} for r in ceremonies],
                "taps": taps,
                "gate_outcomes": dict(sorted(day.outcomes.items())),
                "simulator_faults": dict(sorted(day.faults.items())),
                "missing_exits_charged": day.missing_exits_charged,
                "offline_taps_uploaded": day.uploaded_offline,
                "collections_by_bank": day.collections,
                "batches": batches,
                "batch_bad_lines_planned": batches_step.expected_bad(batch_lines(options)),
                "cycle": {"cycle_id": settled.cycle.cycle_id, "state": settled.cycle.state,
                          "transfer_count": settled.cycle.transfer_count,
                          "unattributed_count": settled.cycle.unattributed_count},
                "positions": {p.bank_code: {"debit_minor": p.debit_minor, "credit_minor": p.credit_minor,
                                            "net_minor": p.net_minor, "confirmed": p.confirmed}
                              for p in settled.positions},
                "positions_sum_minor": sum(p.net_minor for p in settled.positions),
                "instruction_status": settled.statuses,
                "undelivered_messages": settled.undelivered,
                "iso20022_messages": sorted(settled.messages),
                "reconciliation": {bank: _reconciliation_figures(r) for bank, r in settled.reconciliations.items()},
                "audit_ok": settled.audit.ok,
                "audit": msgspec.to_builtins(settled.audit),
                "performance": report.latency_figures(day),
            }
    timings["total"] = round(time.monotonic() - started_s, 2)
    summary["timings_s"] = timings
    files = report.write_artefacts(options.out, summary, day, settled, {
        "summary.json": msgspec.json.format(msgspec.json.encode(summary))})
    assert files
    summary["artefacts"] = sorted(str(path) for path in options.out.rglob("*") if path.is_file())
    return summary


def batch_lines(options: DemoOptions) -> int:
    """Lines per disbursement batch: a tenth of the cardholders, at least 100."""
    return max(100, options.cardholders // 10)


def _people_figures(people, tokens) -> dict:
    figures = {"count": len(people), "enrolled": len(tokens), "by_bank": {}, "by_status": {}, "by_category": {}}
    for person in people:
        figures["by_bank"][person.bank_code] = figures["by_bank"].get(person.bank_code, 0) + 1
        figures["by_status"][person.status.value] = figures["by_status"].get(person.status.value, 0) + 1
        for category in person.categories:
            figures["by_category"][category.value] = figures["by_category"].get(category.value, 0) + 1
    return figures


def _reconciliation_figures(report) -> dict:
    return {"matched": len(report.matched), "mismatched": len(report.mismatched),
            "unmatched_engine": len(report.unmatched_engine),
            "unmatched_statement": len(report.unmatched_statement), "pending": len(report.pending),
            "clean": report.clean}
