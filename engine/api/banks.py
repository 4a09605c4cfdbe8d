"""The bank-facing settlement API (aiohttp): mutual TLS plus signed requests, per bank.

Served on its own TLS listener (it needs a client certificate, the tap API does not):
:func:`create_bank_app` builds the application, :func:`register_routes` mounts it beside
the engine's main app (a TLS site started and stopped with it, plus the outbox dispatcher
and the cycle-close schedule).

Who is calling: the subject common name of the client certificate (issued by the engine's
CA, :mod:`engine.settlement.pki`) is the bank code; every request must also be signed
(:mod:`adapters.signing`: timestamp, nonce, HMAC) with that bank's key id, and a replayed
nonce is refused. A bank sees only its own positions, instructions, collections and
payments; another bank's cycle data is simply not there for it (404).

| route | answer |
| --- | --- |
| ``GET /v1/cycles`` | JSON: cycles with this bank's position |
| ``GET /v1/cycles/{id}`` | JSON: one cycle with this bank's position |
| ``GET /v1/cycles/{id}/instructions`` | pacs.008.001.08 settlement instruction, or 204 (net 0) |
| ``GET /v1/cycles/{id}/collections`` | JSON: fare collection requests (card account, fares) |
| ``POST /v1/cycles/{id}/confirm`` | JSON: the cycle after this bank's confirmation |
| ``GET /v1/payments?after=MSGID`` | the next payout pacs.008 for a ``pull`` bank, or 204 |
| ``POST /v1/pacs002`` | JSON: statuses applied (pacs.002.001.10) |
| ``POST /v1/pacs004`` | JSON: returns applied (pacs.004.001.09/10) |
| ``POST /v1/camt053`` | JSON: reconciliation of the statement (camt.053.001.08) |

Every XML message is validated against its XSD on the way in (and the pacs.008 again on
the way out); a bad one gets 400 ``{"error", "element", "line"}`` naming the element, and
changes nothing. A repeated MsgId with the same bytes gets the first answer again; with
other bytes, 409. 401: signature refused; 403: certificate missing or not the signer.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
from dataclasses import dataclass, field

import asyncpg
import msgspec
from aiohttp import web

from adapters import reconcile, signing
from adapters.errors import MessageError, SignatureError
from adapters.iso20022 import camt053, pacs002, pacs004, schema
from engine.api.nonces import NonceStore
from engine.errors import ConflictError, NotFoundError
from engine.settlement import outbox, pki
from engine.settlement.cycles import BankPosition, Cycle, Cycles
from engine.settlement.errors import InboundConflictError
from engine.settlement.schedule import CloseSchedule
from ledger.service import Ledger

XML = "application/xml"


class PositionView(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    debit_minor: int
    credit_minor: int
    net_minor: int
    confirmed: bool


class CycleView(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    cycle_id: int
    state: str
    opened_at: str
    closed_at: str | None
    settled_at: str | None
    position: PositionView | None


class CycleList(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    cycles: list[CycleView]


class CollectionView(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    account: str
    amount_minor: int
    fares: int


class CollectionList(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    cycle_id: int
    collections: list[CollectionView]


class AppliedView(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    message_id: str
    accepted: list[str]
    rejected: list[str]
    returned: list[str]
    unchanged: list[str]
    unknown: list[str]
    conflicts: list[str]


class ReconcileItemView(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    outcome: str
    end_to_end_id: str
    fields: list[str]


class ReconcileView(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    message_id: str
    clean: bool
    matched: int
    mismatched: list[ReconcileItemView]
    unmatched_engine: list[ReconcileItemView]
    unmatched_statement: list[ReconcileItemView]
    pending: list[ReconcileItemView]


class Problem(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    error: str
    element: str = ""
    line: int | None = None


@dataclass
class BankServices:
    """What the bank API calls: the database, ledger, cycles and the request verifier."""

    pool: asyncpg.Pool
    ledger: Ledger
    cycles: Cycles
    verifier: signing.Verifier = field(repr=False)
    nonces: NonceStore = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.nonces = NonceStore(self.pool, "bank")


BANK_SERVICES = web.AppKey("bank_services", BankServices)
BANK_CODE = web.RequestKey("bank_code", str)
_encoder = msgspec.json.Encoder()


def _json(value, status: int = 200) -> web.Response:
    return web.Response(body=_encoder.encode(value), status=status, content_type="application/json")


def _problem(status: int, error: str, element: str = "", line: int | None = None) -> web.Response:
    return _json(Problem(error, element, line), status)


@web.middleware
async def bank_auth(request: web.Request, handler):
    """Identify the bank by its client certificate and its signature; map errors to statuses."""
    common_name = pki.peer_common_name(request.transport.get_extra_info("peercert") if request.transport else None)
    if not common_name:
        return _problem(403, "a client certificate issued by the engine's CA is required")
    body = await request.read()
    try:
        key_id = request.app[BANK_SERVICES].verifier.verify(request.method, request.path_qs, request.headers, body)
    except SignatureError as error:
        return _problem(401, str(error))
    if key_id != common_name:
        return _problem(403, f"request signed as {key_id!r} but the certificate is {common_name!r}")
    # The verifier remembers nonces per process; the table refuses a replay sent to another
    # engine process.
    if not await request.app[BANK_SERVICES].nonces.first_use(key_id, request.headers[signing.HEADER_NONCE]):
        return _problem(401, f"{signing.HEADER_NONCE}: replayed request")
    request[BANK_CODE] = common_name
    try:
        return await handler(request)
    except InboundConflictError as error:
        return _problem(409, str(error), "MsgId")
    except MessageError as error:
        return _problem(400, error.reason, error.element, error.line)
    except NotFoundError as error:
        return _problem(404, str(error))
    except ConflictError as error:
        return _problem(409, str(error))


def create_bank_app(services: BankServices) -> web.Application:
    """The bank API application (routes in the module docstring)."""
    app = web.Application(middlewares=[bank_auth], client_max_size=schema.MESSAGE_BYTES_MAX)
    app[BANK_SERVICES] = services
    app.add_routes([
        web.get("/v1/cycles", _list_cycles),
        web.get("/v1/cycles/{cycle_id:[0-9]+}", _show_cycle),
        web.get("/v1/cycles/{cycle_id:[0-9]+}/instructions", _instructions),
        web.get("/v1/cycles/{cycle_id:[0-9]+}/collections", _collections),
        web.post("/v1/cycles/{cycle_id:[0-9]+}/confirm", _confirm),
        web.get("/v1/payments", _next_payment),
        web.post("/v1/pacs002", _post_pacs002),
        web.post("/v1/pacs004", _post_pacs004),
        web.post("/v1/camt053", _post_camt053),
    ])
    return app


@dataclass(frozen=True)
class BankApiSettings:
    """Where the bank API listens, and what runs beside it.

    ``port`` 0 picks a free port; ``dispatch`` runs the outbox dispatcher for ``push`` and
    ``file`` banks; ``schedule`` closes cycles on it (``None``: only on demand).
    """

    host: str = "127.0.0.1"
    port: int = 8443
    dispatch: bool = True
    schedule: CloseSchedule | None = None


def register_routes(app: web.Application, pool: asyncpg.Pool, pki_store: pki.Pki,
                    settings: BankApiSettings = BankApiSettings()) -> None:
    """Mount the bank API beside ``app``: when ``app`` starts, a mutual-TLS site serving
    :func:`create_bank_app` starts on ``settings.host:port``, with the outbox dispatcher and
    the close schedule as background tasks; all stop with ``app``.

    The CA and the server certificate must exist (``onecard banks issue-cert`` creates them).
    """
    async def lifecycle(_: web.Application):
        runner, tasks = await start_bank_api(pool, pki_store, settings)
        yield
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await runner.cleanup()

    app.cleanup_ctx.append(lifecycle)


async def start_bank_api(pool: asyncpg.Pool, pki_store: pki.Pki, settings: BankApiSettings
                         ) -> tuple[web.AppRunner, list[asyncio.Task]]:
    """Start the bank API's TLS site and background tasks; return the runner (its
    ``addresses`` give the bound port) and the tasks. The caller cleans both up."""
    ledger = Ledger(pool)
    cycles = Cycles(pool, ledger)
    services = BankServices(pool, ledger, cycles, signing.Verifier(pki_store.signing_keys()))
    runner = web.AppRunner(create_bank_app(services), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, settings.host, settings.port, ssl_context=pki_store.server_context()).start()
    tasks = []
    if settings.dispatch:
        tasks.append(asyncio.ensure_future(_dispatch_forever(pool, ledger, pki_store)))
    if settings.schedule is not None:
        tasks.append(asyncio.ensure_future(_close_on_schedule(cycles, settings.schedule)))
    return runner, tasks


async def _dispatch_forever(pool: asyncpg.Pool, ledger: Ledger, pki_store: pki.Pki) -> None:
    async with contextlib.AsyncExitStack() as stack:
        transports = await outbox.transports_for_banks(pool, pki_store)
        for transport in transports.values():
            stack.push_async_callback(transport.close)
        await outbox.Dispatcher(pool, ledger, transports).run_forever()


async def _close_on_schedule(cycles: Cycles, schedule: CloseSchedule) -> None:
    while True:
        now = dt.datetime.now(dt.timezone.utc)
        due = schedule.next_close_utc(now)
        await asyncio.sleep((due - now).total_seconds())
        try:
            await cycles.close_and_issue(actor="schedule", scheduled_at=due)
        except (OSError, asyncpg.PostgresError):
            continue  # the database is away at the scheduled time: the next close takes both days


# -- handlers: decode, call the domain, encode -----------------------------------------

def _cycle_id(request: web.Request) -> int:
    return int(request.match_info["cycle_id"])


def _view(cycle: Cycle, position: BankPosition | None) -> CycleView:
    return CycleView(
        cycle.cycle_id, cycle.state, cycle.opened_at.isoformat(),
        cycle.closed_at.isoformat() if cycle.closed_at else None,
        cycle.settled_at.isoformat() if cycle.settled_at else None,
        PositionView(position.debit_minor, position.credit_minor, position.net_minor, position.confirmed)
        if position else None)


async def _list_cycles(request: web.Request) -> web.Response:
    cycles = request.app[BANK_SERVICES].cycles
    views = []
    for cycle in await cycles.list():
        positions = await cycles.positions(cycle.cycle_id, request[BANK_CODE])
        views.append(_view(cycle, positions[0] if positions else None))
    return _json(CycleList(views))


async def _show_cycle(request: web.Request) -> web.Response:
    cycles = request.app[BANK_SERVICES].cycles
    cycle = await cycles.show(_cycle_id(request))
    positions = await cycles.positions(cycle.cycle_id, request[BANK_CODE])
    return _json(_view(cycle, positions[0] if positions else None))


async def _instructions(request: web.Request) -> web.Response:
    services = request.app[BANK_SERVICES]
    cycle = await services.cycles.show(_cycle_id(request))
    async with services.pool.acquire() as connection:
        xml = await connection.fetchval(
            "SELECT xml FROM settlement_outbox WHERE kind = 'settlement' AND cycle_id = $1 AND bank_code = $2",
            cycle.cycle_id, request[BANK_CODE])
    if xml is None:
        return web.Response(status=204)
    schema.parse_validated(xml, "pacs.008.001.08")
    return web.Response(body=xml, content_type=XML)


async def _collections(request: web.Request) -> web.Response:
    cycle_id = _cycle_id(request)
    collections = await request.app[BANK_SERVICES].cycles.collections(cycle_id, request[BANK_CODE])
    return _json(CollectionList(cycle_id, [CollectionView(f"{c.account_id:032X}", c.amount_minor, c.fares)
                                           for c in collections]))


async def _confirm(request: web.Request) -> web.Response:
    cycles = request.app[BANK_SERVICES].cycles
    cycle = await cycles.confirm(_cycle_id(request), request[BANK_CODE])
    positions = await cycles.positions(cycle.cycle_id, request[BANK_CODE])
    return _json(_view(cycle, positions[0]))


async def _next_payment(request: web.Request) -> web.Response:
    services = request.app[BANK_SERVICES]
    after = request.query.get("after", "")
    async with services.pool.acquire() as connection:
        row = await connection.fetchrow(
            "SELECT o.message_id, o.xml FROM settlement_outbox o JOIN settlement_banks b USING (bank_code)"
            " WHERE o.kind = 'payout' AND o.bank_code = $1 AND b.delivery = 'pull' AND o.message_id > $2"
            " ORDER BY o.message_id LIMIT 1", request[BANK_CODE], after)
        if row is None:
            return web.Response(status=204)
        await connection.execute(
            "UPDATE settlement_outbox SET state = 'delivered', delivered_at = coalesce(delivered_at, now()),"
            " attempts = attempts + 1 WHERE message_id = $1", row["message_id"])
    schema.parse_validated(row["xml"], "pacs.008.001.08")
    return web.Response(body=row["xml"], content_type=XML, headers={"X-Onecard-Message-Id": row["message_id"]})


async def _post_pacs002(request: web.Request) -> web.Response:
    body = await request.read()
    report = pacs002.parse(body)

    async def apply(connection, services):
        applied = await outbox.apply_statuses(connection, services.ledger, request[BANK_CODE], report.transactions)
        return _encoder.encode(_applied(report.message_id, applied))

    return await _once(request, report.message_id, "pacs.002", body, apply)


async def _post_pacs004(request: web.Request) -> web.Response:
    body = await request.read()
    message = pacs004.parse(body)

    async def apply(connection, services):
        applied = await outbox.apply_returns(connection, services.ledger, request[BANK_CODE], message.returns)
        return _encoder.encode(_applied(message.message_id, applied))

    return await _once(request, message.message_id, "pacs.004", body, apply)


async def _post_camt053(request: web.Request) -> web.Response:
    body = await request.read()
    statement = camt053.parse(body)

    async def apply(connection, _services):
        expected = await outbox.expected_statement(connection, request[BANK_CODE])
        return _encoder.encode(reconcile_view(statement.message_id, reconcile.reconcile(expected, statement.entries)))

    return await _once(request, statement.message_id, "camt.053", body, apply)


def reconcile_view(message_id: str, report: reconcile.Report) -> ReconcileView:
    """The JSON shape of a reconciliation report (also printed by ``onecard reconcile --json``)."""
    def items(found):
        return [ReconcileItemView(item.outcome.name, item.end_to_end_id, list(item.fields)) for item in found]

    return ReconcileView(message_id, report.clean, len(report.matched), items(report.mismatched),
                         items(report.unmatched_engine), items(report.unmatched_statement), items(report.pending))


def _applied(message_id: str, applied: outbox.Applied) -> AppliedView:
    return AppliedView(message_id, list(applied.accepted), list(applied.rejected), list(applied.returned),
                       list(applied.unchanged), list(applied.unknown), list(applied.conflicts))


async def _once(request: web.Request, message_id: str, kind: str, body: bytes, apply) -> web.Response:
    """Apply an inbound message once per (bank, MsgId): a repeat with the same bytes gets
    the stored answer, with other bytes a 409; applying and recording commit together."""
    services = request.app[BANK_SERVICES]
    digest = hashlib.sha256(body).digest()
    async with services.pool.acquire() as connection, connection.transaction():
        inserted = await connection.fetchval(
            "INSERT INTO settlement_inbound (bank_code, message_id, kind, sha256, answer) VALUES ($1, $2, $3, $4, '')"
            " ON CONFLICT DO NOTHING RETURNING 1", request[BANK_CODE], message_id, kind, digest)
        if not inserted:
            row = await connection.fetchrow(
                "SELECT sha256, answer FROM settlement_inbound WHERE bank_code = $1 AND message_id = $2",
                request[BANK_CODE], message_id)
            if row["sha256"] != digest:
                raise InboundConflictError(f"MsgId {message_id} was already used for a different message")
            return web.Response(body=row["answer"], content_type="application/json")
        answer = await apply(connection, services)
        await connection.execute("UPDATE settlement_inbound SET answer = $3 WHERE bank_code = $1 AND message_id = $2",
                                 request[BANK_CODE], message_id, answer)
    return web.Response(body=answer, content_type="application/json")
