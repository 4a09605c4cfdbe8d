"""simbank over real HTTP on loopback: idempotency, rejections, faults, statements, returns,
and a full round of delivery + status + reconciliation that comes out clean."""

import asyncio
import datetime as dt
import ssl

import aiohttp
import msgspec
import pytest

from adapters import signing
from adapters.delivery import HttpDelivery, RetryPolicy
from adapters.errors import DeliveryError, DeliveryRefusedError
from adapters.iso20022 import camt053, ids, pacs002, pacs004, pacs008
from adapters.reconcile import EngineTransfer, reconcile
from adapters.simbank import Faults, SimBank
from tls_material import write_tls_material

KEY = bytes(range(32))
NOW = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.timezone.utc)
HEADER = pacs008.GroupHeader(created_at=NOW, settlement_date=NOW.date(),
                             instructing_agent="ONECARD", instructed_agent="ICBC",
                             debtor_name="Subsidy Fund", debtor_account="FUND-001")


def _transfers(count, start=1, fen=1000):
    return [pacs008.CreditTransfer(ids.end_to_end_id(n), fen + n, "CNY", f"Person {n}", f"622202{n:010d}")
            for n in range(start, start + count)]


def _messages(transfers, per_message=3):
    numbers = iter(range(10**6))
    return list(pacs008.iter_messages(HEADER, transfers, transactions_per_message_max=per_message,
                                      next_message_id=lambda: ids.message_id("P008", next(numbers))))


async def _no_sleep(seconds):
    pass


@pytest.fixture
async def bank():
    bank = SimBank("ICBC", keys={"ONECARD": KEY}, clock=lambda: NOW)
    await bank.start()
    yield bank
    await bank.stop()


@pytest.fixture
async def delivery(bank):
    delivery = HttpDelivery(bank.url, key_id="ONECARD", key=KEY, sleep=_no_sleep,
                            policy=RetryPolicy(attempts_max=10, timeout_s=2))
    yield delivery
    await delivery.close()


async def test_instruction_is_credited_once_and_replayed_identically(bank, delivery):
    [message] = _messages(_transfers(2))
    first = await delivery.push("/v1/pacs008", message.message_id, message.xml)
    again = await delivery.push("/v1/pacs008", message.message_id, message.xml)
    assert first.body == again.body
    report = pacs002.parse(first.body)
    assert [(t.original_end_to_end_id, t.status) for t in report.transactions] == [
        (ids.end_to_end_id(1), "ACSC"), (ids.end_to_end_id(2), "ACSC")]
    assert bank.accounts["6222020000000001"].balance_minor == 1001
    # The same transaction in a new message is acknowledged but never credited twice.
    numbers = iter([99])
    [resent] = pacs008.iter_messages(HEADER, _transfers(1), next_message_id=lambda: f"P008-{next(numbers)}")
    answer = pacs002.parse((await delivery.push("/v1/pacs008", resent.message_id, resent.xml)).body)
    assert answer.transactions[0].status == "ACSC"
    assert bank.accounts["6222020000000001"].balance_minor == 1001


async def test_same_message_id_with_other_content_is_409(bank, delivery):
    [message] = _messages(_transfers(1))
    await delivery.push("/v1/pacs008", message.message_id, message.xml)
    [other] = pacs008.iter_messages(HEADER, _transfers(1, fen=5000),
                                    next_message_id=lambda: message.message_id)
    with pytest.raises(DeliveryRefusedError, match="HTTP 409.*MsgId was already used"):
        await delivery.push("/v1/pacs008", other.message_id, other.xml)


async def test_invalid_message_is_400_naming_the_element(bank, delivery):
    [message] = _messages(_transfers(1))
    bad = message.xml.replace(b'Ccy="CNY">10.01<', b'Ccy="CNY">10.011<')
    with pytest.raises(DeliveryRefusedError) as caught:
        await delivery.push("/v1/pacs008", message.message_id, bad)
    body = str(caught.value).split(": ", 2)[2]
    assert msgspec.json.decode(body) == {
        "error": "10.011 has more decimals than CNY allows (2)",
        "element": "IntrBkSttlmAmt", "line": 2}
    assert bank.accounts == {}


async def test_unsigned_request_is_refused(bank):
    async with aiohttp.ClientSession() as session:
        async with session.post(bank.url + "/v1/pacs008", data=b"<x/>") as reply:
            assert reply.status == 401
            assert (await reply.json())["error"] == "X-Onecard-Key: header missing"


async def test_closed_account_is_rejected_ac04_and_unknown_ac01():
    bank = SimBank("ICBC", auto_open=False, clock=lambda: NOW)
    bank.open_account("6222020000000001")
    bank.close_account("6222020000000002")
    [message] = _messages(_transfers(3))
    report = pacs002.parse(bank.receive_pacs008(message.xml))
    assert [(t.status, t.reason_code) for t in report.transactions] == [
        ("ACSC", ""), ("RJCT", "AC04"), ("RJCT", "AC01")]


async def test_status_faults_are_duplicates_and_stale_interims_only():
    bank = SimBank("ICBC", faults=Faults(duplicate_rate=0.5, out_of_order_rate=0.5, seed=7),
                   clock=lambda: NOW)
    [message] = _messages(_transfers(10), per_message=10)
    report = pacs002.parse(bank.receive_pacs008(message.xml))
    assert len(report.transactions) > 10
    assert {t.status for t in report.transactions} == {"ACSC", "ACSP"}
    standing, conflicts = pacs002.resolve(report.transactions)
    assert conflicts == [] and len(standing) == 10
    assert {status.status for status in standing.values()} == {"ACSC"}


async def test_faults_over_http_still_give_exactly_one_effect():
    faults = Faults(error_rate=0.3, lost_ack_rate=0.3, timeout_rate=0.2, hang_s=1.0,
                    reject_rate=0.1, duplicate_rate=0.2, out_of_order_rate=0.2, seed=3)
    bank = SimBank("ICBC", faults=faults, keys={"ONECARD": KEY}, clock=lambda: NOW)
    await bank.start()
    delivery = HttpDelivery(bank.url, key_id="ONECARD", key=KEY, sleep=_no_sleep,
                            policy=RetryPolicy(attempts_max=30, timeout_s=0.3))
    transfers = _transfers(30)
    statuses = []
    try:
        for message in _messages(transfers):
            response = await delivery.push("/v1/pacs008", message.message_id, message.xml)
            statuses.extend(pacs002.parse(response.body).transactions)
        await asyncio.sleep(1.1)  # let hung answers finish before the bank stops
        statement = camt053.parse(bank.statement(NOW.date()))
    finally:
        await delivery.close()
        await bank.stop()
    standing, conflicts = pacs002.resolve(statuses)
    assert conflicts == [] and len(standing) == 30
    paid = [t for t in transfers if standing[t.end_to_end_id].status == "ACSC"]
    rejected = [t for t in transfers if standing[t.end_to_end_id].status == "RJCT"]
    assert len(paid) + len(rejected) == 30 and rejected
    assert all(standing[t.end_to_end_id].reason_code == "AC04" for t in rejected)
    for transfer in paid:
        assert bank.accounts[transfer.creditor_account].balance_minor == transfer.amount_minor
    expected = [EngineTransfer(t.end_to_end_id, t.amount_minor, "CNY", "DBIT", NOW.date()) for t in paid]
    report = reconcile(expected, statement.entries)
    assert report.clean and len(report.matched) == len(paid)


async def test_returns_statement_and_account_admin_over_http(bank, delivery):
    [message] = _messages(_transfers(2))
    await delivery.push("/v1/pacs008", message.message_id, message.xml)
    returned = ids.end_to_end_id(2)
    async with aiohttp.ClientSession() as session:
        body = msgspec.json.encode({"end_to_end_id": returned, "reason_code": "AC04"})
        headers = signing.sign(KEY, "POST", "/v1/admin/returns", body, key_id="ONECARD")
        async with session.post(bank.url + "/v1/admin/returns", data=body, headers=headers) as reply:
            assert reply.status == 201
            return_id = (await reply.json())["message_id"]
        headers = signing.sign(KEY, "GET", "/v1/admin/accounts/6222020000000002", b"", key_id="ONECARD")
        async with session.get(bank.url + "/v1/admin/accounts/6222020000000002", headers=headers) as reply:
            assert await reply.json() == {"number": "6222020000000002", "status": "open",
                                          "balance_minor": 0}
    first = await delivery.fetch("/v1/pacs004")
    returns = pacs004.parse(first.body)
    assert returns.message_id == return_id
    assert [(r.original_end_to_end_id, r.amount_minor, r.reason_code, r.original_message_id)
            for r in returns.returns] == [(returned, 1002, "AC04", message.message_id)]
    assert (await delivery.fetch(f"/v1/pacs004?after={return_id}")).status == 204
    statement_xml = (await delivery.fetch("/v1/camt053?date=2026-12-01")).body
    assert statement_xml == (await delivery.fetch("/v1/camt053?date=2026-12-01")).body
    statement = camt053.parse(statement_xml)
    assert [(e.end_to_end_id, e.amount_minor, e.credit_debit) for e in statement.entries] == [
        (ids.end_to_end_id(1), 1001, "DBIT"), (returned, 1002, "DBIT"), (returned, 1002, "CRDT")]
    assert [(b.code, b.amount_minor) for b in statement.balances] == [("OPBD", 0), ("CLBD", -1001)]
    expected = [EngineTransfer(ids.end_to_end_id(1), 1001, "CNY", "DBIT", NOW.date()),
                EngineTransfer(returned, 1002, "CNY", "DBIT", NOW.date()),
                EngineTransfer(returned, 1002, "CNY", "CRDT", NOW.date())]
    assert reconcile(expected, statement.entries).clean
    status = await delivery.fetch(f"/v1/pacs002/{message.message_id}")
    assert pacs002.parse(status.body).original_message_id == message.message_id


async def test_lost_acknowledgement_then_resend_has_one_effect():
    bank = SimBank("ICBC", faults=Faults(lost_ack_rate=1.0), clock=lambda: NOW)
    await bank.start()
    delivery = HttpDelivery(bank.url, key_id="ONECARD", key=KEY, sleep=_no_sleep,
                            policy=RetryPolicy(attempts_max=3, timeout_s=2))
    [message] = _messages(_transfers(1))
    try:
        with pytest.raises(DeliveryError, match="last: HTTP 502"):
            await delivery.push("/v1/pacs008", message.message_id, message.xml)
        assert bank.accounts["6222020000000001"].balance_minor == 1001
        bank.faults = Faults()
        answer = await delivery.push("/v1/pacs008", message.message_id, message.xml)
    finally:
        await delivery.close()
        await bank.stop()
    assert answer.body == bank.status_report(message.message_id)
    assert bank.accounts["6222020000000001"].balance_minor == 1001


async def test_timeout_then_resend_has_one_effect():
    bank = SimBank("ICBC", faults=Faults(timeout_rate=1.0, hang_s=0.5), clock=lambda: NOW)
    await bank.start()
    delivery = HttpDelivery(bank.url, key_id="ONECARD", key=KEY, sleep=_no_sleep,
                            policy=RetryPolicy(attempts_max=2, timeout_s=0.2))
    [message] = _messages(_transfers(2))
    try:
        with pytest.raises(DeliveryError, match="last: (ServerTimeoutError|TimeoutError)"):
            await delivery.push("/v1/pacs008", message.message_id, message.xml)
        bank.faults = Faults()
        answer = await delivery.push("/v1/pacs008", message.message_id, message.xml)
        await asyncio.sleep(0.5)
    finally:
        await delivery.close()
        await bank.stop()
    assert [t.status for t in pacs002.parse(answer.body).transactions] == ["ACSC", "ACSC"]
    assert [bank.accounts[f"62220200000000{n:02d}"].balance_minor for n in (1, 2)] == [1001, 1002]


async def test_injected_5xx_changes_nothing():
    bank = SimBank("ICBC", faults=Faults(error_rate=1.0), clock=lambda: NOW)
    await bank.start()
    delivery = HttpDelivery(bank.url, key_id="ONECARD", key=KEY, sleep=_no_sleep,
                            policy=RetryPolicy(attempts_max=2))
    [message] = _messages(_transfers(1))
    try:
        with pytest.raises(DeliveryError, match="last: HTTP 503"):
            await delivery.push("/v1/pacs008", message.message_id, message.xml)
    finally:
        await delivery.close()
        await bank.stop()
    assert bank.accounts == {} and bank.status_report(message.message_id) is None


async def test_push_over_mutual_tls(tmp_path):
    paths = write_tls_material(tmp_path)
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(paths["server"], paths["server_key"])
    server_context.load_verify_locations(paths["ca"])
    server_context.verify_mode = ssl.CERT_REQUIRED
    client_context = ssl.create_default_context(cafile=str(paths["ca"]))
    client_context.load_cert_chain(paths["client"], paths["client_key"])
    anonymous_context = ssl.create_default_context(cafile=str(paths["ca"]))
    bank = SimBank("ICBC", keys={"ONECARD": KEY}, clock=lambda: NOW)
    url = await bank.start(ssl_context=server_context)
    assert url.startswith("https://127.0.0.1:")
    [message] = _messages(_transfers(1))
    policy = RetryPolicy(attempts_max=2, timeout_s=5)
    with_certificate = HttpDelivery(url, key_id="ONECARD", key=KEY, ssl=client_context,
                                    sleep=_no_sleep, policy=policy)
    without_certificate = HttpDelivery(url, key_id="ONECARD", key=KEY, ssl=anonymous_context,
                                       sleep=_no_sleep, policy=policy)
    try:
        answer = await with_certificate.push("/v1/pacs008", message.message_id, message.xml)
        with pytest.raises(DeliveryError):
            await without_certificate.push("/v1/pacs008", message.message_id, message.xml)
    finally:
        await with_certificate.close()
        await without_certificate.close()
        await bank.stop()
    assert pacs002.parse(answer.body).transactions[0].status == "ACSC"
