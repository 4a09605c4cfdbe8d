"""Hostile requests to the engine API get a JSON problem naming what is wrong, never a 500:
deeply nested JSON, oversized timestamps, unknown routes and methods, bodies over the limit,
deny-list tokens that are not card tokens."""

from __future__ import annotations

import pytest
import yarl

from adapters.signing import sign
from engine.api.routes import BODY_BYTES_MAX

NESTED = b"[" * 1000 + b"]" * 1000


@pytest.mark.parametrize("body, title", [
    (NESTED, "malformed JSON: body: nested too deeply"),
])
async def test_deeply_nested_json_is_400_naming_the_body(api, body, title):
    status, answer = await api.call("POST", "/v1/taps", body)
    assert (status, answer) == (400, {"status": 400, "title": title})


async def test_a_5000_digit_timestamp_is_401_naming_the_header(api):
    status, answer = await api.call("GET", "/v1/deny-list", headers={"X-Onecard-Timestamp": "9" * 5000})
    assert status == 401
    assert answer["title"].startswith("X-Onecard-Timestamp: must be Unix milliseconds")


async def test_unknown_route_and_method_are_json_problems(api):
    assert await api.call("GET", "/v1/nowhere") == (404, {"status": 404, "title": "path: no such route"})
    assert await api.call("GET", "/nowhere") == (404, {"status": 404, "title": "path: no such route"})
    assert await api.call("DELETE", "/v1/taps") == (405, {"status": 405, "title": "method: POST only"})


async def test_a_body_over_the_limit_is_a_json_problem(api):
    body = b" " * (BODY_BYTES_MAX + 1)
    headers = sign(api.secrets["gate-1"], "POST", "/v1/taps", body, key_id="gate-1")
    async with api.session.post(api.base + "/v1/taps", data=body, headers=headers) as response:
        assert response.status == 413
        assert await response.json() == {
            "status": 413, "title": f"body: larger than the limit of {BODY_BYTES_MAX} bytes"}


@pytest.mark.parametrize("token", ["nosuchtoken", "a" * 5000, "0123456789abcdef%E2%80%AE0123456789abcde",
                                   "0123456789abcdef0123456789abcdeg"])
async def test_deny_list_refuses_what_is_not_a_card_token(api, token):
    path = f"/v1/deny-list/{token}/lost"
    headers = sign(api.secrets["admin-1"], "PUT", path, b"", key_id="admin-1")
    async with api.session.put(yarl.URL(api.base + path, encoded=True), headers=headers) as response:
        status, answer = response.status, await response.json()
    assert status == 400
    assert answer["title"].startswith("invalid request: card_token: must be 32 hex digits")
    async with api.pool.acquire() as connection:
        assert await connection.fetchval("SELECT count(*) FROM transit_deny_list") == 0


async def test_deny_list_takes_a_well_formed_token_of_a_card_not_enrolled_yet(api, rider):
    # A card reported lost before its first tap: listed now, refused at its first tap.
    token = "0123456789ABCDEF0123456789ABCDEF"
    assert await api.call("PUT", f"/v1/deny-list/{token}/lost", device="admin-1") == (
        201, {"card_token": token.lower(), "reason": "lost"})
    assert await api.call("GET", "/v1/deny-list/entries", device="admin-1") == (
        200, {"entries": [{"card_token": token.lower(), "reason": "lost"}]})
    status, _ = await api.call("DELETE", f"/v1/deny-list/{token.lower()}/lost", device="admin-1")
    assert status == 204


async def test_journeys_refuse_a_malformed_token(api):
    status, answer = await api.call("GET", "/v1/cards/nosuchtoken/journeys", device="admin-1")
    assert status == 400 and "card_token" in answer["title"]


@pytest.mark.parametrize("query", ["after_id=" + "9" * 5000, "after_id=%C2%B2", "limit=" + "1" * 30])
async def test_huge_or_exotic_query_numbers_are_400(api, query):
    path = f"/v1/alerts?{query}"
    headers = sign(api.secrets["admin-1"], "GET", path, b"", key_id="admin-1")
    async with api.session.get(yarl.URL(api.base + path, encoded=True), headers=headers) as response:
        assert response.status == 400
        assert (await response.json())["title"].split(":")[0] == "invalid request"
        assert query.split("=")[0] in (await response.json())["title"]
