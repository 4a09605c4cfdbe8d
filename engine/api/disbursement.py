"""Department routes of the engine API: disbursement batches (signed, role ``department``).

Handlers decode, call :mod:`engine.disbursement`, encode. The signing device is the user:
its id is the submitter or approver recorded in the batch history, so maker and checker
are two devices (:mod:`engine.disbursement.departments`). A department sees only its own
programmes' batches; anything else is 404.

| route | answer |
| --- | --- |
| ``POST /v1/disbursement/programmes/{code}/batches?period=YYYY-MM&filename=F`` | 201 :class:`SubmittedBatchView` (file in the body: CSV, XLSX or pain.001; ``filename``'s suffix says which) |
| ``GET /v1/disbursement/batches/{id}`` | :class:`BatchView` |
| ``POST /v1/disbursement/batches/{id}/approve`` | :class:`BatchView`; body :class:`ApproveRequest` |
| ``POST /v1/disbursement/batches/{id}/execute`` | :class:`ExecutionView` |
| ``GET /v1/disbursement/batches/{id}/report?format=csv|pain002`` | the CSV result file or pain.002.001.10 |

Errors: 400 bad file, totals or parameter (named; a malformed ``content_sha256`` too); 404
not this department's; 409 state, maker-checker, a content hash that is not the batch's,
the same file again for the period, or insufficient funds (nothing posted).
Uploads are limited by the API's body limit (``engine.api.routes.BODY_BYTES_MAX``): larger
files go through ``onecard batch submit``.
"""

from __future__ import annotations

import datetime as dt
import tempfile
import time
from pathlib import Path

import msgspec
from aiohttp import web

from adapters.batch_file import open_batch_file
from adapters.errors import AdapterError
from engine.api.routes import DEVICE, SERVICES, Services, decode_json, parse_int
from engine.disbursement import departments
from engine.disbursement.errors import InsufficientFundsError, TotalsMismatchError
from engine.disbursement.execution import execute_batch
from engine.disbursement.lines import LineSpool
from engine.disbursement.report import REPORT_FORMATS, write_report
from engine.disbursement.results import LineResult
from engine.disbursement.store import BatchRecord, DisbursementStore
from engine.disbursement.validation import LineOutcome
from engine.errors import UsageError
from engine.period import check_period
from engine.taps.wire import Problem
from ledger.service import Ledger

UPLOAD_NAME_CHARACTERS_MAX = 200
UPLOAD_SUFFIXES = (".csv", ".xlsx", ".xml")
REPORT_PIECE_BYTES = 256 * 1024
_REPORT_TYPES = {"csv": "text/csv; charset=utf-8", "pain002": "application/xml"}
ROUTE_NAMES = ("disbursement_submit", "disbursement_batch", "disbursement_approve", "disbursement_execute",
               "disbursement_report")


class RejectedLine(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A line refused by validation: its number (1 = first data line) and reason code."""

    line: int
    reason: str


class BatchView(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A batch as a department sees it (amounts in fen): ``lines`` in the file, of which
    ``accepted`` (for ``accepted_minor``) and ``rejected_count`` refused by validation;
    each line's status and reason is in the batch's ``report`` (a path of this API)."""

    id: int
    programme: str
    period: str
    state: str
    submitted_by: str
    content_sha256: str
    lines: int
    accepted: int
    accepted_minor: int
    rejected_count: int
    report: str


class SubmittedBatchView(BatchView, frozen=True, forbid_unknown_fields=True):
    """The answer to a submit: the batch, and ``rejected``, every line validation refused
    with its reason code (only here: later, the ``report`` has each line's status)."""

    rejected: list[RejectedLine]


class ApproveRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The content hash the approver reviewed (64 hex digits, either case)."""

    content_sha256: str


class ExecutionView(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """An executed batch: lines posted, their total in fen, pacs.008 messages queued."""

    id: int
    state: str
    lines: int
    amount_minor: int
    messages: int


WIRE_TYPES = (BatchView, SubmittedBatchView, ApproveRequest, ExecutionView)

_encoder = msgspec.json.Encoder()
_approve = msgspec.json.Decoder(ApproveRequest)


def _json(value: object, status: int = 200) -> web.Response:
    return web.Response(body=_encoder.encode(value), status=status, content_type="application/json")


def _view(batch: BatchRecord) -> BatchView:
    return BatchView(**_view_fields(batch))


def _view_fields(batch: BatchRecord) -> dict[str, object]:
    return {"id": batch.id, "programme": batch.programme_code, "period": batch.period, "state": batch.state.value,
            "submitted_by": batch.submitted_by, "content_sha256": batch.content_sha256, "lines": batch.lines_count,
            "accepted": batch.accepted_count, "accepted_minor": batch.accepted_minor,
            "rejected_count": batch.lines_count - batch.accepted_count,
            "report": f"/v1/disbursement/batches/{batch.id}/report?format=csv"}


def _store(request: web.Request) -> DisbursementStore:
    services: Services = request.app[SERVICES]
    if services.disbursement is None:
        raise web.HTTPServiceUnavailable(text="disbursement is not configured")
    return services.disbursement


async def _department(request: web.Request) -> str:
    return await departments.department_of(request.app[SERVICES].pool, request[DEVICE].device_id)


async def _batch_id(request: web.Request) -> int:
    batch_id = parse_int(request.match_info["batch_id"], "batch id", 1, 2**63 - 1)
    await departments.check_batch(request.app[SERVICES].pool, await _department(request), batch_id)
    return batch_id


def _refusals(handler):
    """Map refusals the engine middleware does not know to 400 / 409 problems."""

    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except (UsageError, TotalsMismatchError, AdapterError) as error:
            return _json(Problem(status=400, title=str(error)), 400)
        except InsufficientFundsError as error:
            return _json(Problem(status=409, title=str(error)), 409)

    wrapped.__doc__ = handler.__doc__
    return wrapped


@_refusals
async def post_batch(request: web.Request) -> web.Response:
    """Validate and store an uploaded batch file; the signing user is the submitter."""
    store = _store(request)
    code = request.match_info["code"]
    await departments.check_programme(request.app[SERVICES].pool, await _department(request), code)
    period = check_period(request.query.get("period", ""))
    filename = _upload_name(request.query.get("filename", "batch.csv"))
    body = await request.read()
    rejected: list[RejectedLine] = []

    def collect(outcome: LineOutcome) -> None:
        if outcome.result is not LineResult.ok:
            rejected.append(RejectedLine(outcome.line.line, outcome.result.name))

    # The file keeps the department's name, so that errors about it name their file.
    with tempfile.TemporaryDirectory(prefix="onecard-upload-") as folder:
        upload = Path(folder) / filename
        upload.write_bytes(body)
        spool = LineSpool()
        try:
            programme = await store.programme(code)
            today = dt.datetime.now(dt.timezone.utc).date()
            summary = await store.validate(open_batch_file(upload), programme, period, today, collect, spool)
            batch = await store.submit(code, period, request[DEVICE].device_id, summary, _now_ms(), spool)
        finally:
            spool.close()
    assert len(rejected) == batch.lines_count - batch.accepted_count, "every refused line is listed"
    return _json(SubmittedBatchView(**_view_fields(batch), rejected=rejected), 201)


def _upload_name(text: str) -> str:
    """The uploaded file's own name (no folders), checked: printable, a known suffix."""
    name = Path(text).name
    if not name or len(name) > UPLOAD_NAME_CHARACTERS_MAX or not name.isprintable():
        raise UsageError(f"filename: must be a printable file name of 1 to {UPLOAD_NAME_CHARACTERS_MAX} "
                         "characters")
    if Path(name).suffix.lower() not in UPLOAD_SUFFIXES:
        raise UsageError(f"filename: must end in {', '.join(UPLOAD_SUFFIXES)}")
    return name


@_refusals
async def get_batch(request: web.Request) -> web.Response:
    """A batch of the department."""
    batch_id = await _batch_id(request)
    return _json(_view(await _store(request).batch(batch_id)))


@_refusals
async def post_approve(request: web.Request) -> web.Response:
    """Approve as the signing user, for the content hash reviewed."""
    batch_id = await _batch_id(request)
    approval = decode_json(_approve, await request.read())
    store = _store(request)
    await store.approve(batch_id, request[DEVICE].device_id, approval.content_sha256, _now_ms())
    return _json(_view(await store.batch(batch_id)))


@_refusals
async def post_execute(request: web.Request) -> web.Response:
    """Execute an approved batch (all or nothing; resumes an interrupted execution)."""
    batch_id = await _batch_id(request)
    store = _store(request)
    done = await execute_batch(store, Ledger(store.pool), batch_id, request[DEVICE].device_id, _now_ms())
    return _json(ExecutionView(done.batch_id, "executed", done.lines, done.amount_minor, done.messages))


@_refusals
async def get_report(request: web.Request) -> web.StreamResponse:
    """The batch's result: ``format=csv`` (UTF-8 with BOM) or ``format=pain002``, written
    (and validated) to a temporary file first, then sent from it in pieces."""
    batch_id = await _batch_id(request)
    kind = request.query.get("format", "")
    if kind not in REPORT_FORMATS:
        raise UsageError(f"format: must be one of {', '.join(REPORT_FORMATS)}")
    store = _store(request)
    with tempfile.TemporaryDirectory(prefix="onecard-report-") as folder:
        path = Path(folder) / f"report.{kind}"
        await write_report(store, batch_id, kind, path, dt.datetime.now(dt.timezone.utc))
        response = web.StreamResponse(headers={"Content-Type": _REPORT_TYPES[kind]})
        response.content_length = path.stat().st_size
        await response.prepare(request)
        with open(path, "rb") as stream:
            while piece := stream.read(REPORT_PIECE_BYTES):
                await response.write(piece)
        await response.write_eof()
    return response


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def add_routes(router: web.UrlDispatcher) -> None:
    """Register the department routes (names are in ``engine.api.routes.ROLES``)."""
    router.add_post("/v1/disbursement/programmes/{code}/batches", post_batch, name="disbursement_submit")
    router.add_get("/v1/disbursement/batches/{batch_id}", get_batch, name="disbursement_batch", allow_head=False)
    router.add_post("/v1/disbursement/batches/{batch_id}/approve", post_approve, name="disbursement_approve")
    router.add_post("/v1/disbursement/batches/{batch_id}/execute", post_execute, name="disbursement_execute")
    router.add_get("/v1/disbursement/batches/{batch_id}/report", get_report, name="disbursement_report",
                   allow_head=False)
