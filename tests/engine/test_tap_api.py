"""The tap API over real HTTP on a real PostgreSQL: decisions, idempotency, auth, uploads."""

from __future__ import annotations

import msgspec
import pytest

from conftest import BAD_ARQC, CARD_ACCOUNT_ID, OPERATOR_ACCOUNT_ID, PAN, make_tap


async def test_entry_then_exit_is_approved_and_posted_once(api):
    status, entry = await api.tap(make_tap("t-1", atc="0001"))
    assert status == 200
    assert entry == {"result": "answer", "tap_id": "t-1", "decision": "approved", "reason": "approved",
                     "reason_code": 0, "fare_minor": 0, "rider_category": "adult",
                     "day_total_minor": 0, "day_cap_minor": 1500, "replayed": False}
    status, exit_ = await api.tap(make_tap("t-2", atc="0002", direction="exit", station="S9",
                                           minutes=20))
    assert (status, exit_["decision"], exit_["fare_minor"]) == (200, "approved", 200)
    [posting] = api.ledger.postings
    assert (posting.dr_account_id, posting.cr_account_id, posting.amount, posting.tap_id) == (
        CARD_ACCOUNT_ID, OPERATOR_ACCOUNT_ID, 200, "t-2")


async def test_repeat_returns_first_answer_and_never_charges_twice(api):
    tap = make_tap("t-9", atc="0005", direction="exit")
    _, first = await api.tap(tap)
    status, again = await api.tap(tap)
    assert status == 200
    assert again == first | {"replayed": True}
    assert len(api.ledger.postings) == 1


async def test_same_tap_id_with_different_body_is_a_conflict_naming_the_field(api):
    await api.tap(make_tap("t-3", atc="0007"))
    status, body = await api.tap(make_tap("t-3", atc="0007", station="S2"))
    assert status == 409
    assert (body["result"], body["field"]) == ("conflict", "station")


@pytest.mark.parametrize("reason", ["lost", "closed", "unpaid_debt"])
async def test_deny_list_reasons_decline(api, reason):
    status, _ = await api.call("PUT", f"/v1/deny-list/tok-{PAN}/{reason}", device="admin-1")
    assert status == 201
    status, listed = await api.call("GET", "/v1/deny-list")
    assert listed == {"entries": [{"card_token": f"tok-{PAN}", "reason": reason}]}
    _, answer = await api.tap(make_tap("t-d", atc="0003"))
    expected = {"lost": "card_lost", "closed": "card_closed", "unpaid_debt": "unpaid_debt"}
    assert (answer["decision"], answer["reason"]) == ("declined", expected[reason])
    status, _ = await api.call("DELETE", f"/v1/deny-list/tok-{PAN}/{reason}", device="admin-1")
    assert status == 204
    _, answer = await api.tap(make_tap("t-e", atc="0004"))
    assert answer["reason"] == "approved"


async def test_gate_may_not_administer_the_deny_list(api):
    status, body = await api.call("PUT", f"/v1/deny-list/tok-{PAN}/lost")
    assert status == 403


@pytest.mark.parametrize(
    "tap, reason",
    [
        (make_tap("x-1", arqc=BAD_ARQC), "arqc_invalid"),
        (make_tap("x-2", pan="6217000099990000"), "card_unknown"),
        (make_tap("x-3", currency=840), "tap_invalid"),
    ],
)
async def test_single_tap_declines(api, tap, reason):
    _, answer = await api.tap(tap)
    assert (answer["decision"], answer["reason"]) == ("declined", reason)
    assert api.ledger.postings == []


async def test_atc_replay_clone_and_too_old(api):
    await api.tap(make_tap("a-1", atc="0010", arqc="AAAAAAAAAAAAAAAA"))
    _, replay = await api.tap(make_tap("a-2", atc="0010", arqc="AAAAAAAAAAAAAAAA"))
    assert replay["reason"] == "atc_replayed"
    _, clone = await api.tap(make_tap("a-3", atc="0010", arqc="BBBBBBBBBBBBBBBB"))
    assert clone["reason"] == "atc_cloned"
    status, alerts = await api.call("GET", "/v1/alerts", device="admin-1")
    assert status == 200
    [alert] = alerts["alerts"]
    assert (alert["kind"], alert["card_token"], alert["tap_id"]) == ("cloned_card", f"tok-{PAN}", "a-3")
    # Fill the ATC memory (32 ATCs above 0x10, leaving out 0x30), then 0x0F is too old.
    upload = [make_tap(f"b-{n}", atc=f"{0x20 + n:04X}", minutes=n) for n in range(33) if n != 0x10]
    status, body = await api.call("POST", "/v1/taps", msgspec.json.encode(upload))
    assert status == 200 and {r["reason"] for r in body["results"]} == {"approved"}
    _, old = await api.tap(make_tap("a-4", atc="000F"))
    assert old["reason"] == "atc_too_old"
    _, seen = await api.tap(make_tap("a-5", atc="0021"))
    assert seen["reason"] == "atc_replayed"
    # A lower ATC never seen, within the remembered range, is a late offline tap.
    _, late = await api.tap(make_tap("a-6", atc="0030"))
    assert late["reason"] == "approved"


async def test_offline_upload_answers_each_tap_in_order(api):
    upload = msgspec.json.encode([make_tap("u-1", atc="0031"),
                                  make_tap("u-2", atc="0032", direction="exit", minutes=30)])
    upload = upload[:-1] + b',{"tap_id":"u-3"}]'
    status, body = await api.call("POST", "/v1/taps", upload)
    assert status == 200
    first, second, bad = body["results"]
    assert (first["reason"], second["fare_minor"]) == ("approved", 200)
    assert bad["result"] == "invalid" and bad["index"] == 2 and "pan" in bad["message"]


@pytest.mark.parametrize(
    "headers, detail",
    [
        ({"X-Onecard-Signature": "00" * 32}, "does not match"),
        ({"X-Onecard-Key": "gate-404"}, "unknown or revoked"),
    ],
)
async def test_bad_signatures_are_refused(api, headers, detail):
    status, body = await api.tap(make_tap(), headers=headers)
    assert status == 401 and detail in body["title"]


async def test_replayed_and_revoked_signatures_are_refused(api):
    from adapters.signing import sign

    body = msgspec.json.encode(make_tap())
    headers = sign(api.secrets["gate-1"], "POST", "/v1/taps", body, key_id="gate-1")
    async with api.session.post(api.base + "/v1/taps", data=body, headers=headers) as response:
        assert response.status == 200
    async with api.session.post(api.base + "/v1/taps", data=body, headers=headers) as response:
        assert response.status == 401
        assert "replayed" in (await response.json())["title"]


async def test_malformed_tap_names_the_field(api):
    status, body = await api.call("POST", "/v1/taps", b'{"tap_id": 5}')
    assert status == 400 and "tap_id" in body["title"]
