"""The bank API refuses malformed headers, impossible ids and unknown routes with its JSON
problem, never a 500."""

from adapters import signing
from test_settlement_bank_api import api  # noqa: F401 - the fixture


async def test_a_5000_digit_timestamp_is_401_naming_the_header(api):  # noqa: F811
    _, _, _, clients = api
    client = clients["ICBC"]
    headers = signing.sign(client.key, "GET", "/v1/cycles", b"", key_id="ICBC")
    headers[signing.HEADER_TIMESTAMP] = "9" * 5000
    status, body = await client.call("GET", "/v1/cycles", headers=headers)
    assert status == 401
    assert body.decode().startswith('{"error":"X-Onecard-Timestamp: must be Unix milliseconds')


async def test_an_impossible_cycle_id_is_404(api):  # noqa: F811
    _, _, _, clients = api
    for cycle_id in ("9" * 5000, "99999999999999999999"):
        status, body = await clients["ICBC"].json("GET", f"/v1/cycles/{cycle_id}")
        assert (status, body["error"]) == (404, "cycle_id: no such cycle (at most 9223372036854775807)")


async def test_unknown_route_and_method_are_json_problems(api):  # noqa: F811
    _, _, _, clients = api
    assert await clients["ICBC"].json("GET", "/v1/nowhere") == (
        404, {"error": "path: no such route", "element": "", "line": None})
    status, body = await clients["ICBC"].json("DELETE", "/v1/pacs002")
    assert (status, body["error"]) == (405, "method: POST only")
