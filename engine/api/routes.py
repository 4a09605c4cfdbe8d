"""HTTP handlers: decode the request, call the domain, encode the answer. No business logic.

Every ``/v1/`` route is signed by a registered device (:mod:`adapters.signing`); the
role a route needs is in :data:`ROLES`. A replayed signature is refused by every worker
process: the nonces of taps are recorded with the tap records (:mod:`engine.taps.service`),
those of every other route in the shared nonce table (:mod:`engine.api.nonces`).

Errors are :class:`engine.taps.wire.Problem` documents: 400 malformed (the field is
named), 401 signature refused, 403 role, 404, 409 conflict, 503 transient (retry with the
same ``tap_id``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import asyncpg
import msgspec
from aiohttp import web

from adapters.errors import SignatureError
from adapters.signing import HEADER_NONCE
from engine.api.metrics import Metrics
from engine.api.nonces import NonceStore
from engine.disbursement.store import DisbursementStore
from engine.errors import ConflictError, NotFoundError
from hsm.errors import HsmError
from ledger.errors import ConflictError as LedgerConflictError
from engine.taps import journeys, store
from engine.taps.batcher import QueueFullError
from engine.taps.devices import Device, DeviceRegistry
from engine.taps.keys import IssuerKeys
from engine.taps.service import TapService
from terminal.tap import Tap
from engine.taps.wire import (AlertList, DenyEntries, Health, JourneyList, Problem, TapAnswer,
                              TapBatchAnswer, TapConflict, TapError)

TAPS_PER_UPLOAD_MAX = 10_000
BODY_BYTES_MAX = 8 * 1024 * 1024
DENY_REASONS = ("lost", "closed", "unpaid_debt")

# Which device roles may call each signed route (route name -> roles).
ROLES: dict[str, frozenset[str]] = {
    "taps": frozenset({"gate", "admin"}),
    "deny_list": frozenset({"gate", "admin"}),
    "deny_entries": frozenset({"admin"}),
    "deny_card": frozenset({"admin"}),
    "allow_card": frozenset({"admin"}),
    "journeys": frozenset({"admin"}),
    "alerts": frozenset({"admin"}),
    # Disbursement (engine.api.disbursement): department users only.
    "disbursement_submit": frozenset({"department"}),
    "disbursement_batch": frozenset({"department"}),
    "disbursement_approve": frozenset({"department"}),
    "disbursement_execute": frozenset({"department"}),
    "disbursement_report": frozenset({"department"}),
}

_encoder = msgspec.json.Encoder()
_raw_list = msgspec.json.Decoder(list[msgspec.Raw])
_tap = msgspec.json.Decoder(Tap)


@dataclass
class Services:
    """What the handlers call; built by :func:`engine.app.open_services` or by tests."""

    pool: asyncpg.Pool
    devices: DeviceRegistry
    issuer_keys: IssuerKeys
    taps: TapService
    metrics: Metrics
    # Disbursement batches for departments (None: those routes answer 503).
    disbursement: DisbursementStore | None = None
    nonces: NonceStore = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.nonces = NonceStore(self.pool, "device")


SERVICES = web.AppKey("services", Services)
DEVICE = web.RequestKey("device", Device)


def _json(value: Any, status: int = 200) -> web.Response:
    return web.Response(body=_encoder.encode(value), status=status,
                        content_type="application/json")


def _problem(status: int, title: str) -> web.Response:
    return _json(Problem(status=status, title=title), status)


@web.middleware
async def errors_and_auth(request: web.Request, handler):
    """Check the device signature of ``/v1/`` routes, then map domain errors to statuses."""
    try:
        if request.path.startswith("/v1/"):
            body = await request.read()
            services = request.app[SERVICES]
            device = services.devices.verify(request.method, request.path_qs, request.headers,
                                             body)
            if request.match_info.route.name != "taps" and not await services.nonces.first_use(
                    device.device_id, request.headers[HEADER_NONCE]):
                raise SignatureError(f"{HEADER_NONCE}: replayed request")
            # No entry: no such route or method; the handler answers 404 or 405.
            roles = ROLES.get(request.match_info.route.name, frozenset({device.role}))
            if device.role not in roles:
                return _problem(403, f"device role {device.role!r} may not call this route")
            request[DEVICE] = device
        return await handler(request)
    except SignatureError as error:
        return _problem(401, str(error))
    except msgspec.ValidationError as error:
        return _problem(400, f"invalid request: {error}")
    except msgspec.DecodeError as error:
        return _problem(400, f"malformed JSON: {error}")
    except NotFoundError as error:
        return _problem(404, str(error))
    except ConflictError as error:
        return _problem(409, str(error))
    except (QueueFullError, asyncpg.PostgresError, OSError, LedgerConflictError,
            HsmError) as error:
        # Transient: nothing was recorded (the flush's transaction rolled back).
        return _problem(503, f"temporarily unavailable ({error.__class__.__name__}); retry")


async def post_taps(request: web.Request) -> web.Response:
    """One tap (object) or an offline upload (array); see :class:`TapAnswer`."""
    services = request.app[SERVICES]
    body = await request.read()
    device = request[DEVICE]
    nonce = request.headers[HEADER_NONCE]  # verified by the middleware: recorded with the taps
    if body.lstrip()[:1] != b"[":
        tap = _tap.decode(body)
        answer = await services.taps.submit(device, tap, nonce=nonce)
        return _json(answer, 409 if isinstance(answer, TapConflict) else 200)
    raws = _raw_list.decode(body)
    if len(raws) > TAPS_PER_UPLOAD_MAX:
        return _problem(400, f"taps: at most {TAPS_PER_UPLOAD_MAX} per upload, got {len(raws)}")
    results: list[TapAnswer | TapConflict | TapError | None] = [None] * len(raws)
    indexes, taps = [], []
    for index, raw in enumerate(raws):
        try:
            taps.append(_tap.decode(raw))
            indexes.append(index)
        except msgspec.ValidationError as error:
            results[index] = TapError(index=index, message=str(error))
    for index, answer in zip(indexes, await services.taps.submit_many(device, taps, nonce=nonce)):
        results[index] = answer
    return _json(TapBatchAnswer(results=results))


async def get_deny_list(request: web.Request) -> web.Response:
    async with request.app[SERVICES].pool.acquire() as connection:
        return _json(await store.gate_deny_list(connection))


async def get_deny_entries(request: web.Request) -> web.Response:
    async with request.app[SERVICES].pool.acquire() as connection:
        return _json(DenyEntries(entries=await store.deny_entries(connection)))


def _deny_target(request: web.Request) -> tuple[str, str]:
    reason = request.match_info["reason"]
    if reason not in DENY_REASONS:
        raise NotFoundError(f"reason: must be one of {', '.join(DENY_REASONS)}")
    return request.match_info["card_token"], reason


async def put_deny(request: web.Request) -> web.Response:
    card_token, reason = _deny_target(request)
    async with request.app[SERVICES].pool.acquire() as connection:
        created = await store.deny(connection, card_token, reason)
    return _json({"card_token": card_token, "reason": reason}, 201 if created else 200)


async def delete_deny(request: web.Request) -> web.Response:
    card_token, reason = _deny_target(request)
    async with request.app[SERVICES].pool.acquire() as connection:
        if not await store.allow(connection, card_token, reason):
            raise NotFoundError(f"card_token: not listed for {reason}")
    return web.Response(status=204)


async def get_journeys(request: web.Request) -> web.Response:
    card_token = request.match_info["card_token"]
    async with request.app[SERVICES].pool.acquire() as connection:
        taps = await store.card_taps(connection, card_token)
    return _json(JourneyList(card_token=card_token, journeys=journeys.pair(taps),
                             taps=taps[::-1]))


async def get_alerts(request: web.Request) -> web.Response:
    after_id = _int_query(request, "after_id", 0, 0, 2**63 - 1)
    limit = _int_query(request, "limit", store.ALERTS_LISTED_MAX, 1, store.ALERTS_LISTED_MAX)
    async with request.app[SERVICES].pool.acquire() as connection:
        listed = await store.alerts(connection, after_id=after_id, limit=limit)
    return _json(AlertList(alerts=listed))


def _int_query(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    text = request.query.get(name)
    if text is None:
        return default
    if not text.isdigit() or not low <= int(text) <= high:
        raise msgspec.ValidationError(f"{name}: must be an integer from {low} to {high}")
    return int(text)


async def get_health(request: web.Request) -> web.Response:
    async with request.app[SERVICES].pool.acquire() as connection:
        database = await connection.fetchval("SELECT true")
    return _json(Health(status="ok", database=bool(database)))


async def get_metrics(request: web.Request) -> web.Response:
    return web.Response(body=request.app[SERVICES].metrics.exposition(),
                        headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})


async def get_openapi(request: web.Request) -> web.Response:
    from engine.api.openapi import document

    return _json(document())


def add_routes(app: web.Application) -> None:
    """Register every route (names match :data:`ROLES` and the OpenAPI operation ids)."""
    router = app.router
    router.add_post("/v1/taps", post_taps, name="taps")
    router.add_get("/v1/deny-list", get_deny_list, name="deny_list", allow_head=False)
    router.add_get("/v1/deny-list/entries", get_deny_entries, name="deny_entries",
                   allow_head=False)
    router.add_put("/v1/deny-list/{card_token}/{reason}", put_deny, name="deny_card")
    router.add_delete("/v1/deny-list/{card_token}/{reason}", delete_deny, name="allow_card")
    router.add_get("/v1/cards/{card_token}/journeys", get_journeys, name="journeys",
                   allow_head=False)
    router.add_get("/v1/alerts", get_alerts, name="alerts", allow_head=False)
    router.add_get("/healthz", get_health, name="health", allow_head=False)
    router.add_get("/metrics", get_metrics, name="metrics", allow_head=False)
    router.add_get("/openapi.json", get_openapi, name="openapi", allow_head=False)
    # Imported here: the department handlers import this module's keys and helpers.
    from engine.api import disbursement

    disbursement.add_routes(router)
