"""The OpenAPI 3.1 document of the engine's HTTP API, served at ``GET /openapi.json``.

Schemas are generated from the msgspec wire Structs (so they cannot drift from the
code); paths are listed here, and a test checks that every registered route appears.
"""

from __future__ import annotations

import functools
from typing import Any

import msgspec

from adapters import signing
from engine.taps.reasons import PRIORITY, Reason
from engine.taps.service import CLOCK_SKEW_MS_DEFAULT
from terminal.gate import DenyList as GateDenyList
from terminal.tap import Tap
from engine.taps.wire import (AlertList, DenyEntries, Health, JourneyList, Problem, TapAnswer,
                              TapBatchAnswer, TapConflict)

REF = "#/components/schemas/{name}"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": REF.format(name=name)}


def _content(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _answer(description: str, schema_name: str) -> dict[str, Any]:
    return {"description": description, "content": _content(_ref(schema_name))}


_PROBLEMS = {
    "400": _answer("malformed request; the title names the field", "Problem"),
    "401": _answer("signature refused: unknown, revoked, stale, replayed or wrong", "Problem"),
    "403": _answer("the device's role may not call this route", "Problem"),
    "413": _answer("body larger than the API's limit", "Problem"),
    "503": _answer("transient; retry (taps: with the same tap_id)", "Problem"),
}


def _signed(operation: dict[str, Any]) -> dict[str, Any]:
    """The operation signed by a device, with the common problem answers it does not
    describe itself."""
    problems = {status: answer for status, answer in _PROBLEMS.items()
                if status not in operation["responses"]}
    return operation | {"security": [{"deviceSignature": []}],
                        "responses": operation["responses"] | problems}


def _path_parameter(name: str, description: str, pattern: str | None = None) -> dict[str, Any]:
    schema = {"type": "string"} | ({"pattern": pattern} if pattern else {})
    return {"name": name, "in": "path", "required": True, "description": description,
            "schema": schema}


# The key service's PAN tokens (engine.api.routes.CARD_TOKEN_PATTERN); any case is accepted.
_CARD_TOKEN = _path_parameter("card_token", "the card's PAN token (32 hex digits); a token of a "
                              "card not enrolled yet may be listed", "^[0-9a-fA-F]{32}$")


_DENY_PARAMETERS = [
    _CARD_TOKEN,
    {"name": "reason", "in": "path", "required": True,
     "schema": {"enum": ["lost", "closed", "unpaid_debt"]}},
]


_BATCH_ID = [{"name": "batch_id", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 1}}]
_DEPARTMENT_PROBLEMS = {
    "404": _answer("no such batch or programme of the signing department", "Problem"),
    "409": _answer("state, maker-checker, a content hash that is not the batch's, the same file again for the "
                   "period, or insufficient funds", "Problem"),
}


def _department(operation: dict[str, Any]) -> dict[str, Any]:
    signed = _signed(operation)
    return signed | {"responses": signed["responses"] | _DEPARTMENT_PROBLEMS}


def _disbursement_paths() -> dict[str, Any]:
    """Department routes (:mod:`engine.api.disbursement`); the signing device is the user."""
    batch = _answer("the batch", "BatchView")
    return {
        "/v1/disbursement/programmes/{code}/batches": {"post": _department({
            "operationId": "disbursement_submit",
            "summary": "Upload a batch file (CSV, XLSX or pain.001.001.09) of the department's programme; "
                       "every bad line is listed with its reason",
            "parameters": [
                _path_parameter("code", "programme code"),
                {"name": "period", "in": "query", "required": True,
                 "schema": {"type": "string", "pattern": "^[0-9]{4}-(0[1-9]|1[0-2])$"}},
                {"name": "filename", "in": "query", "description": "suffix .csv, .xlsx or .xml picks the format",
                 "schema": {"type": "string"}}],
            "requestBody": {"required": True, "content": {
                "text/csv": {}, "application/xml": {},
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": {}}},
            "responses": {"201": _answer("validated and stored; approve next. `rejected` lists every line "
                                         "validation refused, with its reason code (only in this answer)",
                                         "SubmittedBatchView")}})},
        "/v1/disbursement/batches/{batch_id}": {"get": _department({
            "operationId": "disbursement_batch", "summary": "A batch of the department",
            "description": "Totals only: `rejected_count` lines were refused by validation; each line's "
                           "status and reason is in the CSV result file at `report`.",
            "parameters": _BATCH_ID, "responses": {"200": batch}})},
        "/v1/disbursement/batches/{batch_id}/approve": {"post": _department({
            "operationId": "disbursement_approve",
            "summary": "Approve (another user than the submitter) the content hash reviewed",
            "parameters": _BATCH_ID,
            "description": "`content_sha256` is 64 hex digits, either case (anything else is a 400 naming "
                           "it); a hash that is not the batch's is a 409.",
            "requestBody": {"required": True, "content": _content(_ref("ApproveRequest"))},
            "responses": {"200": batch}})},
        "/v1/disbursement/batches/{batch_id}/execute": {"post": _department({
            "operationId": "disbursement_execute",
            "summary": "Pay an approved batch from the programme's funding account (all or nothing) "
                       "and queue each bank's pacs.008",
            "parameters": _BATCH_ID, "responses": {"200": _answer("executed", "ExecutionView")}})},
        "/v1/disbursement/batches/{batch_id}/report": {"get": _department({
            "operationId": "disbursement_report",
            "summary": "Outcome per input line: CSV result file or pain.002.001.10",
            "parameters": [*_BATCH_ID, {"name": "format", "in": "query", "required": True,
                                        "schema": {"enum": ["csv", "pain002"]}}],
            "responses": {"200": {"description": "the report",
                                  "content": {"text/csv": {}, "application/xml": {}}}}})},
    }


@functools.cache
def document() -> dict[str, Any]:
    """The whole document (the tap request is :class:`terminal.tap.Tap`)."""
    from engine.api import disbursement

    _, components = msgspec.json.schema_components(
        [Tap, GateDenyList, TapAnswer, TapConflict, TapBatchAnswer, Problem, DenyEntries, JourneyList,
         AlertList, Health, *disbursement.WIRE_TYPES], ref_template=REF)
    reasons = ", ".join(f"{reason.value} {reason.name}" for reason in (Reason.approved, *PRIORITY))
    tap_name = Tap.__name__
    paths = {
        "/v1/taps": {"post": _signed({
            "operationId": "taps",
            "summary": "Decide one tap, or an offline upload of taps (idempotent per gate "
                       "and tap_id)",
            "description": (
                "A tap is identified by its gate_id and tap_id together; only that gate "
                "(the signing device) may send it. A tap dated more than the configured "
                f"clock skew (default {CLOCK_SKEW_MS_DEFAULT} ms) after the server clock is declined "
                "tap_in_future and changes nothing; older taps (offline uploads) are taken "
                "at any age, but one of a transit day before the card's current one is "
                "declined fare_unavailable. Reason codes in priority order: " + reasons),
            "requestBody": {"required": True, "content": _content({"oneOf": [
                _ref(tap_name), {"type": "array", "items": _ref(tap_name)}]})},
            "responses": {
                "200": {"description": "the answer (object for one tap, results for a list)",
                        "content": _content({"oneOf": [_ref("TapAnswer"),
                                                       _ref("TapBatchAnswer")]})},
                "403": _answer("the device is not a gate, or a tap names another gate than "
                               "the signing device (an upload is refused whole; nothing "
                               "recorded); the title names the field", "Problem"),
                "409": _answer("same gate and tap_id, different body; the field is named",
                               "TapConflict"),
            }})},
        "/v1/deny-list": {"get": _signed({
            "operationId": "deny_list",
            "summary": "Cards gates must refuse, as salted SHA-256 of their PANs",
            "responses": {"200": _answer("version, salt and hashes", "DenyList")}})},
        "/v1/deny-list/entries": {"get": _signed({
            "operationId": "deny_entries", "summary": "Deny-list entries by card token (admin)",
            "responses": {"200": _answer("every entry", "DenyEntries")}})},
        "/v1/deny-list/{card_token}/{reason}": {
            "put": _signed({"operationId": "deny_card", "summary": "List a card (admin)",
                            "parameters": _DENY_PARAMETERS,
                            "responses": {"201": {"description": "listed"},
                                          "200": {"description": "already listed"}}}),
            "delete": _signed({"operationId": "allow_card", "summary": "Unlist a card (admin)",
                               "parameters": _DENY_PARAMETERS,
                               "responses": {"204": {"description": "unlisted"},
                                             "404": _answer("not listed", "Problem")}}),
        },
        "/v1/cards/{card_token}/journeys": {"get": _signed({
            "operationId": "journeys",
            "summary": "A card's journeys and recorded taps, newest first (admin)",
            "parameters": [_CARD_TOKEN],
            "responses": {"200": _answer("taps", "JourneyList")}})},
        "/v1/alerts": {"get": _signed({
            "operationId": "alerts", "summary": "Stored abnormal-usage alerts (admin)",
            "parameters": [
                {"name": "after_id", "in": "query", "schema": {"type": "integer", "minimum": 0}},
                {"name": "limit", "in": "query",
                 "schema": {"type": "integer", "minimum": 1, "maximum": 1000}}],
            "responses": {"200": _answer("alerts, oldest first", "AlertList")}})},
        **_disbursement_paths(),
        "/healthz": {"get": {"operationId": "health", "summary": "Liveness and database check",
                             "responses": {"200": _answer("healthy", "Health")}}},
        "/metrics": {"get": {"operationId": "metrics", "summary": "Prometheus exposition",
                             "responses": {"200": {"description": "text format 0.0.4",
                                                   "content": {"text/plain": {}}}}}},
        "/openapi.json": {"get": {"operationId": "openapi", "summary": "This document",
                                  "responses": {"200": {"description": "OpenAPI 3.1"}}}},
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "onecard engine", "version": "0.1.0"},
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"deviceSignature": {
                "type": "apiKey", "in": "header", "name": signing.HEADER_SIGNATURE,
                "description": "HMAC-SHA256 per adapters.signing: headers "
                               f"{signing.HEADER_KEY}, {signing.HEADER_TIMESTAMP}, "
                               f"{signing.HEADER_NONCE}, {signing.HEADER_SIGNATURE}"}},
        },
    }
