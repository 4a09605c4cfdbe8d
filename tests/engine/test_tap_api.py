"""The tap API over real HTTP on a real PostgreSQL, with real cryptograms (emulated cards),
the soft key service, the ledger and the Chengdu fare engine: decisions, idempotency,
auth, offline uploads."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

import msgspec
import pytest

from adapters.signing import sign
from engine.fares.aggregation import Collection
from engine.taps.collections import close_day
from tapkit import T0, Rider

CARD_ACCOUNT_ID = 5001
# Weijianian -> Tianfu Square on Chengdu Line 1: 7.540 km, band 4-8 km = 3 CNY.
FARE_MINOR = 300


async def test_entry_then_exit_is_approved_and_posted_once(api, rider):
    status, entry = await api.tap(rider.tap("t-1"))
    assert status == 200
    assert entry == {"result": "answer", "tap_id": "t-1", "decision": "approved",
                     "reason": "approved", "reason_code": 0, "fare_minor": 0,
                     "rider_category": "adult", "day_total_minor": 0, "day_cap_minor": 2000,
                     "replayed": False, "refund_minor": 0}
    status, exit_ = await api.tap(rider.tap("t-2", "exit", "tianfuguangchang", minutes=20))
    assert (status, exit_["decision"], exit_["fare_minor"], exit_["day_total_minor"]) == (
        200, "approved", FARE_MINOR, FARE_MINOR)
    assert await api.balance(CARD_ACCOUNT_ID) == (FARE_MINOR, 0)
    assert await api.balance(api.operator_account_id) == (0, FARE_MINOR)


async def test_repeat_returns_first_answer_and_never_charges_twice(api, rider):
    await api.tap(rider.tap("t-1"))
    exit_tap = rider.tap("t-2", "exit", "tianfuguangchang", minutes=20)
    _, first = await api.tap(exit_tap)
    status, again = await api.tap(exit_tap)
    assert status == 200
    assert again == first | {"replayed": True}
    assert await api.balance(CARD_ACCOUNT_ID) == (FARE_MINOR, 0)


@pytest.mark.parametrize("api", [64, 1], ids=["batched", "unbatched"], indirect=True)
async def test_concurrent_repeats_charge_once(api, rider):
    await api.tap(rider.tap("t-1"))
    exit_tap = rider.tap("t-2", "exit", "tianfuguangchang", minutes=20)
    answers = await asyncio.gather(*(api.tap(exit_tap) for _ in range(6)))
    assert [status for status, _ in answers] == [200] * 6
    assert sorted(answer["replayed"] for _, answer in answers) == [False] + [True] * 5
    assert {answer["fare_minor"] for _, answer in answers} == {FARE_MINOR}
    assert await api.balance(CARD_ACCOUNT_ID) == (FARE_MINOR, 0)
    async with api.pool.acquire() as connection:
        assert await connection.fetchval("SELECT count(*) FROM ledger_transfers") == 1


async def test_repeat_in_other_hex_case_is_the_same_tap(api, rider):
    tap = rider.tap("t-1")
    _, first = await api.tap(tap)
    _, again = await api.tap(msgspec.structs.replace(tap, arqc=tap.arqc.lower()))
    assert again == first | {"replayed": True}


async def test_same_tap_id_with_different_body_is_a_conflict_naming_the_field(api, rider):
    tap = rider.tap("t-3")
    await api.tap(tap)
    status, body = await api.tap(msgspec.structs.replace(tap, station="tianfuguangchang"))
    assert status == 409
    assert (body["result"], body["field"]) == ("conflict", "station")


@pytest.mark.parametrize("reason", ["lost", "closed", "unpaid_debt"])
async def test_deny_list_reasons_decline(api, rider, reason):
    status, _ = await api.call("PUT", f"/v1/deny-list/{rider.token}/{reason}", device="admin-1")
    assert status == 201
    status, listed = await api.call("GET", "/v1/deny-list/entries", device="admin-1")
    assert listed == {"entries": [{"card_token": rider.token, "reason": reason}]}
    _, answer = await api.tap(rider.tap("t-d"))
    expected = {"lost": "card_lost", "closed": "card_closed", "unpaid_debt": "unpaid_debt"}
    assert (answer["decision"], answer["reason"], answer["fare_minor"]) == (
        "declined", expected[reason], 0)
    status, _ = await api.call("DELETE", f"/v1/deny-list/{rider.token}/{reason}",
                               device="admin-1")
    assert status == 204
    _, answer = await api.tap(rider.tap("t-e", minutes=1))
    assert answer["reason"] == "approved"


async def test_gates_get_the_deny_list_as_salted_pan_hashes(api, rider):
    from terminal.gate import DenyList, card_hash

    _, before = await api.call("GET", "/v1/deny-list")
    assert before["cards"] == []
    await api.call("PUT", f"/v1/deny-list/{rider.token}/lost", device="admin-1")
    await api.call("PUT", f"/v1/deny-list/{rider.token}/unpaid_debt", device="admin-1")
    status, after = await api.call("GET", "/v1/deny-list")
    listed = msgspec.convert(after, DenyList)  # the terminal's own wire type decodes it
    assert listed.cards == [card_hash(bytes.fromhex(listed.salt), rider.pan)]
    assert (status, listed.salt, listed.version) == (200, before["salt"], before["version"] + 2)


async def test_gate_may_not_administer_the_deny_list(api, rider):
    status, body = await api.call("PUT", f"/v1/deny-list/{rider.token}/lost")
    assert status == 403 and "gate" in body["title"]


async def test_bad_arqc_is_declined(api, rider):
    tap = rider.tap("x-1")
    _, answer = await api.tap(msgspec.structs.replace(tap, arqc="00" * 8))
    assert (answer["decision"], answer["reason"]) == ("declined", "arqc_invalid")


async def test_unknown_card_is_declined(api):
    stranger = Rider(99)  # same issuer, valid cryptogram, never enrolled
    _, answer = await api.tap(stranger.tap("x-2"))
    assert (answer["decision"], answer["reason"]) == ("declined", "card_unknown")


async def test_card_of_unknown_issuer_is_declined(api):
    foreign = Rider(1)
    foreign.pan = "4761739001010010"
    foreign.card = type(foreign.card).issue("pboc-3des", bytes(16), foreign.pan, "01")
    _, answer = await api.tap(foreign.tap("x-3"))
    assert answer["reason"] == "card_unknown"


async def _recorded(api, tap_id):
    async with api.pool.acquire() as connection:
        return [tuple(row) for row in await connection.fetch(
            "SELECT device_id, reason, fare_minor FROM transit_taps WHERE tap_id = $1 "
            "ORDER BY device_id", tap_id)]


@pytest.mark.parametrize("device", ["bus-1", "admin-1"])
async def test_tap_of_another_gate_is_refused_and_its_tap_id_stays_free(api, rider, device):
    """The tester's case: a device sent gate-1's exit first; the real gate then got a
    replayed decline and the rider's exit was lost to the daily close's maximum fare."""
    await api.tap(rider.tap("s-1"))
    exit_tap = rider.tap("s-2", "exit", "tianfuguangchang", minutes=20)
    status, body = await api.tap(exit_tap, device=device)
    expected = {"bus-1": "gate_id: 'gate-1' is not the signing device 'bus-1'",
                "admin-1": "device role 'admin' may not call this route"}[device]
    assert status == 403 and body["title"].startswith(expected)
    assert await _recorded(api, "s-2") == []
    status, answer = await api.tap(exit_tap)
    assert (status, answer["reason"], answer["fare_minor"], answer["replayed"]) == (
        200, "approved", FARE_MINOR, False)
    assert await _recorded(api, "s-2") == [("gate-1", 0, FARE_MINOR)]
    _, again = await api.tap(exit_tap)  # the gate's own retry: its first answer, no charge
    assert again == answer | {"replayed": True}
    assert await api.balance(CARD_ACCOUNT_ID) == (FARE_MINOR, 0)


async def test_upload_holding_another_gates_tap_is_refused_whole(api, rider):
    upload = [rider.tap("w-1", "single", "stop-1", gate="bus-1"),
              rider.tap("w-2", "exit", "tianfuguangchang", minutes=20)]
    status, body = await api.call("POST", "/v1/taps", msgspec.json.encode(upload), device="bus-1")
    assert (status, body["title"]) == (403, "taps[1].gate_id: 'gate-1' is not the signing "
                                            "device 'bus-1'; a gate sends only its own taps")
    assert await _recorded(api, "w-1") == []
    assert await api.balance(CARD_ACCOUNT_ID) == (0, 0)


async def test_two_gates_may_use_the_same_tap_id(api, rider):
    """Idempotency is per (gate, tap_id): each gate's tap is decided, charged, repeated
    and collected on its own."""
    bus_tap = rider.tap("k-1", "single", "stop-1", gate="bus-1")
    metro_entry = rider.tap("k-0", minutes=120)
    metro_exit = rider.tap("k-1", "exit", "tianfuguangchang", minutes=140)
    _, bus = await api.tap(bus_tap, device="bus-1")
    await api.tap(metro_entry)
    _, exit_ = await api.tap(metro_exit)
    assert [(a["tap_id"], a["reason"], a["fare_minor"], a["replayed"]) for a in (bus, exit_)] == [
        ("k-1", "approved", 200, False), ("k-1", "approved", FARE_MINOR, False)]
    _, bus_again = await api.tap(bus_tap, device="bus-1")
    _, exit_again = await api.tap(metro_exit)
    assert (bus_again, exit_again) == (bus | {"replayed": True}, exit_ | {"replayed": True})
    assert await _recorded(api, "k-1") == [("bus-1", 0, 200), ("gate-1", 0, FARE_MINOR)]
    assert await api.balance(CARD_ACCOUNT_ID) == (200 + FARE_MINOR, 0)
    async with api.pool.acquire() as connection:
        assert await connection.fetchval("SELECT count(*) FROM ledger_transfers") == 2
    grouped = await close_day(api.pool, T0.date(), current_day=T0.date() + timedelta(days=1))
    assert grouped == {"ICBC": (Collection("ICBC", rider.token, T0.date(), 200 + FARE_MINOR, 2),)}


async def test_unpriceable_station_is_declined(api, rider):
    _, answer = await api.tap(rider.tap("x-5", station="nowhere"))
    assert answer["reason"] == "fare_unavailable"


async def test_entry_tap_on_a_single_tap_bus_is_declined(api, rider):
    _, answer = await api.tap(rider.tap("x-6", "entry", "stop-1", gate="bus-1"), device="bus-1")
    assert answer["reason"] == "fare_unavailable"
    _, answer = await api.tap(rider.tap("x-7", "single", "stop-1", minutes=1, gate="bus-1"),
                              device="bus-1")
    assert (answer["reason"], answer["fare_minor"]) == ("approved", 200)


async def test_late_tap_of_an_earlier_transit_day_is_declined(api, rider):
    early = rider.tap("o-1", minutes=-6 * 60)  # 04:00 local: the previous transit day
    await api.tap(rider.tap("o-2", minutes=30))
    _, answer = await api.tap(early)
    assert answer["reason"] == "fare_unavailable"


async def _card_row(api, token):
    async with api.pool.acquire() as connection:
        return dict(await connection.fetchrow(
            """SELECT atc_max, atcs_recent, arqcs_recent, fare_state, alert_state, rider_category
               FROM transit_cards WHERE card_token = $1""", token))


async def test_tap_dated_in_the_future_is_declined_and_changes_no_card_state(api, rider):
    """The tester's case: one gate with its clock half a year ahead must not lock the card
    out of the real day (every later tap was ``fare_unavailable``)."""
    await api.tap(rider.tap("f-0"))
    before = await _card_row(api, rider.token)
    now = datetime.now(timezone.utc)
    ahead_minutes = int((now - T0).total_seconds() // 60) + 183 * 24 * 60
    future = rider.tap("f-1", "exit", "tianfuguangchang", minutes=ahead_minutes)
    status, answer = await api.tap(future)
    assert (status, answer) == (200, {
        "result": "answer", "tap_id": "f-1", "decision": "declined", "reason": "tap_in_future",
        "reason_code": 13, "fare_minor": 0, "rider_category": "adult", "day_total_minor": 0,
        "day_cap_minor": 0, "replayed": False, "refund_minor": 0})
    assert await _card_row(api, rider.token) == before
    assert await api.balance(CARD_ACCOUNT_ID) == (0, 0)
    async with api.pool.acquire() as connection:
        assert await connection.fetchval(
            "SELECT count(*) FROM transit_alerts WHERE tap_id = 'f-1'") == 0
    # The card still works at the real time: its exit is priced as usual.
    _, exit_ = await api.tap(rider.tap("f-2", "exit", "tianfuguangchang", minutes=20))
    assert (exit_["reason"], exit_["fare_minor"], exit_["day_total_minor"]) == (
        "approved", FARE_MINOR, FARE_MINOR)
    assert await api.balance(CARD_ACCOUNT_ID) == (FARE_MINOR, 0)
    # Resent unchanged, the future tap gets its first answer again (it is recorded).
    _, again = await api.tap(future)
    assert again == answer | {"replayed": True}


async def test_no_declined_tap_changes_the_cards_fare_state(api, rider):
    """Regression over every decline the API can reach for an enrolled card: the stored
    fare state (day journal, open entry) stays as the last approved tap left it."""
    entry = rider.tap("v-0")
    await api.tap(entry)
    fare_state = (await _card_row(api, rider.token))["fare_state"]
    ahead = int((datetime.now(timezone.utc) - T0).total_seconds() // 60) + 24 * 60
    declines = [
        (msgspec.structs.replace(rider.tap("v-1", "exit", "tianfuguangchang", minutes=20),
                                 arqc="00" * 8), "arqc_invalid"),
        (msgspec.structs.replace(entry, tap_id="v-2"), "atc_replayed"),
        (rider.tap("v-3", "exit", "nowhere", minutes=21), "fare_unavailable"),
        (rider.tap("v-4", "exit", "tianfuguangchang", minutes=-6 * 60), "fare_unavailable"),
        (rider.tap("v-5", "exit", "tianfuguangchang", minutes=ahead), "tap_in_future"),
    ]
    for tap, reason in declines:
        _, answer = await api.tap(tap)
        assert (answer["reason"], answer["fare_minor"]) == (reason, 0)
        assert (await _card_row(api, rider.token))["fare_state"] == fare_state
    await api.call("PUT", f"/v1/deny-list/{rider.token}/lost", device="admin-1")
    _, answer = await api.tap(rider.tap("v-6", "exit", "tianfuguangchang", minutes=22))
    assert answer["reason"] == "card_lost"
    assert (await _card_row(api, rider.token))["fare_state"] == fare_state
    assert await api.balance(CARD_ACCOUNT_ID) == (0, 0)


@pytest.mark.parametrize("api, reason", [({}, "approved"), ({"clock_skew_ms_max": 0}, "tap_in_future")],
                         ids=["default-skew", "no-skew"], indirect=["api"])
async def test_clock_skew_is_configured(api, rider, reason):
    minute_ahead = int((datetime.now(timezone.utc) - T0).total_seconds() // 60) + 1
    _, answer = await api.tap(rider.tap("g-1", minutes=minute_ahead))
    assert answer["reason"] == reason


def test_serve_refuses_a_clock_skew_out_of_range(capsys):
    from engine import cli

    assert cli.main(["serve", "--port", "0", "--clock-skew-ms", "900001"]) == 2
    assert capsys.readouterr().err == "onecard: --clock-skew-ms: must be 0 to 900000\n"


async def test_atc_replay_clone_and_too_old(api, rider):
    tap = rider.tap("a-1")
    await api.tap(tap)
    _, replay = await api.tap(msgspec.structs.replace(tap, tap_id="a-2"))
    assert replay["reason"] == "atc_replayed"
    _, forged = await api.tap(msgspec.structs.replace(tap, tap_id="a-3", arqc="AB" * 8))
    assert forged["reason"] == "arqc_invalid"
    # 32 later taps fill the ATC memory; the first tap's ATC is then too old to judge.
    upload = [rider.tap(f"b-{n}", minutes=n) for n in range(1, 33)]
    status, body = await api.call("POST", "/v1/taps", msgspec.json.encode(upload))
    assert status == 200 and len(body["results"]) == 32
    _, old = await api.tap(msgspec.structs.replace(tap, tap_id="a-4"))
    assert old["reason"] == "atc_too_old"


async def test_offline_upload_answers_each_tap_in_order(api, rider):
    upload = msgspec.json.encode([rider.tap("u-1"),
                                  rider.tap("u-2", "exit", "tianfuguangchang", minutes=30)])
    upload = upload[:-1] + b',{"tap_id":"u-3"}]'
    status, body = await api.call("POST", "/v1/taps", upload)
    assert status == 200
    first, second, bad = body["results"]
    assert (first["reason"], second["reason"], second["fare_minor"]) == (
        "approved", "approved", FARE_MINOR)
    assert bad["result"] == "invalid" and bad["index"] == 2 and "gate_id" in bad["message"]


@pytest.mark.parametrize(
    "headers, detail",
    [
        ({"X-Onecard-Signature": "00" * 32}, "does not match"),
        ({"X-Onecard-Key": "gate-404"}, "unknown or revoked"),
        ({"X-Onecard-Timestamp": "1000"}, "clock skew"),
    ],
)
async def test_bad_signatures_are_refused(api, rider, headers, detail):
    status, body = await api.tap(rider.tap("s-1"), headers=headers)
    assert status == 401 and detail in body["title"]


async def test_replayed_signature_is_refused(api, rider):
    body = msgspec.json.encode(rider.tap("s-2"))
    headers = sign(api.secrets["gate-1"], "POST", "/v1/taps", body, key_id="gate-1")
    async with api.session.post(api.base + "/v1/taps", data=body, headers=headers) as response:
        assert response.status == 200
    async with api.session.post(api.base + "/v1/taps", data=body, headers=headers) as response:
        assert response.status == 401
        assert "replayed" in (await response.json())["title"]


async def test_revoked_device_is_refused(api, rider):
    await api.services.devices.revoke("gate-1")
    status, body = await api.tap(rider.tap("s-3"))
    assert status == 401 and "unknown or revoked" in body["title"]


async def test_device_secrets_are_sealed_at_rest(api):
    async with api.pool.acquire() as connection:
        sealed = await connection.fetchval(
            "SELECT secret_sealed FROM transit_devices WHERE device_id = 'gate-1'")
    assert api.secrets["gate-1"] not in bytes(sealed)


async def test_malformed_tap_names_the_field(api):
    status, body = await api.call("POST", "/v1/taps", b'{"tap_id": 5}')
    assert status == 400 and "tap_id" in body["title"]


async def test_journeys_list_a_cards_taps(api, rider):
    await api.tap(rider.tap("j-1"))
    await api.tap(rider.tap("j-2", "exit", "tianfuguangchang", minutes=20))
    await api.tap(rider.tap("j-3", minutes=40))
    await api.tap(msgspec.structs.replace(rider.tap("j-4", minutes=50), arqc="00" * 8))
    status, body = await api.call("GET", f"/v1/cards/{rider.token}/journeys", device="admin-1")
    assert status == 200
    assert [(j["kind"], j["entry"]["tap_id"], j["exit"] and j["exit"]["tap_id"], j["fare_minor"])
            for j in body["journeys"]] == [("open", "j-3", None, 0),
                                           ("complete", "j-1", "j-2", FARE_MINOR)]
    assert [(t["tap_id"], t["station"], t["reason"]) for t in body["taps"]] == [
        ("j-4", "weijianian", "arqc_invalid"), ("j-3", "weijianian", "approved"), ("j-2", "tianfuguangchang", "approved"),
        ("j-1", "weijianian", "approved")]


async def test_cloned_card_is_declined_and_alerted(api, rider):
    _, first = await api.tap(rider.tap("c-1"))
    # A clone: the same card key and counter, so the same ATC with a fresh (valid) ARQC.
    clone = Rider(1)
    clone.card.atc = rider.card.atc - 1
    _, cloned = await api.tap(clone.tap("c-2", minutes=1))
    assert (first["reason"], cloned["reason"]) == ("approved", "atc_cloned")
    status, body = await api.call("GET", "/v1/alerts", device="admin-1")
    assert status == 200
    [alert] = body["alerts"]
    assert (alert["kind"], alert["card_token"], alert["tap_id"]) == ("cloned_card", rider.token, "c-2")
    status, body = await api.call("GET", "/v1/alerts?after_id=" + str(alert["alert_id"]),
                                  device="admin-1")
    assert body == {"alerts": []}
    async with api.session.get(api.base + "/metrics") as response:
        assert 'onecard_alerts_total{kind="cloned_card"} 1.0' in (await response.text())


async def test_alert_listing_checks_its_query(api):
    status, body = await api.call("GET", "/v1/alerts?limit=0", device="admin-1")
    assert status == 400 and "limit" in body["title"]


async def test_unknown_route_and_method_are_404_and_405(api):
    status, _ = await api.call("GET", "/v1/nowhere")
    assert status == 404
    status, _ = await api.call("DELETE", "/v1/taps")
    assert status == 405
