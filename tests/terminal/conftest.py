"""A real PC/SC stack for terminal tests: pcscd with vsmartcard's virtual reader driver.

``pcscd_virtual_reader`` starts ``pcscd --foreground`` for the session unless a pcscd with
the "Virtual PCD" reader already runs, and stops only a pcscd it started itself. Tests
that need it are skipped, with the reason, when the binaries are missing (CI installs
them: see ``.ci/run``).
"""

from __future__ import annotations

import shutil

import msgspec
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from adapters.errors import SignatureError
from adapters.signing import Verifier
from terminal import vpcd
from engine.taps.wire import TapAnswer, TapBatchAnswer
from terminal.gate import DenyList, card_hash
from terminal.tap import Tap

KEY = b"k" * 32
SALT = bytes(range(16))
DENIED_PAN = "6217000010000000003"


@pytest.fixture(scope="session")
def pcscd_virtual_reader():
    """The PC/SC name of the virtual reader, with pcscd running for the whole session."""
    pytest.importorskip("smartcard", reason="pyscard is not installed (pip install pyscard)")
    pcscd = shutil.which("pcscd") or shutil.which("pcscd", path="/usr/sbin:/sbin")
    if pcscd is None or not vpcd.VPCD_DRIVER.exists():
        pytest.skip("pcscd or vsmartcard-vpcd not installed (apt-get install pcscd vsmartcard-vpcd)")
    process = vpcd.start_pcscd()
    yield vpcd.virtual_reader_name()
    if process is not None:
        process.terminate()
        process.wait(timeout=10)


class FakeEngine:
    """Signed POST /v1/taps (one or a list, idempotent by tap_id) and GET /v1/deny-list in
    the engine's wire format (:mod:`engine.taps.wire`); declines deny-listed cards
    (``card_lost``), approves the rest charging the tap's amount (no cryptogram check: that
    is the engine's job, tested there)."""

    def __init__(self):
        self.verifier = Verifier({})
        self.taps: dict[str, bytes] = {}
        self.requests = 0
        self.status_override: int | None = None
        self.deny_list = DenyList(7, SALT.hex(), [card_hash(SALT, DENIED_PAN)])
        self.app = web.Application()
        self.app.router.add_post("/v1/taps", self.post_taps)
        self.app.router.add_get("/v1/deny-list", self.get_deny_list)

    def add_gate(self, gate_id, key):
        self.verifier.add_key(gate_id, key)

    async def _checked(self, request):
        self.requests += 1
        if self.status_override:
            return web.Response(status=self.status_override)
        body = await request.read()
        try:
            self.verifier.verify(request.method, request.path_qs, request.headers, body)
        except SignatureError as error:
            return web.Response(status=401, text=str(error))
        return body

    async def post_taps(self, request):
        body = await self._checked(request)
        if isinstance(body, web.Response):
            return body
        try:
            taps = msgspec.json.decode(body, type=Tap | list[Tap])
        except msgspec.ValidationError as error:
            return web.Response(status=400, text=str(error))
        many = isinstance(taps, list)
        answers = [self._decide(tap) for tap in (taps if many else [taps])]
        return web.Response(body=msgspec.json.encode(TapBatchAnswer(answers) if many else answers[0]),
                            content_type="application/json")

    def _decide(self, tap):
        self.taps.setdefault(tap.tap_id, msgspec.json.encode(tap))
        if card_hash(bytes.fromhex(self.deny_list.salt), tap.pan) in self.deny_list.cards:
            return TapAnswer(tap.tap_id, "declined", "card_lost", 7, 0, "adult", 0, 2000)
        return TapAnswer(tap.tap_id, "approved", "approved", 0, tap.amount, "adult", tap.amount, 2000)

    async def get_deny_list(self, request):
        body = await self._checked(request)
        if isinstance(body, web.Response):
            return body
        return web.Response(body=msgspec.json.encode(self.deny_list), content_type="application/json")


@pytest.fixture
async def fake_engine():
    """A small signed tap engine on a free loopback port (``.url``), with no gate keys yet."""
    fake = FakeEngine()
    server = TestServer(fake.app, host="127.0.0.1", port=0)
    await server.start_server()
    fake.url = str(server.make_url("")).rstrip("/")
    yield fake
    await server.close()
