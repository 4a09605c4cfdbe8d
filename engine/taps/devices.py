"""Gate and admin devices: their signing keys, sealed at rest, checked per request.

Each engine process keeps a :class:`adapters.signing.Verifier` filled from
``transit_devices`` and refreshed every ``REFRESH_MS`` so a revocation made through any
process takes effect in all of them within that time. Secrets are sealed by the key
service before they are written and unsealed only into the verifier's memory.

Limit: the verifier remembers nonces per process, so with several worker processes a
replayed request that lands on another worker is not refused by its nonce. For taps
that is harmless (the replay carries the same ``tap_id`` and gets the first answer back,
nothing is charged twice); admin requests are idempotent by their content too.
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass
from typing import Awaitable, Callable, Mapping

import asyncpg

from adapters.signing import Verifier
from engine.errors import ConflictError, NotFoundError

REFRESH_MS = 1000
SECRET_BYTES = 32
DEVICE_ID_LENGTH_MAX = 64

Seal = Callable[[bytes], Awaitable[bytes]]


@dataclass(frozen=True)
class Device:
    device_id: str
    role: str
    operator_account_id: int | None


class DeviceRegistry:
    """Devices allowed to call the API, and the verifier of their signatures.

    ``seal`` / ``unseal`` come from the key service (sealed bytes are opaque here).
    """

    def __init__(self, pool: asyncpg.Pool, *, seal: Seal, unseal: Seal):
        self._pool = pool
        self._seal = seal
        self._unseal = unseal
        self.verifier = Verifier({})
        self._devices: dict[str, Device] = {}
        self._refresher: asyncio.Task | None = None

    def __repr__(self) -> str:
        return f"DeviceRegistry(devices={len(self._devices)})"

    async def add(self, device_id: str, role: str, *, operator_account_id: int | None = None) -> bytes:
        """Register a device; return its new secret (shown once, to provision the device).

        Raises
        ------
        ConflictError
            ``device_id`` exists already (revoked ids are not reused).
        """
        assert role in ("gate", "admin") and (role == "gate") == (operator_account_id is not None)
        if not device_id or len(device_id) > DEVICE_ID_LENGTH_MAX or not device_id.isprintable():
            raise ConflictError(f"device_id: must be 1-{DEVICE_ID_LENGTH_MAX} printable characters")
        secret = secrets.token_bytes(SECRET_BYTES)
        sealed = await self._seal(secret)
        status = await self._pool.execute(
            """INSERT INTO transit_devices (device_id, role, operator_account_id, secret_sealed)
               VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING""",
            device_id, role, operator_account_id, sealed)
        if status.endswith(" 0"):
            raise ConflictError(f"device_id: {device_id!r} exists already")
        await self.refresh()
        return secret

    async def revoke(self, device_id: str) -> None:
        """Refuse every later request signed by ``device_id``.

        Raises
        ------
        NotFoundError
            No such device.
        """
        status = await self._pool.execute(
            "UPDATE transit_devices SET revoked_at = coalesce(revoked_at, now()) WHERE device_id = $1",
            device_id)
        if status == "UPDATE 0":
            raise NotFoundError(f"device_id: no device {device_id!r}")
        await self.refresh()

    async def refresh(self) -> None:
        """Load devices added or revoked since the last refresh into the verifier."""
        rows = await self._pool.fetch(
            """SELECT device_id, role, operator_account_id, secret_sealed, revoked_at IS NOT NULL
                      AS revoked FROM transit_devices""")
        for row in rows:
            device_id = row["device_id"]
            if row["revoked"]:
                if self._devices.pop(device_id, None) is not None:
                    self.verifier.revoke(device_id)
                continue
            if device_id in self._devices:
                continue
            self.verifier.add_key(device_id, await self._unseal(bytes(row["secret_sealed"])))
            account = row["operator_account_id"]
            self._devices[device_id] = Device(device_id, row["role"],
                                              None if account is None else int(account))

    def device(self, device_id: str) -> Device:
        """The registered, unrevoked device ``device_id`` (KeyError otherwise)."""
        return self._devices[device_id]

    def verify(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> Device:
        """The device that signed this request (see :meth:`Verifier.verify`).

        Raises
        ------
        adapters.errors.SignatureError
            Unknown, revoked, stale, replayed or wrong signature.
        """
        return self._devices[self.verifier.verify(method, path, headers, body)]

    def start(self) -> None:
        """Start refreshing in the background every ``REFRESH_MS``."""
        async def loop() -> None:
            while True:
                await asyncio.sleep(REFRESH_MS / 1000)
                try:
                    await self.refresh()
                except (OSError, asyncpg.PostgresError):
                    continue  # the database is away: keep the keys we have, try again

        self._refresher = asyncio.ensure_future(loop())

    async def stop(self) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
            await asyncio.gather(self._refresher, return_exceptions=True)
