"""The gate client (terminal.gate) against the real engine: real HTTP, real PostgreSQL,
emulated cards; online taps, the offline queue uploaded once the engine is back, and the
deny list copy fetched from ``GET /v1/deny-list``."""

from __future__ import annotations

import socket

import pytest

from engine.taps.wire import TapAnswer
from terminal.gate import GateClient, OfflineDecision, decided_offline

CARD_ACCOUNT_ID = 5001
# Weijianian -> Tianfu Square on Chengdu Line 1: 7.540 km, band 4-8 km = 3 CNY.
FARE_MINOR = 300
DAY_CAP_MINOR = 2000


@pytest.fixture
def down_url():
    """An engine URL nobody listens on (the engine is down)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def _answer(tap_id, fare_minor, day_total_minor, *, replayed=False):
    return TapAnswer(tap_id=tap_id, decision="approved", reason="approved", reason_code=0,
                     fare_minor=fare_minor, rider_category="adult",
                     day_total_minor=day_total_minor, day_cap_minor=DAY_CAP_MINOR,
                     replayed=replayed)


async def test_gate_reads_the_engines_answers_and_uploads_its_queue_without_double_charge(
        api, rider, tmp_path, down_url):
    queue = tmp_path / "gate-1.sqlite3"
    key = api.secrets["gate-1"]
    charged_exit = rider.tap("t-2", "exit", "tianfuguangchang", minutes=20)
    async with GateClient(api.base, "gate-1", key, queue) as gate:
        assert await gate.submit(rider.tap("t-1")) == _answer("t-1", 0, 0)
        assert await gate.submit(charged_exit) == _answer("t-2", FARE_MINOR, FARE_MINOR)
    # The engine goes down: the gate decides alone and queues (including t-2 again, as
    # after an answer lost on the way back, so the upload repeats a charged tap).
    async with GateClient(down_url, "gate-1", key, queue, timeout_s=0.5) as gate:
        offline = [await gate.submit(charged_exit),
                   await gate.submit(rider.tap("t-3", minutes=60)),
                   await gate.submit(rider.tap("t-4", "exit", "tianfuguangchang", minutes=80))]
        assert offline == [OfflineDecision(tap_id, "approved", "offline")
                           for tap_id in ("t-2", "t-3", "t-4")]
        assert all(decided_offline(decision) for decision in offline) and gate.queued == 3
        assert await gate.flush() == 0
    assert await api.balance(CARD_ACCOUNT_ID) == (FARE_MINOR, 0)
    # The engine is back: one upload, t-2 answered as before and not charged again.
    async with GateClient(api.base, "gate-1", key, queue) as gate:
        assert await gate.flush() == 3
        assert (gate.queued, gate.rejected()) == (0, [])
        assert await gate.flush() == 0
    assert await api.balance(CARD_ACCOUNT_ID) == (2 * FARE_MINOR, 0)
    assert await api.balance(api.operator_account_id) == (0, 2 * FARE_MINOR)
    async with api.pool.acquire() as connection:
        assert await connection.fetchval("SELECT count(*) FROM ledger_transfers") == 2
        assert await connection.fetchval("SELECT count(*) FROM transit_taps") == 4


async def test_an_uploaded_tap_the_engine_calls_a_conflict_is_kept_as_rejected(
        api, rider, tmp_path, down_url):
    queue = tmp_path / "gate-1.sqlite3"
    key = api.secrets["gate-1"]
    first = rider.tap("t-1")
    async with GateClient(api.base, "gate-1", key, queue) as gate:
        await gate.submit(first)
    async with GateClient(down_url, "gate-1", key, queue, timeout_s=0.5) as gate:
        await gate.submit(rider.tap("t-1", station="tianfuguangchang", minutes=5))  # same id, other body
        await gate.submit(rider.tap("t-5", "exit", "tianfuguangchang", minutes=20))
    async with GateClient(api.base, "gate-1", key, queue) as gate:
        assert await gate.flush() == 1
        ((tap_id, message),) = gate.rejected()
        assert gate.queued == 0
    assert tap_id == "t-1" and message.startswith("station: differs")
    assert await api.balance(CARD_ACCOUNT_ID) == (FARE_MINOR, 0)


async def test_gate_fetches_the_engines_deny_list_and_declines_offline_with_it(
        api, rider, tmp_path, down_url):
    queue = tmp_path / "gate-1.sqlite3"
    key = api.secrets["gate-1"]
    status, _ = await api.call("PUT", f"/v1/deny-list/{rider.token}/lost", device="admin-1")
    assert status == 201
    async with GateClient(api.base, "gate-1", key, queue) as gate:
        assert not gate.is_denied(rider.pan)
        version = await gate.sync()  # what the CLI and the simulator do once the engine answers
        assert version == gate.deny_list_version >= 1 and gate.is_denied(rider.pan)
    async with GateClient(down_url, "gate-1", key, queue, timeout_s=0.5) as gate:
        declined = await gate.submit(rider.tap("t-1"))
    assert declined == OfflineDecision("t-1", "declined", "offline_deny_list")
    # Back online: the queued tap is uploaded (the engine declines it too), and the card
    # taken off the list is off the gate's copy after the next sync.
    status, _ = await api.call("DELETE", f"/v1/deny-list/{rider.token}/lost", device="admin-1")
    assert status == 204
    async with GateClient(api.base, "gate-1", key, queue) as gate:
        assert await gate.sync() > version
        assert (gate.queued, gate.is_denied(rider.pan)) == (0, False)
    assert await api.balance(CARD_ACCOUNT_ID) == (0, 0)
