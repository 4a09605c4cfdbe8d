"""The tap API over real HTTP on a real PostgreSQL, with real cryptograms (emulated cards),
the soft key service, the ledger and the Chengdu fare engine: decisions, idempotency,
auth, offline uploads."""

from __future__ import annotations

import asyncio

import msgspec
import pytest

from adapters.signing import sign
from tapkit import Rider

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


async def test_tap_naming_another_gate_is_invalid(api, rider):
    _, answer = await api.tap(rider.tap("x-4", gate="gate-9"))
    assert answer["reason"] == "tap_invalid"


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
