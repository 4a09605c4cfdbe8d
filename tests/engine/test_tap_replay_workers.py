"""A signed tap request replayed to another engine worker (``onecard serve --workers N``:
each worker has its own in-memory nonce memory) is refused there too, through the tap
record written in the flush transaction; a gate's honest retry (signed anew) still gets
the first answer."""

from __future__ import annotations

import msgspec
import pytest
from aiohttp.test_utils import TestServer

from adapters.signing import sign
from engine.app import TapSettings, build_services, create_app

CARD_ACCOUNT_ID = 5001
FARE_MINOR = 300


@pytest.fixture
async def other_worker(api, key_service, shared_data):
    """A second engine process's app over the same database (its own verifier)."""
    services = build_services(api.pool, key_service, TapSettings(
        flush_size_max=64, flush_delay_ms=1, shared_data=shared_data))
    server = TestServer(create_app(services), port=0)
    await server.start_server()
    yield str(server.make_url("")).rstrip("/")
    await server.close()


async def _post(api, base, body, headers):
    async with api.session.post(base + "/v1/taps", data=body, headers=headers) as response:
        return response.status, await response.json()


@pytest.mark.parametrize("upload", [False, True], ids=["one tap", "upload"])
async def test_a_replay_to_another_worker_is_refused(api, rider, other_worker, upload):
    await api.tap(rider.tap("w-1"))
    exit_tap = rider.tap("w-2", "exit", "tianfuguangchang", minutes=20)
    body = msgspec.json.encode([exit_tap] if upload else exit_tap)
    headers = sign(api.secrets["gate-1"], "POST", "/v1/taps", body, key_id="gate-1")
    status, first = await _post(api, api.base, body, headers)
    assert status == 200
    status, replayed = await _post(api, other_worker, body, headers)
    assert (status, replayed["title"]) == (401, "X-Onecard-Nonce: replayed request")
    # The gate's own retry is signed anew: the first answer again, nothing charged twice.
    retry = sign(api.secrets["gate-1"], "POST", "/v1/taps", body, key_id="gate-1")
    status, again = await _post(api, other_worker, body, retry)
    assert status == 200
    if upload:
        assert again == {"results": [first["results"][0] | {"replayed": True}]}
    else:
        assert again == first | {"replayed": True}
    assert await api.balance(CARD_ACCOUNT_ID) == (FARE_MINOR, 0)


@pytest.mark.parametrize("api", [64, 1], ids=["batched", "unbatched"], indirect=True)
async def test_one_upload_holding_a_tap_twice_is_not_taken_for_a_replay(api, rider):
    entry = rider.tap("w-3")
    status, answer = await api.call("POST", "/v1/taps", msgspec.json.encode([entry, entry]))
    assert status == 200
    first, second = answer["results"]
    assert (first["replayed"], second) == (False, first | {"replayed": True})
