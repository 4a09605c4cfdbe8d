"""Delivering messages to a bank: push over HTTP(S), or drop a file for an SFTP gateway.

Push (:class:`HttpDelivery`): every request is signed (:mod:`adapters.signing`, a fresh
nonce per attempt) and carries the message's MsgId in ``X-Onecard-Message-Id``; the
receiver is idempotent on it, so a retry after a timeout or a lost acknowledgement never
has a second effect. Transient failures (connection errors, timeouts, HTTP 408, 429 and
5xx) are retried with exponential backoff and full jitter (AWS Architecture Blog,
"Exponential Backoff And Jitter"): attempt ``n`` waits a uniform random time in
``[0, min(backoff_max_s, backoff_initial_s * 2**n)]``. Other 4xx answers are final.

File drop (:class:`FileDrop`): the bytes are written to a hidden temporary name in the
target directory, flushed and fsynced, then linked to the final name (an atomic rename
that refuses to replace an existing file) and the directory is fsynced, so a gateway
polling the directory sees a whole file or nothing. Dropping the same name with the same
bytes again is a no-op; with different bytes it is refused.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from adapters import signing
from adapters.errors import (DeliveryError, DeliveryRefusedError, FileDropConflictError,
                             FileDropNameError)

HEADER_MESSAGE_ID = "X-Onecard-Message-Id"
CONTENT_TYPE_XML = "application/xml"
RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
ERROR_BODY_SHOWN_MAX = 300
_FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How hard to try: ``attempts_max`` tries in all, ``timeout_s`` per attempt."""

    attempts_max: int = 8
    timeout_s: float = 10.0
    backoff_initial_s: float = 0.2
    backoff_max_s: float = 30.0

    def __post_init__(self):
        assert self.attempts_max >= 1 and self.timeout_s > 0
        assert 0 < self.backoff_initial_s <= self.backoff_max_s

    def delay_s(self, attempt: int, rng: random.Random) -> float:
        """Seconds to wait after failed attempt ``attempt`` (0-based), with full jitter.

        >>> policy = RetryPolicy(backoff_initial_s=1, backoff_max_s=4)
        >>> [policy.delay_s(n, random.Random(1)) <= 2**n for n in range(3)]
        [True, True, True]
        """
        return rng.uniform(0, min(self.backoff_max_s, self.backoff_initial_s * 2**attempt))


@dataclass(frozen=True, slots=True)
class Response:
    """A delivered message's answer: HTTP status, body, and how many attempts it took."""

    status: int
    body: bytes
    attempts: int


class HttpDelivery:
    """Signed, retried HTTP(S) requests to one bank's base URL.

    ``ssl`` is passed to aiohttp (an ``ssl.SSLContext`` with our client certificate for
    mutual TLS); ``sleep`` and ``rng`` are injectable for tests.
    """

    def __init__(self, base_url: str, *, key_id: str, key: bytes,
                 policy: RetryPolicy = RetryPolicy(), ssl=None,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 rng: random.Random | None = None):
        self._base_url = base_url.rstrip("/")
        self._key_id = key_id
        self._key = key
        self._policy = policy
        self._ssl = ssl
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._session: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:
        return f"HttpDelivery({self._base_url!r}, key_id={self._key_id!r})"

    async def push(self, path: str, message_id: str, xml: bytes) -> Response:
        """POST ``xml`` (message ``message_id``) to ``path``; return the 2xx answer.

        Raises
        ------
        DeliveryRefusedError
            The bank answered a final 4xx (the body's start is in the message).
        DeliveryError
            Still failing after ``policy.attempts_max`` attempts.
        """
        return await self._request("POST", path, xml, {HEADER_MESSAGE_ID: message_id,
                                                       "Content-Type": CONTENT_TYPE_XML})

    async def fetch(self, path: str) -> Response:
        """GET ``path`` (e.g. ``/v1/camt053?date=2026-12-01``), retried like :meth:`push`;
        a 204 (nothing to fetch) is returned as is."""
        return await self._request("GET", path, b"", {})

    async def close(self) -> None:
        """Close the connection pool."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _request(self, method: str, path: str, body: bytes,
                       headers: dict[str, str]) -> Response:
        session = self._session_open()
        last_failure = ""
        for attempt in range(self._policy.attempts_max):
            signed = signing.sign(self._key, method, path, body, key_id=self._key_id)
            try:
                async with session.request(method, self._base_url + path, data=body or None,
                                           headers={**headers, **signed}, ssl=self._ssl) as reply:
                    content = await reply.read()
                    if reply.status < 300:
                        return Response(reply.status, content, attempt + 1)
                    last_failure = f"HTTP {reply.status}"
                    if reply.status not in RETRYABLE_STATUSES:
                        text = content[:ERROR_BODY_SHOWN_MAX].decode("utf-8", "replace")
                        raise DeliveryRefusedError(
                            f"{method} {path}: refused with HTTP {reply.status}: {text}")
            except (aiohttp.ClientError, asyncio.TimeoutError) as error:
                last_failure = error.__class__.__name__
            if attempt + 1 < self._policy.attempts_max:
                await self._sleep(self._policy.delay_s(attempt, self._rng))
        raise DeliveryError(f"{method} {path}: gave up after {self._policy.attempts_max} "
                            f"attempts (last: {last_failure})")

    def _session_open(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self._policy.timeout_s))
        return self._session


class FileDrop:
    """Atomic file drops into ``directory`` (see the module docstring)."""

    def __init__(self, directory: Path | str):
        self.directory = Path(directory)

    def __repr__(self) -> str:
        return f"FileDrop({str(self.directory)!r})"

    def drop(self, name: str, data: bytes) -> Path:
        """Write ``data`` as ``directory/name`` atomically; return the path.

        Raises
        ------
        FileDropNameError
            ``name`` is not a plain file name (``[A-Za-z0-9._-]``, not starting with a dot).
        FileDropConflictError
            ``name`` exists with different content.
        """
        if not _FILE_NAME.match(name):
            raise FileDropNameError(f"file name {name!r}: use [A-Za-z0-9._-], not starting with a dot")
        self.directory.mkdir(parents=True, exist_ok=True)
        final = self.directory / name
        temporary = self.directory / f".{name}.{secrets.token_hex(8)}.tmp"
        with open(temporary, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(temporary, final)
        except FileExistsError:
            if final.read_bytes() != data:
                raise FileDropConflictError(
                    f"{final}: already dropped with different content") from None
        finally:
            temporary.unlink()
        _fsync_directory(self.directory)
        return final


def _fsync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
