"""Signed requests other than taps (deny-list administration, alerts, journeys) replayed
to another engine worker process are refused there: their nonces are kept in PostgreSQL
(``request_nonces``, shared with the bank API), not only in each worker's memory."""

from __future__ import annotations

from datetime import timedelta

import pytest
from aiohttp.test_utils import TestServer

from adapters.signing import sign
from engine.api import nonces
from engine.api.nonces import NonceStore
from engine.app import TapSettings, build_services, create_app


@pytest.fixture
async def other_worker(api, key_service, shared_data):
    """A second engine process's app over the same database (its own verifier)."""
    services = build_services(api.pool, key_service, TapSettings(flush_delay_ms=1,
                                                                 shared_data=shared_data))
    server = TestServer(create_app(services), port=0)
    await server.start_server()
    yield str(server.make_url("")).rstrip("/")
    await server.close()


async def _send(api, base, method, path, headers):
    async with api.session.request(method, base + path, headers=headers) as response:
        return response.status, await response.read()


async def _listed(api):
    async with api.pool.acquire() as connection:
        return await connection.fetchval("SELECT count(*) FROM transit_deny_list")


async def test_a_replayed_deny_list_change_is_refused_by_every_worker(api, rider, other_worker):
    path = f"/v1/deny-list/{rider.token}/lost"
    listing = sign(api.secrets["admin-1"], "PUT", path, b"", key_id="admin-1")
    assert (await _send(api, api.base, "PUT", path, listing))[0] == 201
    unlisting = sign(api.secrets["admin-1"], "DELETE", path, b"", key_id="admin-1")
    assert (await _send(api, other_worker, "DELETE", path, unlisting))[0] == 204
    assert await _listed(api) == 0
    # Replaying the listing (to either worker) must not list the card again.
    for base in (other_worker, api.base):
        status, body = await _send(api, base, "PUT", path, listing)
        assert (status, body) == (401, b'{"status":401,"title":"X-Onecard-Nonce: replayed request"}')
    assert await _listed(api) == 0


async def test_a_replayed_read_is_refused_by_another_worker(api, other_worker):
    headers = sign(api.secrets["admin-1"], "GET", "/v1/alerts", b"", key_id="admin-1")
    assert (await _send(api, api.base, "GET", "/v1/alerts", headers))[0] == 200
    assert (await _send(api, other_worker, "GET", "/v1/alerts", headers))[0] == 401
    fresh = sign(api.secrets["admin-1"], "GET", "/v1/alerts", b"", key_id="admin-1")
    assert (await _send(api, other_worker, "GET", "/v1/alerts", fresh))[0] == 200


async def test_nonces_expire_after_twice_the_clock_skew(pool, monkeypatch):
    monkeypatch.setattr(nonces, "PRUNE_EVERY", 2)
    store = NonceStore(pool, "device")
    assert await store.first_use("gate-1", "n" * 16) is True
    assert await store.first_use("gate-1", "n" * 16) is False      # second request: prunes
    assert await NonceStore(pool, "bank").first_use("gate-1", "n" * 16) is True  # other API
    async with pool.acquire() as connection:
        await connection.execute("UPDATE request_nonces SET seen_at = seen_at - $1::interval",
                                 timedelta(seconds=nonces.KEPT_S + 1))
    assert await store.first_use("gate-1", "m" * 16) is True
    assert await store.first_use("gate-1", "o" * 16) is True       # fourth request: prunes
    async with pool.acquire() as connection:
        rows = await connection.fetch("SELECT api, key_id, nonce FROM request_nonces ORDER BY nonce")
    assert [tuple(row) for row in rows] == [("device", "gate-1", "m" * 16), ("device", "gate-1", "o" * 16)]
