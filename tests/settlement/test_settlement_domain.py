"""Pure settlement domain: net positions (property: they sum to zero), cap alerts, the
state table, the close schedule, the report, the settlement instruction."""

import datetime as dt

import msgspec
import pytest
from hypothesis import given, strategies as st

from adapters.iso20022 import ids, pacs008
from engine.errors import UsageError
from engine.settlement import instructions, report
from engine.settlement.cycles import BankPosition, Cycle
from engine.settlement.errors import CycleStateError
from engine.settlement.positions import CapAlert, Position, cap_alerts, net_positions
from engine.settlement.registry import CLEARING_ACCOUNT_ID
from engine.settlement.schedule import CloseSchedule
from engine.settlement.states import TRANSITIONS, CycleState, check_transition

BANKS = st.sampled_from(["ABC", "BOC", "CCB", "ICBC"])
FLOWS = st.lists(st.tuples(BANKS, BANKS, st.integers(0, 10**12)), max_size=60)


@given(FLOWS)
def test_positions_sum_to_zero_and_match_gross_flows(flows):
    positions = net_positions(flows, ["PSBC"])
    assert sum(p.net_minor for p in positions) == 0
    assert [p.bank_code for p in positions] == sorted({b for f in flows for b in f[:2]} | {"PSBC"})
    for position in positions:
        assert position.debit_minor == sum(a for d, c, a in flows if d == position.bank_code and c != d)
        assert position.credit_minor == sum(a for d, c, a in flows if c == position.bank_code and c != d)


def test_positions_by_hand():
    flows = [("ICBC", "BOC", 950), ("CCB", "ICBC", 15_000), ("ICBC", "CCB", 5_000), ("ICBC", "ICBC", 77)]
    assert net_positions(flows) == [Position("BOC", 0, 950), Position("CCB", 15_000, 5_000),
                                    Position("ICBC", 5_950, 15_000)]


def test_position_overflow_is_refused():
    with pytest.raises(OverflowError, match="position of BOC exceeds"):
        net_positions([("ICBC", "BOC", 2**62), ("CCB", "BOC", 2**62)])


@pytest.mark.parametrize("debit, credit, cap, expected", [
    (799, 0, 1_000, []),
    (800, 0, 1_000, [CapAlert("X", "approaching", -800, 1_000)]),
    (1_000, 0, 1_000, [CapAlert("X", "exceeded", -1_000, 1_000)]),
    (5_000, 0, 0, []),
    (0, 5_000, 1_000, []),
])
def test_cap_alerts(debit, credit, cap, expected):
    assert cap_alerts([Position("X", debit, credit)], {"X": cap}) == expected


def test_state_table_allows_only_the_lifecycle():
    order = list(CycleState)
    assert TRANSITIONS == {(a, b) for a, b in zip(order, order[1:])}
    for current in CycleState:
        for wanted in CycleState:
            if (current, wanted) in TRANSITIONS:
                assert check_transition(3, current.value, wanted) is current
            else:
                with pytest.raises(CycleStateError, match=f"cycle 3 is {current.value}; it cannot become"):
                    check_transition(3, current.value, wanted)


def test_schedule_across_days_and_configuration():
    schedule = CloseSchedule.from_env({"ONECARD_CYCLE_CLOSE": "02:30", "ONECARD_CYCLE_TIMEZONE": "Europe/Warsaw"})
    # Poland leaves summer time on 2026-10-25 at 03:00: the local close stays 02:30.
    assert schedule.next_close_utc(dt.datetime(2026, 10, 24, 1, 0, tzinfo=dt.timezone.utc)) == \
        dt.datetime(2026, 10, 25, 0, 30, tzinfo=dt.timezone.utc)
    assert schedule.next_close_utc(dt.datetime(2026, 10, 25, 0, 30, tzinfo=dt.timezone.utc)) == \
        dt.datetime(2026, 10, 26, 1, 30, tzinfo=dt.timezone.utc)
    for bad in ({"ONECARD_CYCLE_CLOSE": "25:00"}, {"ONECARD_CYCLE_TIMEZONE": "Mars/Olympus"}):
        with pytest.raises(UsageError, match="ONECARD_CYCLE_CLOSE/ONECARD_CYCLE_TIMEZONE"):
            CloseSchedule.from_env(bad)


CYCLE = Cycle(4, "CLOSED", 100, 200, 3, 0, dt.datetime(2026, 12, 1, tzinfo=dt.timezone.utc),
              dt.datetime(2026, 12, 1, 15, tzinfo=dt.timezone.utc), None)
POSITIONS = [BankPosition(4, "ICBC", 5_950, 15_000, 9_050, None, False),
             BankPosition(4, "BOC", 0, 950, 950, None, False),
             BankPosition(4, "CCB", 15_000, 5_000, -10_000, None, False)]


def test_report_csv_exact():
    assert report.render_csv(CYCLE, POSITIONS) == (
        "cycle_id,state,timestamp_after,timestamp_last,bank_code,debit_minor,credit_minor,net_minor,net\r\n"
        "4,CLOSED,100,200,BOC,0,950,950,9.50\r\n"
        "4,CLOSED,100,200,CCB,15000,5000,-10000,-100.00\r\n"
        "4,CLOSED,100,200,ICBC,5950,15000,9050,90.50\r\n")


def test_report_json_totals():
    document = msgspec.json.decode(report.render_json(CYCLE, POSITIONS))
    assert (document["debit_total_minor"], document["credit_total_minor"], document["net_total_minor"]) == (
        20_950, 20_950, 0)
    assert [row["net"] for row in document["positions"]] == ["9.50", "-100.00", "90.50"]
    assert document["cycle"] == {"cycle_id": 4, "state": "CLOSED", "timestamp_after": 100, "timestamp_last": 200,
                                 "transfer_count": 3, "unattributed_count": 0}


def test_report_refuses_positions_that_do_not_sum_to_zero():
    with pytest.raises(AssertionError, match="sum to zero"):
        report.render_csv(CYCLE, POSITIONS[:2])


@pytest.mark.parametrize("net_minor, debtor, creditor", [
    (-10_000, "CCB", "onecard clearing"),
    (9_050, "onecard clearing", "ICBC"),
])
def test_settlement_instruction_directions_and_ids(net_minor, debtor, creditor):
    bank = debtor if debtor != "onecard clearing" else creditor
    message = instructions.build(instructions.Instruction(4, bank, 0xABC, net_minor, 12345),
                                 engine_code="ONECARD", created_at=dt.datetime(2026, 12, 1, 15, tzinfo=dt.timezone.utc))
    parsed = pacs008.parse(message.xml)
    assert parsed.message_id == ids.message_id("S008", 12345) == message.message_id
    assert (parsed.instructing_agent, parsed.instructed_agent) == ("ONECARD", bank)
    (transfer,) = parsed.transfers
    assert transfer.end_to_end_id == ids.end_to_end_id(12345)
    assert ids.transfer_id_from_end_to_end_id(transfer.end_to_end_id) == 12345
    assert (transfer.amount_minor, transfer.currency, transfer.creditor_name) == (abs(net_minor), "CNY", creditor)
    expected_account = f"{0xABC:032X}" if creditor != "onecard clearing" else f"{CLEARING_ACCOUNT_ID:032X}"
    assert transfer.creditor_account == expected_account
    assert b"<RmtInf><Ustrd>settlement cycle 4</Ustrd></RmtInf>" in message.xml
    assert f"<Dbtr><Nm>{debtor}</Nm></Dbtr>".encode() in message.xml
