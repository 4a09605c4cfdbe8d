"""Signed-request nonces shared by every engine process (table ``request_nonces``).

:class:`adapters.signing.Verifier` remembers nonces in its own process only, so with
several worker processes (``onecard serve --workers N``, or two bank API processes) a
signed request replayed to another process passes there. The verified request's nonce is
therefore also inserted here; a second insert of the same ``(api, key_id, nonce)`` is the
replay. Rows older than twice the allowed clock skew cannot be replayed anyway (their
timestamps are refused), so every :data:`PRUNE_EVERY`-th request of a process deletes
them. Plain SQL (no advisory locks), one round trip per request.

Taps do not come here: their nonce is recorded with the tap records the hot path writes
anyway (:mod:`engine.taps.service`).
"""

from __future__ import annotations

import asyncpg

from adapters import signing

PRUNE_EVERY = 1_000
KEPT_S = 2 * signing.CLOCK_SKEW_MS_MAX / 1000
APIS = ("bank", "device")
assert PRUNE_EVERY >= 1 and KEPT_S * 1000 > signing.CLOCK_SKEW_MS_MAX


class NonceStore:
    """The nonces of one signed API (``api``: ``bank`` or ``device``) in PostgreSQL."""

    def __init__(self, pool: asyncpg.Pool, api: str):
        assert api in APIS, api
        self._pool = pool
        self._api = api
        self._requests_seen = 0

    def __repr__(self) -> str:
        return f"NonceStore(api={self._api!r})"

    async def first_use(self, key_id: str, nonce: str) -> bool:
        """Record ``nonce`` of a verified request signed by ``key_id``; ``False`` when any
        engine process recorded it before (a replay).

        Raises
        ------
        asyncpg.PostgresError, OSError
            The database did not answer (the caller refuses the request as transient).
        """
        assert key_id and nonce
        self._requests_seen += 1
        async with self._pool.acquire() as connection:
            if self._requests_seen % PRUNE_EVERY == 0:
                await connection.execute(
                    "DELETE FROM request_nonces WHERE seen_at < now() - make_interval(secs => $1)",
                    KEPT_S)
            return bool(await connection.fetchval(
                """INSERT INTO request_nonces (api, key_id, nonce) VALUES ($1, $2, $3)
                   ON CONFLICT DO NOTHING RETURNING 1""", self._api, key_id, nonce))
