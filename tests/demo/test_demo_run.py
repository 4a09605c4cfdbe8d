"""A small ``onecard demo`` run, end to end on the test server: real outcomes asserted."""

from __future__ import annotations

import json

import pytest

from adapters.iso20022 import schema
from adapters.iso20022.document import read_document
from engine.config import Config
from engine.demo.batches import expected_bad
from engine.demo.run import DemoOptions, batch_lines, run_demo
from engine.demo.world import PARTNER_BANKS

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def summary_and_out(tmp_path_factory, server_url):
    import asyncio

    out = tmp_path_factory.mktemp("demo") / "out"
    options = DemoOptions(cardholders=200, taps=2000, out=out, seed=3)
    config = Config(home=tmp_path_factory.mktemp("home"), database_url=server_url)
    return asyncio.run(run_demo(options, config)), out


def test_positions_sum_to_zero_and_the_cycle_settles(summary_and_out):
    summary, _ = summary_and_out
    positions = summary["positions"]
    assert set(positions) == set(PARTNER_BANKS)
    assert summary["positions_sum_minor"] == sum(p["net_minor"] for p in positions.values()) == 0
    assert all(p["net_minor"] == p["credit_minor"] - p["debit_minor"] for p in positions.values())
    # CCB holds the employer's wage escrow: it pays the (large) wages to the other banks' cards.
    assert positions["CCB"]["net_minor"] < 0 < positions["ICBC"]["net_minor"]
    assert summary["cycle"]["state"] == "SETTLED" and summary["cycle"]["unattributed_count"] == 0
    assert summary["instruction_status"] == {bank: "ACSC" for bank in PARTNER_BANKS}
    assert summary["undelivered_messages"] == 0


def test_audit_passes_and_reconciliation_is_clean(summary_and_out):
    summary, _ = summary_and_out
    assert summary["audit_ok"] is True
    for bank, figures in summary["reconciliation"].items():
        assert figures["clean"], (bank, figures)
        assert figures["matched"] > 1  # the bank's settlement instruction and its payouts


def test_taps_and_decline_reasons(summary_and_out):
    summary, _ = summary_and_out
    taps = summary["taps"]
    by_reason = taps["by_reason"]
    # Every sent tap is recorded once; the daily close adds one record per missing exit.
    assert taps["approved"] + taps["declined"] == summary["performance"]["taps_sent"] + taps["missing_exits"]
    assert summary["performance"]["taps_sent"] == 2000
    assert by_reason["arqc_invalid"] == summary["simulator_faults"]["wrong_arqc"]
    assert by_reason["card_lost"] >= summary["simulator_faults"]["deny_listed"] > 0
    assert by_reason.get("atc_cloned", 0) + by_reason.get("atc_replayed", 0) > 0
    assert taps["missing_exits"] == summary["missing_exits_charged"] > 0
    assert taps["fare_total_minor"] > 0 and taps["fares_by_category"]["disabled"]["fare_minor"] == 0
    assert taps["fares_by_network"]["bus"]["taps"] > 0 and taps["fares_by_network"]["metro"]["taps"] > 0
    # Taps a gate approved offline (the engine answered too late) were uploaded after the day.
    offline = sum(count for outcome, count in summary["gate_outcomes"].items() if outcome.endswith("offline"))
    assert summary["offline_taps_uploaded"] == offline


def test_batches_are_executed_with_the_planned_bad_lines(summary_and_out):
    summary, _ = summary_and_out
    batches = summary["batches"]
    assert {name: batch["state"] for name, batch in batches.items()} == {"ELDERLY": "executed", "WAGES": "executed"}
    for batch in batches.values():
        assert (batch["paid_lines"], batch["paid_minor"]) == (batch["accepted"], batch["accepted_minor"])
    matched = sum(figures["matched"] for figures in summary["reconciliation"].values())
    assert matched == sum(batch["paid_lines"] for batch in batches.values()) + len(PARTNER_BANKS)
    lines = batch_lines(DemoOptions(cardholders=200))
    bad = {reason: count for batch in batches.values() for reason, count in batch["lines_by_result"].items()
           if reason != "ok"}
    assert bad == expected_bad(lines)
    assert batches["WAGES"]["accepted"] == lines
    assert batches["ELDERLY"]["submitted_by"] != batches["ELDERLY"]["approved_by"]


def test_artefacts_exist_and_messages_validate(summary_and_out):
    summary, out = summary_and_out
    for name in ("taps_per_minute.png", "net_positions.png"):
        assert (out / name).read_bytes().startswith(PNG_MAGIC)
    for name in ("taps_by_reason.csv", "fares_by_category.csv", "settlement_positions.csv",
                 "subsidy_batch_gbk.csv", "wage_batch.xlsx", "subsidy_batch_gbk_result.csv",
                 *(f"reconciliation_{bank}.csv" for bank in PARTNER_BANKS)):
        assert (out / name).stat().st_size > 0, name
    assert json.loads((out / "summary.json").read_text())["audit_ok"] is True
    messages = sorted((out / "iso20022").glob("*.xml"))
    kinds = {path.name.split(".")[-2] for path in messages}
    assert kinds == {"pacs008", "pacs002", "camt053"}
    for path in messages:
        document = read_document(path.read_bytes(), tuple(sorted(schema.MESSAGE_DEFINITIONS)))
        assert document.message_definition.startswith(path.name.split(".")[-2].replace("pacs", "pacs.")
                                                      .replace("camt", "camt.")), path.name
    (out / "subsidy_batch_gbk.csv").read_bytes().decode("gbk")  # really GBK


def test_a_second_run_gets_fresh_state_and_replaces_the_messages(summary_and_out, server_url, tmp_path):
    import asyncio

    first, out = summary_and_out
    second = asyncio.run(run_demo(DemoOptions(cardholders=30, taps=300, out=out, seed=3),
                                  Config(home=tmp_path, database_url=server_url)))
    assert second["database"] != first["database"]
    assert second["audit_ok"] is True and second["positions_sum_minor"] == 0
    assert second["cycle"]["cycle_id"] == 1  # a fresh ledger, not the first run's
    messages = {path.name for path in (out / "iso20022").glob("*.xml")}
    assert len(messages) == len(second["iso20022_messages"])  # this run's messages only
