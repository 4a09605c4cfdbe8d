"""Department API refusals name the field and, for upload errors, the department's own
file name (not the engine's temporary file)."""

from urllib.parse import quote

import msgspec
import pytest

from tests.disbursement.test_department_api import BATCH, client  # noqa: F401 - the fixture

SUBMIT = "/v1/disbursement/programmes/ELDERLY/batches"


async def test_upload_errors_name_the_uploaded_file(client):  # noqa: F811
    status, problem = await client.call("alice", "POST", f"{SUBMIT}?period=2026-11&filename={quote('补贴十一月.csv')}",
                                        b"\n\n")
    assert status == 400
    assert problem["title"].startswith("补贴十一月.csv: ")
    assert "tmp" not in problem["title"]


@pytest.mark.parametrize("query, title", [
    ("period=0000-01&filename=b.csv", "period: must be a month from 2000-01 to 2099-12, got '0000-01'"),
    ("period=2100-01&filename=b.csv", "period: must be a month from 2000-01 to 2099-12, got '2100-01'"),
    ("period=2026-11&filename=b.txt", "filename: must end in .csv, .xlsx, .xml"),
    ("period=2026-11&filename=x%00.csv", "filename: must be a printable file name of 1 to 200 characters"),
])
async def test_bad_query_is_refused_by_name(client, query, title):  # noqa: F811
    assert await client.call("alice", "POST", f"{SUBMIT}?{query}", b"x") == (400, {"status": 400, "title": title})



@pytest.mark.parametrize("batch_id", ["9" * 5000, "99999999999999999999", "0"])
async def test_impossible_batch_ids_are_400(client, batch_id):  # noqa: F811
    status, problem = await client.call("alice", "GET", f"/v1/disbursement/batches/{batch_id}")
    assert (status, problem["title"]) == (400, "invalid request: batch id: must be an integer from 1 to "
                                               "9223372036854775807")


async def test_batch_view_counts_rejected_lines_and_points_to_the_report(client):  # noqa: F811
    status, batch = await client.call("alice", "POST", f"{SUBMIT}?period=2026-11&filename=b.csv", BATCH.encode())
    assert (status, batch["rejected"], batch["rejected_count"]) == (201, [{"line": 2, "reason": "amount_precision"}], 1)
    status, shown = await client.call("alice", "GET", f"/v1/disbursement/batches/{batch['id']}")
    assert status == 200 and "rejected" not in shown
    assert (shown["lines"], shown["accepted"], shown["rejected_count"], shown["report"]) == (
        3, 2, 1, f"/v1/disbursement/batches/{batch['id']}/report?format=csv")


async def test_a_malformed_hash_is_a_400_naming_content_sha256(client):  # noqa: F811
    status, batch = await client.call("alice", "POST", f"{SUBMIT}?period=2026-11&filename=b.csv", BATCH.encode())
    approve = f"/v1/disbursement/batches/{batch['id']}/approve"
    for text in ("00", "x" * 64):
        assert await client.call("bob", "POST", approve, msgspec.json.encode({"content_sha256": text})) == (
            400, {"status": 400, "title": "content_sha256: must be 64 hex digits (the batch's SHA-256 content hash), "
                                          f"got {len(text)} characters"})
    status, approved = await client.call("bob", "POST", approve,
                                         msgspec.json.encode({"content_sha256": batch["content_sha256"].upper()}))
    assert (status, approved["state"], "rejected" in approved) == (200, "approved", False)

