"""Fixtures for the engine's HTTP API: a real server on a free port over the test's own
PostgreSQL database, with the soft key service, the ledger, the Chengdu fare engine and
cards emulated by :class:`terminal.card.Card`."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import aiohttp
import msgspec
import pytest
from aiohttp.test_utils import TestServer
from stdnum import luhn

from adapters.signing import sign
from engine.app import TapSettings, build_services, create_app
from engine.config import Config
from engine.taps import store
from engine.taps.enrolment import enrol_card, open_operator
from hsm.service import open_key_service
from hsm.soft import SoftKeyService
from ledger.service import Ledger
from terminal.card import Card
from terminal.reader import read_tap

IMK = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")
SCHEME = "pboc-3des"
OPERATOR_ACCOUNT_ID = 9001
T0 = datetime(2026, 11, 30, 10, 0, tzinfo=timezone(timedelta(hours=8)))  # off-peak Monday


def pan(serial: int) -> str:
    """A Luhn-valid PAN of the test issuer (prefix 621700)."""
    body = f"621700{serial:012d}"
    return body + luhn.calc_check_digit(body)


class Rider:
    """A cardholder with an emulated card; ``tap`` reads the card at a gate."""

    def __init__(self, serial: int):
        self.pan = pan(serial)
        self.card = Card.issue(SCHEME, IMK, self.pan, "01")
        self.token = ""

    def tap(self, tap_id, direction="entry", station="weijianian", minutes=0, gate="gate-1"):
        return read_tap(self.card.transmit, amount=0, tap_id=tap_id, gate_id=gate,
                        station=station, direction=direction,
                        local_time=T0 + timedelta(minutes=minutes))


class Api:
    """A signed client for the running engine."""

    def __init__(self, session, base, secrets, services, pool):
        self.session, self.base, self.secrets = session, base, secrets
        self.services, self.pool = services, pool

    async def call(self, method, path, body=b"", *, device="gate-1", headers=None):
        signed = sign(self.secrets[device], method, path, body, key_id=device)
        signed |= headers or {}
        async with self.session.request(method, self.base + path, data=body,
                                        headers=signed) as response:
            data = await response.read()
            is_json = response.content_type == "application/json"
            return response.status, (msgspec.json.decode(data) if is_json and data else data)

    async def tap(self, tap, **kwargs):
        return await self.call("POST", "/v1/taps", msgspec.json.encode(tap), **kwargs)

    async def balance(self, account_id):
        async with self.pool.acquire() as connection:
            row = await connection.fetchrow(
                "SELECT debits_posted, credits_posted FROM ledger_accounts WHERE id = $1",
                account_id.to_bytes(16, "big"))
        return row["debits_posted"], row["credits_posted"]


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

    Parametrize indirectly with a flush size (1 = batching off); the default is 64.
    """
    ledger = Ledger(pool)
    flush_size_max = getattr(request, "param", 64)
    services = build_services(pool, key_service, TapSettings(flush_size_max=flush_size_max,
                                                             flush_delay_ms=1,
                                                             shared_data=shared_data))
    await open_operator(ledger, OPERATOR_ACCOUNT_ID)
    async with pool.acquire() as connection:
        await store.add_issuer(connection, store.Issuer("621700", "ICBC", "imk-test"))
    rider.token = await enrol_card(pool, ledger, key_service, pan=rider.pan, account_id=5001,
                                   bank_code="ICBC")
    secrets = {
        "gate-1": await services.devices.add("gate-1", "gate", network_id="metro",
                                             operator_account_id=OPERATOR_ACCOUNT_ID),
        "bus-1": await services.devices.add("bus-1", "gate", network_id="bus",
                                            operator_account_id=OPERATOR_ACCOUNT_ID),
        "admin-1": await services.devices.add("admin-1", "admin"),
    }
    server = TestServer(create_app(services), port=0)
    await server.start_server()
    async with aiohttp.ClientSession() as session:
        yield Api(session, str(server.make_url("")).rstrip("/"), secrets, services, pool)
    await server.close()
