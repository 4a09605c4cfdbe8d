"""Fixtures for the engine's HTTP API: a real server on a free port over the test's own
PostgreSQL database, with the soft key service, the ledger, the Chengdu fare engine and
cards emulated by :class:`terminal.card.Card`."""

from __future__ import annotations

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from engine.app import TapSettings, build_services, create_app
from engine.config import Config
from engine.taps import store
from engine.settlement import registry
from engine.taps.enrolment import enrol_card
from hsm.service import open_key_service
from hsm.soft import SoftKeyService
from ledger.service import Ledger
from tapkit import IMK, SCHEME, Api, Rider


@pytest.fixture
async def key_service(tmp_path):
    SoftKeyService.init(tmp_path / "keys")
    service = open_key_service(Config(home=tmp_path, database_url=None), backend="soft")
    await service.import_key("imk-test", "imk-ac", "3des", IMK, SCHEME)
    await service.generate_key("pan-token", "pan-token")
    await service.generate_key("field-enc", "field-enc")
    yield service
    await service.close()


@pytest.fixture
def rider():
    return Rider(1)


@pytest.fixture
async def api(request, pool, key_service, shared_data, rider):
    """The engine on a free port, one enrolled rider (account 5001), gate-1 on the metro.

    Parametrize indirectly with a flush size (1 = batching off; the default is 64), or with
    a dict of :class:`engine.app.TapSettings` fields.
    """
    ledger = Ledger(pool)
    param = getattr(request, "param", 64)
    options = {"flush_size_max": 64} | (param if isinstance(param, dict) else {"flush_size_max": param})
    services = build_services(pool, key_service, TapSettings(flush_delay_ms=1, shared_data=shared_data,
                                                             **options))
    bank = await registry.add_bank(pool, ledger, "ICBC", "Industrial and Commercial Bank")
    operator_account_id = await registry.add_operator(pool, ledger, "metro", "ICBC")
    async with pool.acquire() as connection:
        await store.add_issuer(connection, store.Issuer("621700", "ICBC", "imk-test"))
    rider.token = await enrol_card(pool, ledger, key_service, pan=rider.pan, account_id=5001,
                                   bank_code="ICBC")
    secrets = {
        "gate-1": await services.devices.add("gate-1", "gate", network_id="metro",
                                             operator_account_id=operator_account_id),
        "bus-1": await services.devices.add("bus-1", "gate", network_id="bus",
                                            operator_account_id=operator_account_id),
        "admin-1": await services.devices.add("admin-1", "admin"),
    }
    server = TestServer(create_app(services), port=0)
    await server.start_server()
    async with aiohttp.ClientSession() as session:
        yield Api(session, str(server.make_url("")).rstrip("/"), secrets, services, pool,
                  operator_account_id=operator_account_id,
                  bank_account_id=bank.settlement_account_id)
    await server.close()
