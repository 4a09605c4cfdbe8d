"""The department HTTP API on a real server (free port) and PostgreSQL: signed requests by
department users; submit, show, approve (another user, bound to the hash), execute, report;
a department never sees another's batches; a gate device may not call these routes."""

import csv
import io

import aiohttp
import msgspec
import pytest
from aiohttp.test_utils import TestServer

from adapters.cardholder_file import cardholder_lines
from adapters.signing import sign
from engine.app import TapSettings, build_services, create_app
from engine.disbursement import departments
from engine.disbursement.bank_card import BinTable
from engine.disbursement.execution import fund_programme
from engine.disbursement.registry import check_cardholder_rows
from engine.disbursement.store import FIELD_KEY, ID_HASH_KEY, PAN_TOKEN_KEY, DisbursementStore
from engine.settlement import registry
from hsm.soft import SoftKeyService
from ledger.service import Ledger
from tests.disbursement.test_execution import CARDHOLDERS, TODAY

BATCH = ("序号,姓名,身份证号,社会保障卡号,金额\n"
         "1,张三,510121195803142150,6222026465816998396,300.00\n"
         "2,李四,510112198711023688,6259083065450331,20.005\n"
         "3,赵七,11010519491231002X,6217000000000000012,150\n")


class Client:
    def __init__(self, session, base, secrets):
        self.session, self.base, self.secrets = session, base, secrets

    async def call(self, user, method, path, body=b""):
        headers = sign(self.secrets[user], method, path, body, key_id=user)
        async with self.session.request(method, self.base + path, data=body, headers=headers) as response:
            data = await response.read()
            if response.content_type == "application/json":
                return response.status, msgspec.json.decode(data)
            return response.status, data


@pytest.fixture
async def client(pool, tmp_path, shared_data):
    SoftKeyService.init(tmp_path / "keys")
    keys = SoftKeyService.open(tmp_path / "keys")
    for label, kind in ((ID_HASH_KEY, "bank-mac"), (PAN_TOKEN_KEY, "pan-token"), (FIELD_KEY, "field-enc")):
        await keys.generate_key(label, kind)
    ledger = Ledger(pool)
    for code in ("BOC", "CCB", "ICBC"):
        await registry.add_bank(pool, ledger, code, code)
    services = build_services(pool, keys, TapSettings(shared_data=shared_data))
    store = DisbursementStore(pool, keys)
    path = tmp_path / "c.csv"
    path.write_text(CARDHOLDERS, encoding="utf-8")
    await store.import_cardholders(list(check_cardholder_rows(cardholder_lines(path), BinTable.load(), TODAY)))
    for code, department in (("ELDERLY", "civil"), ("WAGES", "labour")):
        await store.create_programme(code, "subsidy", code, 50_000)
        await departments.assign_programme(pool, code, department)
        await fund_programme(store, ledger, code, 100_000, bank_code="CCB")
    secrets = {user: (await departments.add_user(pool, services.devices, user, department))[1]
               for user, department in (("alice", "civil"), ("bob", "civil"), ("carol", "labour"), ("dave", "labour"))}
    secrets["gate-9"] = await services.devices.add("gate-9", "admin")
    server = TestServer(create_app(services), port=0)
    await server.start_server()
    async with aiohttp.ClientSession() as session:
        yield Client(session, str(server.make_url("")).rstrip("/"), secrets)
    await server.close()
    await keys.close()


async def test_department_submits_approves_executes_and_reports(client):
    path = "/v1/disbursement/programmes/ELDERLY/batches?period=2026-11&filename=b.csv"
    status, batch = await client.call("alice", "POST", path, BATCH.encode("gbk"))
    assert status == 201, batch
    assert (batch["state"], batch["lines"], batch["accepted"], batch["accepted_minor"], batch["submitted_by"]) == (
        "validated", 3, 2, 45_000, "alice")
    assert batch["rejected"] == [{"line": 2, "reason": "amount_precision"}]
    batch_path = f"/v1/disbursement/batches/{batch['id']}"
    assert (batch["rejected_count"], batch["report"]) == (1, batch_path + "/report?format=csv")

    # The same file again; another department's programme; another department's batch.
    status, problem = await client.call("bob", "POST", path, BATCH.encode("utf-8"))
    assert (status, problem["title"]) == (409, f"the same batch content was already submitted as batch {batch['id']} "
                                               "for period 2026-11; cancel it first to submit it again")
    status, _ = await client.call("carol", "POST", path, BATCH.encode("utf-8"))
    assert status == 404
    for method, suffix in (("GET", ""), ("POST", "/execute"), ("GET", "/report?format=csv")):
        status, _ = await client.call("carol", method, batch_path + suffix)
        assert status == 404
    status, _ = await client.call("gate-9", "GET", batch_path)
    assert status == 403

    approval = msgspec.json.encode({"content_sha256": batch["content_sha256"]})
    status, problem = await client.call("alice", "POST", batch_path + "/approve", approval)
    assert status == 409 and "different user" in problem["title"]
    status, problem = await client.call("bob", "POST", batch_path + "/approve",
                                        msgspec.json.encode({"content_sha256": "0" * 64}))
    assert (status, problem["title"]) == (409, "content_sha256 does not match the batch's content hash "
                                               f"({batch['content_sha256'][:12]}...); review it again")
    status, approved = await client.call("bob", "POST", batch_path + "/approve", approval)
    assert (status, approved["state"]) == (200, "approved")

    status, executed = await client.call("bob", "POST", batch_path + "/execute")
    assert (status, executed) == (200, {"id": batch["id"], "state": "executed", "lines": 2, "amount_minor": 45_000,
                                        "messages": 2})
    status, problem = await client.call("bob", "POST", batch_path + "/execute")
    assert status == 409 and "is executed" in problem["title"]

    status, body = await client.call("alice", "GET", batch_path + "/report?format=csv")
    rows = list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))
    assert [r[:3] for r in rows[1:]] == [["1", "accepted", ""], ["2", "rejected", "amount_precision"],
                                         ["3", "accepted", ""]]
    status, body = await client.call("alice", "GET", batch_path + "/report?format=pain002")
    assert status == 200 and b"<GrpSts>PART</GrpSts>" in body
    status, problem = await client.call("alice", "GET", batch_path + "/report?format=pdf")
    assert status == 400 and "format" in problem["title"]


async def test_insufficient_funds_is_a_conflict_with_nothing_posted(client, pool):
    text = ("序号,姓名,身份证号,社会保障卡号,金额\n"
            "1,张三,510121195803142150,6222026465816998396,400\n"
            "2,李四,510112198711023688,6259083065450331,400\n"
            "3,赵七,11010519491231002X,6217000000000000012,400\n")
    status, batch = await client.call("carol", "POST", "/v1/disbursement/programmes/WAGES/batches?period=2026-11",
                                      text.encode())
    assert status == 201
    batch_path = f"/v1/disbursement/batches/{batch['id']}"
    status, _ = await client.call("dave", "POST", batch_path + "/approve",
                                  msgspec.json.encode({"content_sha256": batch["content_sha256"]}))
    assert status == 200
    async with pool.acquire() as connection:
        before = await connection.fetchval("SELECT count(*) FROM ledger_transfers WHERE flags & 2 = 0")
    status, problem = await client.call("dave", "POST", batch_path + "/execute")
    assert status == 409 and "short by 200.00 yuan" in problem["title"] and "nothing was posted" in problem["title"]
    async with pool.acquire() as connection:
        # Only reservations and their voids were written: no posted payment, no message.
        posted = await connection.fetchval("SELECT count(*) FROM ledger_transfers WHERE flags & 2 = 0 AND flags & 8 = 0")
        assert posted == before
        assert await connection.fetchval("SELECT count(*) FROM settlement_outbox") == 0
    status, shown = await client.call("dave", "GET", batch_path)
    assert shown["state"] == "approved"
