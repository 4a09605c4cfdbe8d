"""Unsigned documents: health, Prometheus metrics after taps, OpenAPI completeness."""

from __future__ import annotations

import msgspec
from aiohttp import web

from engine.api.routes import add_routes


async def test_health(api):
    async with api.session.get(api.base + "/healthz") as response:
        assert response.status == 200
        assert await response.json() == {"status": "ok", "database": True}


async def test_metrics_count_decisions_latency_flushes(api, rider):
    tap = rider.tap("m-1")
    await api.tap(tap)
    await api.tap(msgspec.structs.replace(tap, tap_id="m-2"))
    async with api.session.get(api.base + "/metrics") as response:
        assert response.status == 200
        text = await response.text()
    lines = set(text.splitlines())
    assert 'onecard_tap_decisions_total{decision="approved",reason="approved"} 1.0' in lines
    assert 'onecard_tap_decisions_total{decision="declined",reason="atc_replayed"} 1.0' in lines
    assert "onecard_tap_latency_seconds_count 2.0" in lines
    assert "onecard_tap_flush_size_sum 2.0" in lines
    assert "onecard_ledger_commit_latency_seconds_count 2.0" in lines


async def test_openapi_documents_every_route(api):
    async with api.session.get(api.base + "/openapi.json") as response:
        document = await response.json()
    assert document["openapi"] == "3.1.0"
    app = web.Application()
    add_routes(app)
    for route in app.router.routes():
        operation = document["paths"][route.resource.canonical][route.method.lower()]
        assert operation["operationId"] == route.name
    schemas = document["components"]["schemas"]
    assert {"Tap", "TapAnswer", "TapConflict", "TapBatchAnswer", "Problem"} <= schemas.keys()
    assert "2 arqc_invalid" in document["paths"]["/v1/taps"]["post"]["description"]


def test_openapi_says_where_rejected_lines_are():
    from engine.api.openapi import document

    schemas, paths = document()["components"]["schemas"], document()["paths"]
    assert "rejected" not in schemas["BatchView"]["properties"]
    assert {"rejected_count", "report"} <= set(schemas["BatchView"]["required"])
    assert "rejected" in schemas["SubmittedBatchView"]["required"]
    submit = paths["/v1/disbursement/programmes/{code}/batches"]["post"]["responses"]["201"]
    assert submit["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/SubmittedBatchView"}
    assert "rejected_count" in paths["/v1/disbursement/batches/{batch_id}"]["get"]["description"]
