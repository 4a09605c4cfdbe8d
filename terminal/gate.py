"""The gate client: sends taps to the engine, queues them while it is unreachable.

``POST /v1/taps`` takes one :class:`terminal.tap.Tap` (answer: one
:class:`engine.taps.wire.TapAnswer`) or a list (answer: a
:class:`engine.taps.wire.TapBatchAnswer`, one result per tap in upload order).
``GET /v1/deny-list`` answers a :class:`DenyList`. Every request is signed with
:mod:`adapters.signing` under the gate's key (key id = gate id). The answer structs are
the engine's own (imported, not copied), so the gate and the engine cannot drift apart.

What happens to a tap:

- the engine answers 2xx: its :class:`~engine.taps.wire.TapAnswer` is returned;
- the engine is unreachable, times out or answers 5xx: the tap is written to the local
  queue (SQLite, ``synchronous=FULL``, so it survives a power cut) and the gate decides
  offline: decline if the card is on the local deny list (reason ``offline_deny_list``),
  else approve (reason ``offline``): an :class:`OfflineDecision`, see :func:`decided_offline`.
  :meth:`GateClient.flush` uploads queued taps later, oldest first, with their original
  ``tap_id``, so the engine charges each exactly once;
- the engine answers 4xx: the request itself is wrong (bad signature, invalid tap);
  :class:`GateError` for a live tap, and a queued tap moves to the ``rejected`` table with
  the engine's message (kept for the operator, never retried, never lost). So does an
  uploaded tap the engine answers with a conflict (its ``tap_id`` was first sent with
  another body) or as unreadable.

Whenever the engine is reachable again, :meth:`GateClient.sync` uploads the queue and
refreshes the local deny list copy, so the next offline period declines the cards listed
meanwhile.

The deny list holds SHA-256 hashes of ``salt || PAN`` (the engine chooses the salt), so a
gate's disk never holds the PANs themselves.
"""

from __future__ import annotations

import hashlib
import sqlite3
import time
import urllib.parse
from pathlib import Path
from typing import Annotated, Literal

import aiohttp
import msgspec

from adapters.signing import sign
from engine.taps.wire import TapAnswer, TapBatchAnswer, TapConflict
from terminal.errors import GateError, GateUnreachableError
from terminal.tap import Tap

TAPS_PATH = "/v1/taps"
DENY_LIST_PATH = "/v1/deny-list"
TAP_TIMEOUT_S = 1.0
DENY_LIST_TIMEOUT_S = 10.0
UPLOAD_BATCH_MAX = 100
DENY_LIST_ENTRIES_MAX = 10_000_000
REASON_OFFLINE = "offline"  # approved by the gate alone, queued for upload
REASON_OFFLINE_DENY_LIST = "offline_deny_list"  # declined by the gate's deny list copy, queued

assert 0 < TAP_TIMEOUT_S <= DENY_LIST_TIMEOUT_S and UPLOAD_BATCH_MAX >= 1


class OfflineDecision(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The gate's own decision while the engine is unreachable (the tap is queued).

    Attributes
    ----------
    tap_id : str
    decision : "approved" | "declined"
        The engine's words, so callers read either kind of decision the same way.
    reason : str
        ``offline`` (approved) or ``offline_deny_list`` (declined by the local copy).
    """

    tap_id: str
    decision: Literal["approved", "declined"]
    reason: Literal["offline", "offline_deny_list"]


TapDecision = TapAnswer | OfflineDecision


class DenyList(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The engine's deny list (``GET /v1/deny-list``).

    Attributes
    ----------
    version : int
        Increases with every change.
    salt : str
        Hex, 16 to 64 bytes.
    cards : list[str]
        Hex SHA-256 of ``salt || PAN`` (ASCII digits) of every denied card; see :func:`card_hash`.
    """

    version: Annotated[int, msgspec.Meta(ge=0)]
    salt: Annotated[str, msgspec.Meta(pattern="^([0-9A-Fa-f]{2}){16,64}$")]
    cards: Annotated[list[Annotated[str, msgspec.Meta(pattern="^[0-9a-f]{64}$")]],
                     msgspec.Meta(max_length=DENY_LIST_ENTRIES_MAX)]


def decided_offline(decision: TapDecision) -> bool:
    """Whether the gate decided alone because the engine was unreachable (tap queued)."""
    return isinstance(decision, OfflineDecision)


def card_hash(salt: bytes, pan: str) -> str:
    """The deny-list entry of ``pan``: lower-case hex SHA-256 of ``salt || pan``.

    >>> card_hash(bytes(16), "6217000010012345677")[:16]
    '9cf5cf07f2ed070c'
    """
    return hashlib.sha256(salt + pan.encode()).hexdigest()


_tap_encoder = msgspec.json.Encoder()
_answer_decoder = msgspec.json.Decoder(TapAnswer)
_batch_answer_decoder = msgspec.json.Decoder(TapBatchAnswer)
_deny_list_decoder = msgspec.json.Decoder(DenyList)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS queue (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    tap_id TEXT NOT NULL UNIQUE,
    body BLOB NOT NULL,
    queued_at_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS rejected (
    tap_id TEXT PRIMARY KEY,
    body BLOB NOT NULL,
    reason TEXT NOT NULL,
    rejected_at_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS deny_list (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    body BLOB NOT NULL
);
"""


class _Unreachable(Exception):
    """The engine could not be reached or failed (5xx): keep the taps for later."""


class GateClient:
    """One gate's connection to the engine, with its durable offline queue.

    Parameters
    ----------
    engine_url : str
        Base URL of the engine, e.g. ``http://127.0.0.1:8080``; :class:`GateError` if it
        is not an http(s) URL with a host.
    gate_id : str
        The gate's id, also its signing key id.
    key : bytes
        The gate's signing secret (never logged or shown in ``repr``).
    queue_path : Path
        The SQLite file of the queue and the deny list copy (created if missing), e.g.
        ``$ONECARD_HOME/gates/<gate_id>.sqlite3``.
    timeout_s : float
        Total time allowed for one tap request.

    Use as ``async with GateClient(...) as gate:``.
    """

    def __init__(self, engine_url: str, gate_id: str, key: bytes, queue_path: Path,
                 *, timeout_s: float = TAP_TIMEOUT_S):
        assert key, "the gate's signing key must not be empty"
        url = urllib.parse.urlsplit(engine_url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise GateError(f"engine URL {engine_url!r}: must be http:// or https:// with a host")
        self._url = engine_url.rstrip("/")
        self.gate_id = gate_id
        self._key = key
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        queue_path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(queue_path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        self._session: aiohttp.ClientSession | None = None
        self._deny_salt, self._denied, self.deny_list_version = self._load_deny_list()

    def __repr__(self) -> str:
        return f"GateClient(gate_id={self.gate_id!r}, engine={self._url!r}, queued={self.queued})"

    async def __aenter__(self) -> "GateClient":
        self._session = aiohttp.ClientSession()
        return self

    async def __aexit__(self, *exc_info) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the HTTP session and the queue file."""
        if self._session is not None:
            await self._session.close()
            self._session = None
        self._db.close()

    @property
    def queued(self) -> int:
        """How many taps wait in the queue."""
        return self._db.execute("SELECT count(*) FROM queue").fetchone()[0]

    def rejected(self) -> list[tuple[str, str]]:
        """(tap_id, engine's message) of queued taps the engine refused, oldest first."""
        return self._db.execute("SELECT tap_id, reason FROM rejected ORDER BY rejected_at_ms").fetchall()

    def is_denied(self, pan: str) -> bool:
        """Whether ``pan`` is on the local copy of the deny list."""
        return card_hash(self._deny_salt, pan) in self._denied if self._deny_salt else False

    async def submit(self, tap: Tap) -> TapDecision:
        """Send one tap; if the engine is unreachable, queue it and decide offline.

        Raises
        ------
        GateError
            The engine refused the request (4xx) or answered something unreadable.
        """
        body = _tap_encoder.encode(tap)
        try:
            status, answer = await self._request("POST", TAPS_PATH, body, self._timeout)
        except _Unreachable:
            self._enqueue(tap.tap_id, body)
            if self.is_denied(tap.pan):
                return OfflineDecision(tap.tap_id, "declined", REASON_OFFLINE_DENY_LIST)
            return OfflineDecision(tap.tap_id, "approved", REASON_OFFLINE)
        if status >= 400:
            raise GateError(f"engine refused tap {tap.tap_id}: {status} {answer[:200].decode(errors='replace')}")
        decision = _decode(_answer_decoder, answer, "tap answer")
        if decision.tap_id != tap.tap_id:
            raise GateError(f"engine answered tap {decision.tap_id!r} for tap {tap.tap_id!r}")
        return decision

    async def flush(self) -> int:
        """Upload queued taps, oldest first, in batches; return how many the engine
        answered (approved or declined; a repeat of a tap it already charged gets that first
        answer, nothing charged twice). Taps it answers with a conflict or as unreadable
        move to :meth:`rejected`. Stops quietly if the engine is unreachable.

        Raises
        ------
        GateError
            The engine answered 2xx with something that is not the results of the batch.
        """
        uploaded = 0
        batch_max = UPLOAD_BATCH_MAX
        while True:
            rows = self._db.execute("SELECT seq, tap_id, body FROM queue ORDER BY seq LIMIT ?",
                                    (batch_max,)).fetchall()
            if not rows:
                return uploaded
            body = b"[" + b",".join(row[2] for row in rows) + b"]"
            try:
                status, answer = await self._request(
                    "POST", TAPS_PATH, body, aiohttp.ClientTimeout(total=DENY_LIST_TIMEOUT_S))
            except _Unreachable:
                return uploaded
            last_seq = rows[-1][0]
            if status >= 400 and len(rows) > 1:
                batch_max = 1  # find the tap the engine refuses: resend this batch one by one
                continue
            if status >= 400:
                self._reject(rows, f"{status} {answer[:500].decode(errors='replace')}")
                batch_max = UPLOAD_BATCH_MAX
                continue
            results = _decode(_batch_answer_decoder, answer, "tap upload answer").results
            if len(results) != len(rows) or any(
                    isinstance(result, (TapAnswer, TapConflict)) and result.tap_id != row[1]
                    for result, row in zip(results, rows)):
                raise GateError("engine answered results for other taps than the batch sent")
            refused = [(row, result.message) for row, result in zip(rows, results)
                       if not isinstance(result, TapAnswer)]
            self._settle(rows, refused)
            uploaded += len(rows) - len(refused)

    async def refresh_deny_list(self) -> int:
        """Fetch the engine's deny list and store it locally; return its version.

        Raises
        ------
        GateUnreachableError
            The engine is unreachable (the old copy stays in use).
        GateError
            The engine refused the request (the old copy stays in use).
        """
        try:
            status, answer = await self._request(
                "GET", DENY_LIST_PATH, b"", aiohttp.ClientTimeout(total=DENY_LIST_TIMEOUT_S))
        except _Unreachable as error:
            raise GateUnreachableError(f"deny list: engine unreachable ({error})") from None
        if status >= 400:
            raise GateError(f"deny list: engine refused: {status} {answer[:200].decode(errors='replace')}")
        deny_list = _decode(_deny_list_decoder, answer, "deny list")
        self._db.execute("INSERT OR REPLACE INTO deny_list (id, body) VALUES (1, ?)", (answer,))
        self._deny_salt = bytes.fromhex(deny_list.salt)
        self._denied = frozenset(deny_list.cards)
        self.deny_list_version = deny_list.version
        return deny_list.version

    async def sync(self) -> int:
        """What a gate does whenever the engine is reachable: upload the queue
        (:meth:`flush`), then refresh the deny list copy (:meth:`refresh_deny_list`) that
        offline decisions use. Return the deny list version now held (-1: none yet).

        Raises
        ------
        GateUnreachableError
            The engine is unreachable (queued taps stay queued, the old copy in use).
        GateError
            As :meth:`flush` and :meth:`refresh_deny_list`.
        """
        await self.flush()
        return await self.refresh_deny_list()

    async def _request(self, method: str, path: str, body: bytes,
                       timeout: aiohttp.ClientTimeout) -> tuple[int, bytes]:
        assert self._session is not None, "use GateClient as an async context manager"
        headers = sign(self._key, method, path, body, key_id=self.gate_id)
        headers["Content-Type"] = "application/json"
        try:
            async with self._session.request(method, self._url + path, data=body,
                                             headers=headers, timeout=timeout) as response:
                answer = await response.read()
        except (aiohttp.ClientError, TimeoutError, OSError) as error:
            raise _Unreachable(error.__class__.__name__) from None
        if response.status >= 500:
            raise _Unreachable(f"HTTP {response.status}")
        return response.status, answer

    def _enqueue(self, tap_id: str, body: bytes) -> None:
        self._db.execute("INSERT OR IGNORE INTO queue (tap_id, body, queued_at_ms) VALUES (?, ?, ?)",
                         (tap_id, body, int(time.time() * 1000)))

    def _reject(self, rows: list[tuple[int, str, bytes]], reason: str) -> None:
        self._settle(rows, [(row, reason) for row in rows])

    def _settle(self, rows: list[tuple[int, str, bytes]],
                refused: list[tuple[tuple[int, str, bytes], str]]) -> None:
        """Take the answered ``rows`` off the queue, keeping the ``refused`` ones (with the
        engine's message) in ``rejected``; one SQLite transaction, so none is lost."""
        now_ms = int(time.time() * 1000)
        with self._db:
            self._db.execute("BEGIN")
            self._db.executemany(
                "INSERT OR REPLACE INTO rejected (tap_id, body, reason, rejected_at_ms) VALUES (?, ?, ?, ?)",
                [(tap_id, body, reason, now_ms) for (_, tap_id, body), reason in refused])
            self._db.execute("DELETE FROM queue WHERE seq <= ?", (rows[-1][0],))

    def _load_deny_list(self) -> tuple[bytes, frozenset[str], int]:
        row = self._db.execute("SELECT body FROM deny_list WHERE id = 1").fetchone()
        if row is None:
            return b"", frozenset(), -1
        deny_list = _deny_list_decoder.decode(row[0])
        return bytes.fromhex(deny_list.salt), frozenset(deny_list.cards), deny_list.version


def _decode(decoder: msgspec.json.Decoder, answer: bytes, what: str):
    try:
        return decoder.decode(answer)
    except msgspec.DecodeError as error:
        raise GateError(f"engine's {what} unreadable: {error}") from None
