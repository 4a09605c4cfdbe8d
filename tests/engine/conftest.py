"""Fixtures for the engine's HTTP API: a real server on a free port over the test's own
PostgreSQL database, with registered gate and admin devices and an enrolled card."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import aiohttp
import msgspec
import pytest
from aiohttp.test_utils import TestServer

from adapters.signing import sign
from engine.api.metrics import Metrics
from engine.api.routes import Services
from engine.app import create_app
from engine.taps import store
from engine.taps.decision import Fare
from engine.taps.devices import DeviceRegistry
from engine.taps.intake import WireIntake
from engine.taps.service import TapService

OPERATOR_ACCOUNT_ID = 9001
CARD_ACCOUNT_ID = 5001
PAN = "6217000010001234"
BAD_ARQC = "00" * 8
T0 = datetime(2026, 11, 30, 8, 0, tzinfo=timezone(timedelta(hours=8)))


class StubTap(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    tap_id: str
    pan: str
    psn: str
    atc: str
    arqc: str
    station: str
    direction: str
    local_time: datetime
    currency: int = 156
    amount: int = 0


class StubKeys:
    async def card_tokens(self, taps):
        return ["tok-" + tap.pan for tap in taps]

    async def arqcs_valid(self, taps):
        return [tap.arqc != BAD_ARQC for tap in taps]


class RecordingLedger:
    def __init__(self):
        self.postings = []

    async def post(self, connection, postings):
        self.postings.extend(postings)
        return [True] * len(postings)


def stub_price(card, facts):
    fare_minor = 200 if facts.direction == "exit" else 0
    return Fare(fare_minor, card.rider_category, fare_minor, 1500, facts.tapped_at.date().isoformat(),
                b"")


async def _identity(secret: bytes) -> bytes:
    return secret


class Api:
    """A signed client for the running engine."""

    def __init__(self, session, base, secrets, ledger):
        self.session, self.base, self.secrets, self.ledger = session, base, secrets, ledger

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


def make_tap(tap_id="t-1", atc="0001", arqc="1122334455667788", direction="entry",
             station="S1", minutes=0, pan=PAN, **kwargs) -> StubTap:
    return StubTap(tap_id=tap_id, pan=pan, psn="01", atc=atc, arqc=arqc, station=station,
                   direction=direction, local_time=T0 + timedelta(minutes=minutes), **kwargs)


@pytest.fixture
async def api(pool):
    ledger = RecordingLedger()
    metrics = Metrics()
    devices = DeviceRegistry(pool, seal=_identity, unseal=_identity)
    taps = TapService(pool, keys=StubKeys(), ledger=ledger, intake=WireIntake(),
                      price=stub_price, metrics=metrics, flush_size_max=64, flush_delay_ms=1)
    services = Services(pool=pool, devices=devices, taps=taps, metrics=metrics,
                        tap_type=StubTap)
    secrets = {
        "gate-1": await devices.add("gate-1", "gate", operator_account_id=OPERATOR_ACCOUNT_ID),
        "admin-1": await devices.add("admin-1", "admin"),
    }
    async with pool.acquire() as connection:
        await store.enrol_card(connection, "tok-" + PAN, account_id=CARD_ACCOUNT_ID,
                               bank_code="ICBC")
    server = TestServer(create_app(services), port=0)
    await server.start_server()
    async with aiohttp.ClientSession() as session:
        yield Api(session, str(server.make_url("")).rstrip("/"), secrets, ledger)
    await server.close()
