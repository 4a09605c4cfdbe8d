"""Unsigned documents: health, Prometheus metrics after taps, OpenAPI completeness."""

from __future__ import annotations

from conftest import make_tap


async def test_health(api):
    async with api.session.get(api.base + "/healthz") as response:
        assert response.status == 200
        assert await response.json() == {"status": "ok", "database": True}


async def test_metrics_count_decisions_latency_flushes_and_alerts(api):
    await api.tap(make_tap("m-1", atc="0001", direction="exit"))
    await api.tap(make_tap("m-2", atc="0001", arqc="FFFFFFFFFFFFFFFF"))
    async with api.session.get(api.base + "/metrics") as response:
        assert response.status == 200
        text = await response.text()
    lines = set(text.splitlines())
    assert 'onecard_tap_decisions_total{decision="approved",reason="approved"} 1.0' in lines
    assert 'onecard_tap_decisions_total{decision="declined",reason="atc_cloned"} 1.0' in lines
    assert 'onecard_alerts_total{kind="cloned_card"} 1.0' in lines
    assert "onecard_tap_latency_seconds_count 2.0" in lines
    assert "onecard_tap_flush_size_sum 2.0" in lines
    assert "onecard_ledger_commit_latency_seconds_count 2.0" in lines


async def test_openapi_documents_every_route(api):
    async with api.session.get(api.base + "/openapi.json") as response:
        document = await response.json()
    assert document["openapi"] == "3.1.0"
    from engine.api.routes import add_routes
    from aiohttp import web

    app = web.Application()
    add_routes(app)
    for route in app.router.routes():
        path = route.resource.canonical
        operation = document["paths"][path][route.method.lower()]
        assert operation["operationId"] == route.name
    schemas = document["components"]["schemas"]
    assert {"TapAnswer", "TapConflict", "StubTap", "Problem"} <= schemas.keys()
    assert "atc_cloned" in document["paths"]["/v1/taps"]["post"]["description"]
