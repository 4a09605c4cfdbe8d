"""The bank-facing settlement API over real loopback TLS: mutual TLS refused without a
valid client certificate, signatures and replays, each bank sees only its own data, bad
messages named and without effect, idempotent MsgIds, confirmation to SETTLED."""

import datetime as dt
import ssl

import aiohttp
import pytest

from adapters import signing
from adapters.iso20022 import ids, pacs002, pacs008
from engine.api.banks import BankApiSettings, start_bank_api
from engine.settlement import pki
from engine.settlement.cycles import Cycles
from engine.settlement.outbox import Payout, post_payouts
from ledger.ids import new_id
from settlement_world import make_world

NOW = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.timezone.utc)


class BankClient:
    """A bank calling the API with its certificate and signing key."""

    def __init__(self, url, credentials, *, key_id=None, key=None):
        self.url = url
        self.key_id = key_id or credentials.bank_code
        self.key = key or credentials.signing_key.read_bytes()
        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=pki.client_context(credentials)))

    async def call(self, method, path, body=b"", headers=None):
        signed = signing.sign(self.key, method, path, body, key_id=self.key_id) if headers is None else headers
        async with self.session.request(method, self.url + path, data=body or None, headers=signed) as reply:
            return reply.status, await reply.read()

    async def json(self, method, path, body=b""):
        import msgspec
        status, content = await self.call(method, path, body)
        return status, msgspec.json.decode(content) if content else None


@pytest.fixture
async def api(pool, tmp_path):
    store = pki.Pki(tmp_path / "pki")
    store.ensure_ca()
    store.issue_server()
    for code in ("BOC", "CCB", "ICBC"):
        store.issue_bank(code)
    world = await make_world(pool)
    runner, tasks = await start_bank_api(pool, store, BankApiSettings(port=0, dispatch=False))
    url = f"https://127.0.0.1:{runner.addresses[0][1]}"
    clients = {code: BankClient(url, store.bank(code)) for code in ("BOC", "CCB", "ICBC")}
    yield world, store, url, clients
    for client in clients.values():
        await client.session.close()
    await runner.cleanup()


async def _closed_cycle_with_fares_and_payouts(pool, world):
    await world.fares(pool, [300, 400])
    payouts = [Payout(new_id(), world.payer_account, world.cards[0], 5_000, "ICBC", "Li Lei", "6222020000000001",
                      "Subsidy Fund")]
    async with pool.acquire() as connection, connection.transaction():
        await post_payouts(connection, world.ledger, payouts)
    cycles = Cycles(pool, world.ledger)
    await cycles.close_and_issue(actor="test")
    return payouts


async def test_without_a_client_certificate_the_handshake_is_refused(api):
    _, store, url, _ = api
    context = ssl.create_default_context(cafile=str(store.ca_certificate))
    async with aiohttp.ClientSession() as session:
        with pytest.raises((aiohttp.ClientError, ssl.SSLError)):
            async with session.get(url + "/v1/cycles", ssl=context) as reply:
                await reply.read()


async def test_a_certificate_from_another_ca_is_refused(api, tmp_path):
    _, store, url, _ = api
    other = pki.Pki(tmp_path / "other")
    other.ensure_ca()
    credentials = other.issue_bank("ICBC")
    context = ssl.create_default_context(cafile=str(store.ca_certificate))
    context.load_cert_chain(credentials.certificate, credentials.private_key)
    async with aiohttp.ClientSession() as session:
        with pytest.raises((aiohttp.ClientError, ssl.SSLError)):
            async with session.get(url + "/v1/cycles", ssl=context) as reply:
                await reply.read()


async def test_signature_must_be_the_certificate_holders_and_replays_are_refused(api):
    _, store, url, clients = api
    impostor = BankClient(url, store.bank("BOC"), key_id="ICBC", key=store.bank("ICBC").signing_key.read_bytes())
    try:
        status, body = await impostor.call("GET", "/v1/cycles")
        assert status == 403 and b"signed as 'ICBC' but the certificate is 'BOC'" in body
    finally:
        await impostor.session.close()
    client = clients["ICBC"]
    status, _ = await client.call("GET", "/v1/cycles", headers={})
    assert status == 401
    headers = signing.sign(client.key, "GET", "/v1/cycles", b"", key_id="ICBC")
    assert (await client.call("GET", "/v1/cycles", headers=headers))[0] == 200
    status, body = await client.call("GET", "/v1/cycles", headers=headers)
    assert status == 401 and b"replayed" in body


async def test_each_bank_sees_only_its_own_positions_instructions_and_collections(pool, api):
    world, _, _, clients = api
    await _closed_cycle_with_fares_and_payouts(pool, world)
    nets = {}
    for code, client in clients.items():
        status, body = await client.json("GET", "/v1/cycles/1")
        assert status == 200 and body["state"] == "PENDING_SETTLEMENT"
        nets[code] = body["position"]["net_minor"]
    assert nets == {"BOC": 700, "CCB": -5_000, "ICBC": 4_300}
    status, xml = await clients["ICBC"].call("GET", "/v1/cycles/1/instructions")
    message = pacs008.parse(xml)
    assert status == 200 and message.instructed_agent == "ICBC"
    assert [(t.amount_minor, t.creditor_name) for t in message.transfers] == [(4_300, "ICBC")]
    status, xml = await clients["CCB"].call("GET", "/v1/cycles/1/instructions")
    assert [(t.amount_minor, t.creditor_name) for t in pacs008.parse(xml).transfers] == [(5_000, "onecard clearing")]
    status, body = await clients["ICBC"].json("GET", "/v1/cycles/1/collections")
    assert [(c["account"], c["amount_minor"], c["fares"]) for c in body["collections"]] == [
        (f"{world.cards[0]:032X}", 700, 2)]
    assert (await clients["BOC"].json("GET", "/v1/cycles/1/collections"))[1]["collections"] == []
    # The open cycle 2 has no positions yet; a bank's list shows only its own.
    status, body = await clients["BOC"].json("GET", "/v1/cycles")
    assert [(c["cycle_id"], c["position"] and c["position"]["net_minor"]) for c in body["cycles"]] == [
        (2, None), (1, 700)]


async def test_a_bank_cannot_touch_another_banks_payments(pool, api):
    world, _, _, clients = api
    payouts = await _closed_cycle_with_fares_and_payouts(pool, world)
    e2e = ids.end_to_end_id(payouts[0].transfer_id)
    report = pacs002.build(ids.new_message_id("P002"), NOW, "ANY", [pacs002.TransactionStatus(e2e, "RJCT", "AC04")])
    status, body = await clients["BOC"].json("POST", "/v1/pacs002", report)
    assert status == 200 and body["unknown"] == [e2e] and body["rejected"] == []
    async with pool.acquire() as connection:
        assert await connection.fetchval("SELECT status FROM settlement_payments") == "SENT"
    # BOC cannot download ICBC's payment instructions either.
    assert (await clients["BOC"].call("GET", "/v1/payments"))[0] == 204


async def test_status_report_bad_message_replay_and_conflict(pool, api):
    world, _, _, clients = api
    payouts = await _closed_cycle_with_fares_and_payouts(pool, world)
    client = clients["ICBC"]
    status, xml = await client.call("GET", "/v1/payments")
    assert status == 200
    message = pacs008.parse(xml)
    e2e = ids.end_to_end_id(payouts[0].transfer_id)
    assert [t.end_to_end_id for t in message.transfers] == [e2e]
    assert (await client.call("GET", f"/v1/payments?after={message.message_id}"))[0] == 204
    good = pacs002.build(ids.message_id("P002", 7), NOW, message.message_id, [pacs002.TransactionStatus(e2e, "RJCT", "AC04")])
    bad = good.replace(b"<TxSts>RJCT</TxSts>", b"<TxSts>REJECTED</TxSts>")
    status, body = await client.json("POST", "/v1/pacs002", bad)
    assert status == 400 and body["element"].endswith("TxSts") and body["line"]
    async with pool.acquire() as connection:
        assert await connection.fetchval("SELECT count(*) FROM settlement_inbound") == 0
        assert await connection.fetchval("SELECT status FROM settlement_payments") == "SENT"
    status, first = await client.call("POST", "/v1/pacs002", good)
    assert status == 200 and b'"rejected":["' + e2e.encode() in first
    assert await client.call("POST", "/v1/pacs002", good) == (200, first)
    other = pacs002.build(ids.message_id("P002", 7), NOW, message.message_id, [pacs002.TransactionStatus(e2e, "ACSC")])
    status, body = await client.json("POST", "/v1/pacs002", other)
    assert status == 409 and body["element"] == "MsgId"
    (card,) = await world.ledger.lookup_accounts([world.cards[0]])
    assert (card.credits_posted, card.debits_posted) == (5_000, 700 + 5_000)


async def test_confirmations_take_the_cycle_to_settled(pool, api):
    world, _, _, clients = api
    await _closed_cycle_with_fares_and_payouts(pool, world)
    states = []
    for code in ("BOC", "CCB", "ICBC"):
        status, body = await clients[code].json("POST", "/v1/cycles/1/confirm")
        assert status == 200 and body["position"]["confirmed"]
        states.append(body["state"])
    assert states == ["PENDING_SETTLEMENT", "PENDING_SETTLEMENT", "SETTLED"]
    status, body = await clients["BOC"].json("POST", "/v1/cycles/9/confirm")
    assert status == 404 and "cycle 9" in body["error"]


async def test_a_replay_to_another_engine_process_is_refused(pool, api):
    _, store, url, clients = api
    # A second engine process: its own verifier (empty nonce memory), the same database.
    runner, _ = await start_bank_api(pool, store, BankApiSettings(port=0, dispatch=False))
    try:
        other = BankClient(f"https://127.0.0.1:{runner.addresses[0][1]}", store.bank("ICBC"))
        headers = signing.sign(other.key, "GET", "/v1/cycles", b"", key_id="ICBC")
        assert (await clients["ICBC"].call("GET", "/v1/cycles", headers=headers))[0] == 200
        status, body = await other.call("GET", "/v1/cycles", headers=headers)
        assert status == 401 and b"replayed" in body
        await other.session.close()
    finally:
        await runner.cleanup()
