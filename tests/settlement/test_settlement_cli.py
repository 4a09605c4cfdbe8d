"""``onecard cycle`` and ``onecard reconcile`` end to end on a real database."""

import asyncio
import datetime as dt

import msgspec

from adapters.iso20022 import camt053, ids, pacs002
from engine.cli import main
from engine.settlement.outbox import Payout, apply_statuses, post_payouts
from ledger import db
from ledger.ids import new_id
from settlement_world import make_world

TODAY = dt.date(2026, 12, 1)


def _prepare(db_url):
    async def run():
        pool = await db.create_pool(db_url, size_max=2)
        try:
            world = await make_world(pool)
            await world.fares(pool, [250])
            payouts = [Payout(new_id(), world.payer_account, world.cards[0], amount, "ICBC", "Han Meimei",
                              "6222020000000002", "Subsidy Fund") for amount in (1_000, 2_000)]
            async with pool.acquire() as connection, connection.transaction():
                await post_payouts(connection, world.ledger, payouts)
                await apply_statuses(connection, world.ledger, "ICBC", [
                    pacs002.TransactionStatus(ids.end_to_end_id(p.transfer_id), "ACSC") for p in payouts])
            return [ids.end_to_end_id(p.transfer_id) for p in payouts]
        finally:
            await pool.close()

    return asyncio.run(run())


def _statement(entries):
    return camt053.build(camt053.Statement(
        ids.message_id("C053", 1), dt.datetime(2026, 12, 1, 16, tzinfo=dt.timezone.utc), "S1", "ONECARD-ICBC",
        (camt053.Balance("OPBD", 0, "CNY", TODAY),), tuple(entries)))


def test_cycle_commands_and_reconcile(db_url, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ONECARD_DATABASE_URL", db_url)
    monkeypatch.setenv("ONECARD_HOME", str(tmp_path))
    e2e = _prepare(db_url)

    assert main(["cycle", "close"]) == 0
    assert capsys.readouterr().out == "1\n"
    assert main(["cycle", "show", "1", "--csv"]) == 0
    assert capsys.readouterr().out.splitlines()[1:] == [
        f"1,PENDING_SETTLEMENT,0,{_cut(tmp_path)},BOC,0,250,250,2.50",
        f"1,PENDING_SETTLEMENT,0,{_cut(tmp_path)},CCB,3000,0,-3000,-30.00",
        f"1,PENDING_SETTLEMENT,0,{_cut(tmp_path)},ICBC,250,3000,2750,27.50"]
    assert main(["cycle", "show", "1"]) == 0
    assert capsys.readouterr().out.splitlines()[1:4] == [  # one unit (yuan) on every line
        "  BOC              owes           0.00  owed           2.50  net             2.50 CNY",
        "  CCB              owes          30.00  owed           0.00  net           -30.00 CNY",
        "  ICBC             owes           2.50  owed          30.00  net            27.50 CNY"]
    assert main(["cycle", "settle", "1"]) == 0
    assert capsys.readouterr().out == "cycle 1 SETTLED\n"
    assert main(["cycle", "settle", "1"]) == 1
    assert "cycle 1 is SETTLED; it cannot become SETTLED" in capsys.readouterr().err
    assert main(["cycle", "list", "--json"]) == 0
    assert [(c["cycle_id"], c["state"]) for c in msgspec.json.decode(capsys.readouterr().out)] == [
        (2, "OPEN"), (1, "SETTLED")]

    clean = tmp_path / "clean.xml"
    clean.write_bytes(_statement([camt053.StatementEntry(e, amount, "CNY", "DBIT", TODAY, TODAY)
                                  for e, amount in zip(e2e, (1_000, 2_000))]))
    assert main(["reconcile", str(clean), "--bank", "ICBC"]) == 0
    assert capsys.readouterr().out == "2 matched\nclean\n"
    # Restricted to another day, the engine expects nothing: both entries are unknown to it.
    assert main(["reconcile", str(clean), "--bank", "ICBC", "--date", "2000-01-01", "--json"]) == 1
    view = msgspec.json.decode(capsys.readouterr().out)
    assert [item["outcome"] for item in view["unmatched_statement"]] == ["UNKNOWN_TO_ENGINE"] * 2

    differing = tmp_path / "differing.xml"
    differing.write_bytes(_statement([
        camt053.StatementEntry(e2e[0], 1_001, "CNY", "DBIT", TODAY, TODAY),
        camt053.StatementEntry(ids.end_to_end_id(99), 5, "CNY", "DBIT", TODAY, TODAY)]))
    assert main(["reconcile", str(differing), "--bank", "ICBC"]) == 1
    assert capsys.readouterr().out.splitlines() == [
        "0 matched",
        f"mismatched: {e2e[0]} AMOUNT_DIFFERS amount_minor",
        f"unmatched_engine: {e2e[1]} MISSING_ON_STATEMENT",
        f"unmatched_statement: {ids.end_to_end_id(99)} UNKNOWN_TO_ENGINE",
        "DIFFERENCES"]

    bad = tmp_path / "bad.xml"
    bad.write_bytes(clean.read_bytes().replace(b"<CdtDbtInd>DBIT</CdtDbtInd>", b"<CdtDbtInd>DEBIT</CdtDbtInd>", 1))
    assert main(["reconcile", str(bad), "--bank", "ICBC"]) == 1
    assert "CdtDbtInd" in capsys.readouterr().err


def _cut(home):
    return msgspec.json.decode((home / "reports" / "cycle-1.json").read_bytes())["cycle"]["timestamp_last"]


def test_reconcile_refuses_a_statement_of_another_account(db_url, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ONECARD_DATABASE_URL", db_url)
    monkeypatch.setenv("ONECARD_HOME", str(tmp_path))
    assert main(["banks", "add", "ABC", "--name", "Agricultural Bank", "--statement-account", "ONECARD-ABC"]) == 0
    assert capsys.readouterr().out == "ABC\n"
    assert main(["banks", "list", "--json"]) == 0
    assert [b["statement_account"] for b in msgspec.json.decode(capsys.readouterr().out)] == ["ONECARD-ABC"]
    icbc_statement = tmp_path / "icbc.xml"
    icbc_statement.write_bytes(_statement([]))  # the engine's ICBC account: ONECARD-ICBC
    assert main(["reconcile", str(icbc_statement), "--bank", "ABC"]) == 1
    captured = capsys.readouterr()
    assert (captured.out, captured.err) == ("", "onecard: Stmt/Acct/Id: statement of account 'ONECARD-ICBC', "
                                                "but the engine's account with ABC is 'ONECARD-ABC'\n")
