"""Gate client against a small signed test engine: online, offline queue, deny list."""

import datetime
import sqlite3

import msgspec
import pytest

from adapters.signing import Verifier
from terminal.card import Card
from terminal.errors import GateError
from engine.taps.wire import TapAnswer
from terminal.errors import GateUnreachableError
from terminal.gate import GateClient, OfflineDecision, card_hash, decided_offline
from terminal.reader import read_tap
from terminal.tap import Tap

from conftest import DENIED_PAN, KEY, SALT

PAN = "6217000010012345677"


@pytest.fixture
def engine(fake_engine):
    fake_engine.add_gate("g1", KEY)
    return fake_engine


def _tap(number, pan=PAN):
    card = Card.issue("pboc-3des", bytes(16), pan, "01", atc=number)
    when = datetime.datetime(2026, 11, 30, 8, 0, number % 60, tzinfo=datetime.timezone(datetime.timedelta(hours=8)))
    return read_tap(card.transmit, amount=200, tap_id=f"g1-{number:06d}", gate_id="g1", station="S01",
                    direction="entry", local_time=when, un=number.to_bytes(4, "big"))


async def test_online_tap_gets_the_engines_decision(engine, tmp_path):
    async with GateClient(engine.url, "g1", KEY, tmp_path / "g1.sqlite3") as gate:
        decision = await gate.submit(_tap(1))
    assert decision == TapAnswer("g1-000001", "approved", "approved", 0, 200, "adult", 200, 2000)
    assert not decided_offline(decision)
    assert list(engine.taps) == ["g1-000001"]


async def test_unreachable_engine_queues_durably_then_uploads_once(engine, tmp_path):
    queue = tmp_path / "g1.sqlite3"
    engine.status_override = 503
    async with GateClient(engine.url, "g1", KEY, queue) as gate:
        decisions = [await gate.submit(_tap(number)) for number in (1, 2, 3)]
        assert [d.reason for d in decisions] == ["offline"] * 3
        assert gate.queued == 3
        assert await gate.flush() == 0  # still down: nothing lost
    engine.status_override = None
    # A new process (a rebooted gate) finds the queue on disk and uploads it once.
    async with GateClient(engine.url, "g1", KEY, queue) as gate:
        assert gate.queued == 3
        assert await gate.flush() == 3
        assert gate.queued == 0
        assert await gate.flush() == 0
    assert list(engine.taps) == ["g1-000001", "g1-000002", "g1-000003"]
    sent = msgspec.json.decode(engine.taps["g1-000002"], type=Tap)
    assert sent == _tap(2)


async def test_engine_not_listening_at_all_queues(tmp_path):
    async with GateClient("http://127.0.0.1:9", "g1", KEY, tmp_path / "q.sqlite3", timeout_s=0.5) as gate:
        decision = await gate.submit(_tap(4))
        assert (decision, gate.queued) == (OfflineDecision("g1-000004", "approved", "offline"), 1)


async def test_same_tap_queued_twice_is_kept_once(engine, tmp_path):
    engine.status_override = 502
    async with GateClient(engine.url, "g1", KEY, tmp_path / "q.sqlite3") as gate:
        await gate.submit(_tap(5))
        await gate.submit(_tap(5))
        assert gate.queued == 1


async def test_refused_queued_tap_moves_to_rejected_and_others_go_through(engine, tmp_path):
    engine.status_override = 503
    async with GateClient(engine.url, "g1", KEY, tmp_path / "q.sqlite3") as gate:
        await gate.submit(_tap(6))
        await gate.submit(_tap(7))
        engine.status_override = None
        engine.verifier = Verifier({"g1": KEY})
        # Corrupt one queued body (as a bug in an old gate version might have written).
        gate._db.execute("UPDATE queue SET body = ? WHERE tap_id = ?", (b'{"tap_id": "g1-000006"}', "g1-000006"))
        assert await gate.flush() == 1
        assert gate.queued == 0
        (rejected,) = gate.rejected()
        assert rejected[0] == "g1-000006" and rejected[1].startswith("400 ")
    assert list(engine.taps) == ["g1-000007"]


async def test_refused_live_tap_raises(engine, tmp_path):
    async with GateClient(engine.url, "g1", b"wrong key", tmp_path / "q.sqlite3") as gate:
        with pytest.raises(GateError, match="engine refused tap g1-000008: 401"):
            await gate.submit(_tap(8))
        assert gate.queued == 0


async def test_deny_list_is_fetched_kept_on_disk_and_used_offline(engine, tmp_path):
    queue = tmp_path / "q.sqlite3"
    async with GateClient(engine.url, "g1", KEY, queue) as gate:
        assert not gate.is_denied(DENIED_PAN)
        assert await gate.refresh_deny_list() == 7
        assert gate.is_denied(DENIED_PAN) and not gate.is_denied(PAN)
    engine.status_override = 503
    async with GateClient(engine.url, "g1", KEY, queue) as gate:
        assert gate.deny_list_version == 7
        with pytest.raises(GateUnreachableError, match="deny list: engine unreachable"):
            await gate.refresh_deny_list()
        declined = await gate.submit(_tap(9, pan=DENIED_PAN))
        approved = await gate.submit(_tap(10))
        assert (declined.decision, declined.reason) == ("declined", "offline_deny_list")
        assert (approved.decision, approved.reason) == ("approved", "offline")
        assert decided_offline(declined) and decided_offline(approved) and gate.queued == 2
    stored = sqlite3.connect(queue).execute("SELECT body FROM deny_list").fetchone()[0]
    assert DENIED_PAN.encode() not in stored and card_hash(SALT, DENIED_PAN).encode() in stored


def test_repr_shows_no_key(tmp_path):
    gate = GateClient("http://127.0.0.1:1", "g1", KEY, tmp_path / "q.sqlite3")
    assert "kkkk" not in repr(gate) and "g1" in repr(gate)


@pytest.mark.parametrize("url", ["garbage", "127.0.0.1:8080", "ftp://engine", "http://", "http:///v1"])
def test_a_malformed_engine_url_is_refused_not_taken_for_an_offline_engine(tmp_path, url):
    # Taken as "unreachable", a typo would approve every tap offline and queue it forever.
    with pytest.raises(GateError, match=r"^engine URL .*: must be http:// or https:// with a host$"):
        GateClient(url, "g1", KEY, tmp_path / "g1.sqlite3")
