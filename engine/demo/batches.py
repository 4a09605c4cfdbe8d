"""Step 5: a subsidy batch (GBK CSV with bad lines) and a wage batch (XLSX).

The lines come from :func:`engine.synthetic.batch_lines` (beneficiaries of the same
synthetic population, registered for disbursement first); each file is written to the
artefact folder, validated and submitted by the programme's maker, and approved by a
second user (the checker) for the content hash it reviewed, as ``onecard batch submit``
and ``onecard batch approve`` do. Each programme is funded at its bank with the accepted
amount and the batch executed (:func:`engine.disbursement.execution.execute_batch`): the
payouts are posted and each issuing bank's pacs.008 is queued in the outbox, which the
clearing step delivers to the simbanks.
"""

from __future__ import annotations

import datetime as dt
import io
import itertools
import time
from dataclasses import dataclass
from pathlib import Path

from adapters.batch_file import open_batch_file
from engine.disbursement.execution import execute_batch, fund_programme
from engine.disbursement.lifecycle import LineStatus
from engine.disbursement.lines import LineSpool
from engine.disbursement.registry import CardholderRow, ImportResult
from engine.disbursement.result_file import result_row, write_result_csv
from engine.disbursement.results import LineResult
from engine.disbursement.store import DisbursementStore
from engine.synthetic import Population, batch_lines, write_batch_csv, write_batch_xlsx

from engine.demo.world import EMPLOYER_BANK, PARTNER_BANKS, SUBSIDY_BANK, World

PERIOD = "2026-11"
MAKER, CHECKER, OPERATOR = "demo-maker", "demo-checker", "demo-operator"


@dataclass(frozen=True)
class BatchPlan:
    """One batch of the demo: programme, file name, line count and the bad lines in it."""

    programme: str
    kind: str
    name: str
    per_person_max_minor: int
    file_name: str
    lines: int
    bad: dict[LineResult, int]
    stream: int
    payer_bank: str


def plans(lines: int) -> list[BatchPlan]:
    """The subsidy (CSV, GBK, some bad lines) and wage (XLSX) batches of ``lines`` lines each."""
    bad = max(1, lines // 100)
    return [
        BatchPlan("ELDERLY", "subsidy", "高龄津贴", 50_000, "subsidy_batch_gbk.csv", lines,
                  {LineResult.name_mismatch: bad, LineResult.invalid_id_checksum: bad,
                   LineResult.amount_over_limit: bad, LineResult.cardholder_not_found: bad}, stream=11,
                  payer_bank=SUBSIDY_BANK),
        BatchPlan("WAGES", "wage", "农民工工资", 1_000_000, "wage_batch.xlsx", lines, {}, stream=12,
                  payer_bank=EMPLOYER_BANK),
    ]


class PartnerPopulation(Population):
    """The synthetic population restricted to cardholders of the partner banks (payouts
    go to banks the engine settles with)."""

    def people(self, count, **options):
        """Like :meth:`Population.people`, keeping only partner banks' cardholders."""
        partner = (person for person in super().people(10**12, **options) if person.bank_code in PARTNER_BANKS)
        return itertools.islice(partner, count)


async def run_batches(world: World, out: Path, lines: int, seed: int) -> dict[str, dict]:
    """Write, submit and approve each planned batch; results by batch (state, lines by result)."""
    store = DisbursementStore(world.pool, world.key_service)
    population = PartnerPopulation(seed)
    results = {}
    for plan in plans(lines):
        drawn: list = []
        batch = list(batch_lines(population, plan.lines, per_person_max_minor=plan.per_person_max_minor,
                                 bad=plan.bad, stream=plan.stream, drawn=drawn, item=plan.name,
                                 amounts_minor=(10_000, 15_050, 30_000, 8_000) if plan.kind == "subsidy"
                                 else (420_000, 385_050, 512_000)))
        await store.import_cardholders(
            CardholderRow(number, ImportResult.ok, "", p.id_number, p.name, p.card_number, p.bank_code,
                          p.status, p.categories) for number, p in enumerate(drawn, start=1))
        path = out / plan.file_name
        out.mkdir(parents=True, exist_ok=True)
        if plan.file_name.endswith(".csv"):
            write_batch_csv(path, batch, encoding="gbk")
        else:
            write_batch_xlsx(path, batch)
        results[plan.programme] = await _submit_and_approve(store, world.ledger, plan, path, out)
    return results


async def _submit_and_approve(store: DisbursementStore, ledger, plan: BatchPlan, path: Path, out: Path) -> dict:
    programme, _ = await store.create_programme(plan.programme, plan.kind, plan.name, plan.per_person_max_minor)
    rows: list[tuple[str, ...]] = []

    def on_outcome(outcome) -> None:
        status = LineStatus.accepted if outcome.result is LineResult.ok else LineStatus.rejected
        rows.append(result_row(outcome.line, status, outcome.result))

    today = dt.datetime.now(dt.timezone.utc).date()
    spool = LineSpool()
    try:
        summary = await store.validate(open_batch_file(path), programme, PERIOD, today, on_outcome, spool)
        now_ms = int(time.time() * 1000)
        record = await store.submit(plan.programme, PERIOD, MAKER, summary, now_ms, spool)
    finally:
        spool.close()
    await store.approve(record.id, CHECKER, summary.content_sha256, now_ms)
    await fund_programme(store, ledger, plan.programme, summary.accepted_minor, bank_code=plan.payer_bank)
    execution = await execute_batch(store, ledger, record.id, OPERATOR, int(time.time() * 1000))
    stream = io.StringIO(newline="")
    write_result_csv(stream, rows)
    (out / f"{Path(plan.file_name).stem}_result.csv").write_text(stream.getvalue(), encoding="utf-8-sig")
    approved = await store.batch(record.id)
    return {"batch_id": record.id, "file": plan.file_name, "state": str(approved.state),
            "lines": summary.lines_count, "accepted": summary.accepted_count,
            "accepted_minor": summary.accepted_minor, "lines_by_result": dict(sorted(summary.results.items())),
            "submitted_by": MAKER, "approved_by": CHECKER, "paid_lines": execution.lines,
            "paid_minor": execution.amount_minor, "pacs008_messages": execution.messages}


def expected_bad(lines: int) -> dict[str, int]:
    """The bad lines planned per result name over all batches."""
    expected: dict[str, int] = {}
    for plan in plans(lines):
        for result, count in plan.bad.items():
            expected[result.name] = expected.get(result.name, 0) + count
    return expected
