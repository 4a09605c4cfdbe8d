"""A simulated partner bank: a real aiohttp HTTP service with its own accounts, for tests,
benchmarks and the demo (``onecard simbank``).

It accepts pacs.008.001.08 instructions, credits its cardholders' accounts and answers
with a pacs.002.001.10, keeps a statement of the account the engine holds with it
(camt.053.001.08) and returns payments on request (pacs.004.001.09). Faults are injected
at configurable rates from a seeded random generator, so a test run is reproducible.

Idempotency, the property the engine relies on: a pacs.008 whose MsgId was seen with the
same bytes gets the same pacs.002 bytes again and changes nothing; the same MsgId with
different bytes is refused (409); a transaction whose EndToEndId was already credited is
never credited again, whatever message carries it.

Routes (all answers to bad input are JSON ``{"error", "element", "line"}``)

| route | answer |
| --- | --- |
| ``POST /v1/pacs008`` | 200 pacs.002; 400 invalid message; 409 MsgId reused; 401 bad signature |
| ``GET /v1/pacs002/{msg_id}`` | the pacs.002 sent for that pacs.008, or 404 |
| ``GET /v1/camt053?date=YYYY-MM-DD`` | statement of that booking date (default: today UTC) |
| ``GET /v1/pacs004?after=MSGID`` | the next return message after ``after``, or 204 |
| ``POST /v1/admin/returns`` | JSON ``{"end_to_end_id", "reason_code"}``: return a payment |
| ``POST /v1/admin/accounts/{number}/close`` | close an account (later credits: AC04) |
| ``GET /v1/admin/accounts/{number}`` | JSON ``{"number", "status", "balance_minor"}`` |

Accounts live in memory for the life of the process.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import random
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field

import msgspec
from aiohttp import web

from adapters import signing
from adapters.errors import (AdapterError, ConfigurationError, MessageError, MessageIdConflictError,
                             SignatureError)
from adapters.iso20022 import camt053, ids, pacs002, pacs004, pacs008, reasons, schema

HANG_S_DEFAULT = 30.0


@dataclass(frozen=True)
class Faults:
    """Fault injection rates (fractions 0..1 of requests or transactions) and delays.

    ``reject_rate`` rejects a transaction with ``reject_reason`` (before crediting; a code
    of :data:`adapters.iso20022.reasons.STATUS_REASONS`);
    ``error_rate`` answers 503 before doing anything; ``lost_ack_rate`` applies the
    message and then answers 502 (the acknowledgement is lost); ``timeout_rate`` applies
    the message and answers only after ``hang_s`` (the client times out first);
    ``duplicate_rate`` repeats a transaction's status in the pacs.002;
    ``out_of_order_rate`` follows a final status with a stale interim ``ACSP`` and shuffles
    the statuses; ``delay_ms`` delays every answer.
    """

    reject_rate: float = 0.0
    reject_reason: str = "AC04"
    error_rate: float = 0.0
    lost_ack_rate: float = 0.0
    timeout_rate: float = 0.0
    duplicate_rate: float = 0.0
    out_of_order_rate: float = 0.0
    delay_ms: int = 0
    hang_s: float = HANG_S_DEFAULT
    seed: int = 0

    def __post_init__(self):
        for name in ("reject_rate", "error_rate", "lost_ack_rate", "timeout_rate",
                     "duplicate_rate", "out_of_order_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ConfigurationError(f"{name} must be between 0 and 1, not {value}")
        if self.delay_ms < 0 or self.hang_s < 0:
            raise ConfigurationError("delay_ms and hang_s must not be negative")
        if self.reject_reason not in reasons.STATUS_REASONS:
            raise ConfigurationError(f"reject_reason {self.reject_reason!r} is not in the ISO "
                                     f"reason table ({', '.join(sorted(reasons.STATUS_REASONS))})")


@dataclass
class Account:
    """A cardholder account at the simulated bank."""

    number: str
    balance_minor: int = 0
    closed: bool = False


@dataclass(frozen=True)
class Credit:
    """A credited transaction, by EndToEndId."""

    message_id: str
    transfer: pacs008.CreditTransfer
    booked_on: dt.date


class ErrorBody(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The JSON body of every 4xx/5xx answer."""

    error: str
    element: str = ""
    line: int | None = None


class ReturnRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``POST /v1/admin/returns``."""

    end_to_end_id: str
    reason_code: str = "AC04"


class AccountBody(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``GET /v1/admin/accounts/{number}``."""

    number: str
    status: str
    balance_minor: int


@dataclass
class SimBank:
    """One simulated bank (``bank_code``), usable in-process or over HTTP.

    ``keys`` maps key ids to HMAC secrets; when given, every request must be signed
    (:mod:`adapters.signing`). ``auto_open`` opens an unknown creditor account on its first
    credit; otherwise unknown accounts are rejected with ``AC01``.
    """

    bank_code: str
    faults: Faults = field(default_factory=Faults)
    keys: dict[str, bytes] | None = None
    auto_open: bool = True
    clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.timezone.utc)
    accounts: dict[str, Account] = field(default_factory=dict)

    def __post_init__(self):
        self._rng = random.Random(self.faults.seed)
        self._verifier = signing.Verifier(self.keys) if self.keys else None
        self._messages: dict[str, tuple[bytes, bytes]] = {}
        self._credits: dict[str, Credit] = {}
        self._entries: list[camt053.StatementEntry] = []
        self._returns: list[tuple[str, bytes]] = []
        self._returned: set[str] = set()
        self._runner: web.AppRunner | None = None
        self.url = ""

    def __repr__(self) -> str:
        return f"SimBank({self.bank_code!r}, accounts={len(self.accounts)})"

    @property
    def settlement_account(self) -> str:
        """The account the engine holds with this bank (the statement's account)."""
        return f"ONECARD-{self.bank_code}"

    def open_account(self, number: str, balance_minor: int = 0) -> Account:
        """Open (or return) account ``number``."""
        return self.accounts.setdefault(number, Account(number, balance_minor))

    def close_account(self, number: str) -> None:
        """Close account ``number`` (opening it first if unknown)."""
        self.open_account(number).closed = True

    def credited(self, end_to_end_id: str) -> Credit | None:
        """The credit booked for ``end_to_end_id``, if any."""
        return self._credits.get(end_to_end_id)

    def receive_pacs008(self, data: bytes) -> bytes:
        """Apply a pacs.008 and return its pacs.002 (idempotent; see module docstring).

        Raises
        ------
        MessageIdConflictError
            The MsgId was already used with other bytes.
        MessageError
            Invalid message (names element and line).
        """
        message = pacs008.parse(data)
        digest = hashlib.sha256(data).digest()
        seen = self._messages.get(message.message_id)
        if seen is not None:
            if seen[0] != digest:
                raise MessageIdConflictError("MsgId was already used for a different message",
                                             element="MsgId")
            return seen[1]
        statuses = [self._apply(message.message_id, transfer) for transfer in message.transfers]
        report = pacs002.build(ids.new_message_id("P002"), self.clock(), message.message_id,
                               self._inject_status_faults(statuses))
        self._messages[message.message_id] = (digest, report)
        return report

    def status_report(self, message_id: str) -> bytes | None:
        """The pacs.002 already sent for pacs.008 ``message_id``, if any."""
        seen = self._messages.get(message_id)
        return seen[1] if seen else None

    def return_payment(self, end_to_end_id: str, reason_code: str = "AC04") -> str:
        """Return a credited payment: debit the cardholder, book a ``CRDT`` on the
        statement and queue a pacs.004.001.09; return its MsgId.

        Raises
        ------
        MessageError
            Unknown or already returned EndToEndId (``element`` ``OrgnlEndToEndId``).
        """
        credit = self._credits.get(end_to_end_id)
        if credit is None or end_to_end_id in self._returned:
            raise MessageError("not a credited, unreturned payment",
                               element="OrgnlEndToEndId")
        transfer = credit.transfer
        now = self.clock()
        self.accounts[transfer.creditor_account].balance_minor -= transfer.amount_minor
        self._returned.add(end_to_end_id)
        self._entries.append(camt053.StatementEntry(
            end_to_end_id, transfer.amount_minor, transfer.currency, camt053.CREDIT,
            now.date(), now.date(), f"RTR-{len(self._entries) + 1}",
            domain_family_subfamily="PMNT/ICDT/RRTN"))
        message_id = ids.new_message_id("P004")
        xml = pacs004.build(message_id, now, now.date(), [pacs004.PaymentReturn(
            return_id=f"R{len(self._returns) + 1}", original_message_id=credit.message_id,
            original_end_to_end_id=end_to_end_id, amount_minor=transfer.amount_minor,
            currency=transfer.currency, reason_code=reason_code)])
        self._returns.append((message_id, xml))
        return message_id

    def next_return(self, after: str = "") -> bytes | None:
        """The first pacs.004 queued after MsgId ``after`` ("" for the first), or None."""
        index = 0
        if after:
            positions = [number for number, (message_id, _) in enumerate(self._returns)
                         if message_id == after]
            if not positions:
                raise MessageError(f"unknown return message {after!r}", element="after")
            index = positions[0] + 1
        return self._returns[index][1] if index < len(self._returns) else None

    def statement(self, booked_on: dt.date) -> bytes:
        """camt.053 of the settlement account for one booking date (same entries, same
        MsgId: fetching twice gives the same message)."""
        entries = tuple(entry for entry in self._entries if entry.booking_date == booked_on)
        before = sum(_signed(entry) for entry in self._entries
                     if entry.booking_date < booked_on)
        after = before + sum(_signed(entry) for entry in entries)
        number = int(booked_on.strftime("%Y%m%d")) * 10**12 + len(entries)
        currency = entries[0].currency if entries else "CNY"
        return camt053.build(camt053.Statement(
            message_id=ids.message_id("C053", number),
            created_at=self.clock(),
            statement_id=f"{self.bank_code}-{booked_on.isoformat()}-{len(entries)}",
            account=self.settlement_account,
            balances=(camt053.Balance("OPBD", before, currency, booked_on),
                      camt053.Balance("CLBD", after, currency, booked_on)),
            entries=entries,
        ))

    # -- HTTP --------------------------------------------------------------------------

    def app(self) -> web.Application:
        """The aiohttp application (routes in the module docstring)."""
        app = web.Application(client_max_size=schema.MESSAGE_BYTES_MAX)
        app.add_routes([
            web.post("/v1/pacs008", self._post_pacs008),
            web.get("/v1/pacs002/{message_id}", self._get_pacs002),
            web.get("/v1/camt053", self._get_camt053),
            web.get("/v1/pacs004", self._get_pacs004),
            web.post("/v1/admin/returns", self._post_return),
            web.post("/v1/admin/accounts/{number}/close", self._post_close),
            web.get("/v1/admin/accounts/{number}", self._get_account),
        ])
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0,
                    ssl_context: ssl.SSLContext | None = None) -> str:
        """Serve on ``host:port`` (port 0: a free port); return the base URL.

        With ``ssl_context`` the bank speaks HTTPS (set ``verify_mode`` to
        ``CERT_REQUIRED`` with the engine's CA loaded for mutual TLS).
        """
        assert self._runner is None, "already started"
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port, ssl_context=ssl_context)
        await site.start()
        bound_port = self._runner.addresses[0][1]
        scheme = "https" if ssl_context else "http"
        self.url = f"{scheme}://{host}:{bound_port}"
        return self.url

    async def stop(self) -> None:
        """Stop serving (pending hung answers are cancelled)."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _post_pacs008(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        refused = self._check_signature(request, body)
        if refused is not None:
            return refused
        if self._rng.random() < self.faults.error_rate:
            return _error(503, "injected fault: service unavailable")
        try:
            report = self.receive_pacs008(body)
        except MessageIdConflictError as error:
            return _error(409, error.reason, error.element)
        except MessageError as error:
            return _error(400, error.reason, error.element, error.line)
        if self._rng.random() < self.faults.lost_ack_rate:
            return _error(502, "injected fault: acknowledgement lost")
        if self._rng.random() < self.faults.timeout_rate:
            await asyncio.sleep(self.faults.hang_s)
        await asyncio.sleep(self.faults.delay_ms / 1000)
        return web.Response(body=report, content_type="application/xml")

    async def _get_pacs002(self, request: web.Request) -> web.StreamResponse:
        refused = self._check_signature(request, b"")
        if refused is not None:
            return refused
        report = self.status_report(request.match_info["message_id"])
        if report is None:
            return _error(404, "no such pacs.008 message", "OrgnlMsgId")
        return web.Response(body=report, content_type="application/xml")

    async def _get_camt053(self, request: web.Request) -> web.StreamResponse:
        refused = self._check_signature(request, b"")
        if refused is not None:
            return refused
        text = request.query.get("date", "")
        try:
            booked_on = dt.date.fromisoformat(text) if text else self.clock().date()
        except ValueError:
            return _error(400, f"date {text!r} is not YYYY-MM-DD", "date")
        return web.Response(body=self.statement(booked_on), content_type="application/xml")

    async def _get_pacs004(self, request: web.Request) -> web.StreamResponse:
        refused = self._check_signature(request, b"")
        if refused is not None:
            return refused
        try:
            message = self.next_return(request.query.get("after", ""))
        except MessageError as error:
            return _error(404, error.reason, error.element)
        if message is None:
            return web.Response(status=204)
        return web.Response(body=message, content_type="application/xml")

    async def _post_return(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        refused = self._check_signature(request, body)
        if refused is not None:
            return refused
        try:
            wanted = msgspec.json.decode(body, type=ReturnRequest)
            message_id = self.return_payment(wanted.end_to_end_id, wanted.reason_code)
        except msgspec.ValidationError as error:
            return _error(400, str(error), "body")
        except msgspec.DecodeError as error:
            return _error(400, str(error), "body")
        except AdapterError as error:
            return _error(400, str(error), getattr(error, "element", ""))
        return web.json_response({"message_id": message_id}, status=201)

    async def _post_close(self, request: web.Request) -> web.StreamResponse:
        refused = self._check_signature(request, await request.read())
        if refused is not None:
            return refused
        self.close_account(request.match_info["number"])
        return web.json_response({"closed": request.match_info["number"]})

    async def _get_account(self, request: web.Request) -> web.StreamResponse:
        refused = self._check_signature(request, b"")
        if refused is not None:
            return refused
        account = self.accounts.get(request.match_info["number"])
        if account is None:
            return _error(404, "no such account", "number")
        body = AccountBody(account.number, "closed" if account.closed else "open",
                           account.balance_minor)
        return web.Response(body=msgspec.json.encode(body), content_type="application/json")

    def _check_signature(self, request: web.Request, body: bytes) -> web.Response | None:
        if self._verifier is None:
            return None
        try:
            self._verifier.verify(request.method, request.path_qs, request.headers, body)
        except SignatureError as error:
            return _error(401, str(error))
        return None

    # -- the bank's own bookkeeping ----------------------------------------------------

    def _apply(self, message_id: str, transfer: pacs008.CreditTransfer
               ) -> pacs002.TransactionStatus:
        credit = self._credits.get(transfer.end_to_end_id)
        if credit is not None:
            return pacs002.TransactionStatus(transfer.end_to_end_id, "ACSC",
                                             additional_information="already credited")
        account = self.accounts.get(transfer.creditor_account)
        if account is None and self.auto_open:
            account = self.open_account(transfer.creditor_account)
        if account is None:
            return pacs002.TransactionStatus(transfer.end_to_end_id, "RJCT", "AC01")
        if account.closed:
            return pacs002.TransactionStatus(transfer.end_to_end_id, "RJCT", "AC04")
        if self._rng.random() < self.faults.reject_rate:
            return pacs002.TransactionStatus(transfer.end_to_end_id, "RJCT",
                                             self.faults.reject_reason)
        today = self.clock().date()
        account.balance_minor += transfer.amount_minor
        self._credits[transfer.end_to_end_id] = Credit(message_id, transfer, today)
        self._entries.append(camt053.StatementEntry(
            transfer.end_to_end_id, transfer.amount_minor, transfer.currency, camt053.DEBIT,
            today, today, f"BK-{len(self._entries) + 1}"))
        return pacs002.TransactionStatus(transfer.end_to_end_id, "ACSC")

    def _inject_status_faults(self, statuses: list[pacs002.TransactionStatus]
                              ) -> list[pacs002.TransactionStatus]:
        result: list[pacs002.TransactionStatus] = []
        shuffle = False
        for status in statuses:
            result.append(status)
            if self._rng.random() < self.faults.duplicate_rate:
                result.append(status)
            if self._rng.random() < self.faults.out_of_order_rate:
                result.append(pacs002.TransactionStatus(status.original_end_to_end_id, "ACSP"))
                shuffle = True
        if shuffle:
            self._rng.shuffle(result)
        return result


def _signed(entry: camt053.StatementEntry) -> int:
    return entry.amount_minor if entry.credit_debit == camt053.CREDIT else -entry.amount_minor


def _error(status: int, reason: str, element: str = "", line: int | None = None) -> web.Response:
    return web.Response(status=status, body=msgspec.json.encode(ErrorBody(reason, element, line)),
                        content_type="application/json")
