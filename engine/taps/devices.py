"""Gate and admin devices: their signing keys, sealed at rest, checked per request.

Each engine process keeps a :class:`adapters.signing.Verifier` filled from
``transit_devices`` and refreshed every ``REFRESH_MS`` (by the application) so a revocation made through any
process takes effect in all of them within that time. Secrets are sealed by the key
service (:meth:`hsm.service.KeyService.encrypt_field`) before they are written and
unsealed only into the verifier's memory.

The verifier remembers nonces per process, so with several worker processes a replayed
request that lands on another worker passes it. Tap requests are still refused there:
each tap record keeps its request's nonce, and the flush that looks the ``tap_id`` up
refuses the same nonce again (:mod:`engine.taps.service`). Limit: other signed requests
(deny list, journeys, alerts: admin and gate reads, and deny-list changes, idempotent by
their content) replayed to another worker within the clock skew are not refused.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Mapping, Protocol

import asyncpg

from adapters.signing import Verifier
from engine.errors import ConflictError, NotFoundError

REFRESH_MS = 1000
SECRET_BYTES = 32
DEVICE_ID_LENGTH_MAX = 64



class FieldSealer(Protocol):
    """The key service's field encryption (:class:`hsm.service.KeyService`)."""

    async def encrypt_field(self, plaintext: bytes, associated_data: bytes) -> bytes: ...
    async def decrypt_field(self, sealed: bytes, associated_data: bytes) -> bytes: ...


def _bound_to(device_id: str) -> bytes:
    # The sealed secret is bound to its row: moved to another device id it does not open.
    return b"transit_devices.secret_sealed:" + device_id.encode()


@dataclass(frozen=True)
class Device:
    device_id: str
    role: str
    operator_account_id: int | None
    network_id: str | None


class DeviceRegistry:
    """Devices allowed to call the API, and the verifier of their signatures.

    Secrets are sealed with the key service's field key (AES-256-GCM), bound to the
    device id.
    """

    def __init__(self, pool: asyncpg.Pool, *, sealer: FieldSealer):
        self._pool = pool
        self._sealer = sealer
        self.verifier = Verifier({})
        self._devices: dict[str, Device] = {}

    def __repr__(self) -> str:
        return f"DeviceRegistry(devices={len(self._devices)})"

    async def add(self, device_id: str, role: str, *, operator_account_id: int | None = None,
                  network_id: str | None = None) -> bytes:
        """Register a device; return its new secret (shown once, to provision the device).

        A gate names the operator account its fares go to and its fare network; an admin
        and a department user (disbursement, :mod:`engine.disbursement.departments`) neither.

        Raises
        ------
        ConflictError
            ``device_id`` exists already (revoked ids are not reused).
        """
        assert role in ("gate", "admin", "department")
        if (role == "gate") != (operator_account_id is not None and network_id is not None):
            raise ConflictError("a gate needs an operator account and a network; other devices neither")
        if not device_id or len(device_id) > DEVICE_ID_LENGTH_MAX or not device_id.isprintable():
            raise ConflictError(f"device_id: must be 1-{DEVICE_ID_LENGTH_MAX} printable characters")
        secret = secrets.token_bytes(SECRET_BYTES)
        sealed = await self._sealer.encrypt_field(secret, _bound_to(device_id))
        status = await self._pool.execute(
            """INSERT INTO transit_devices
                   (device_id, role, operator_account_id, network_id, secret_sealed)
               VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING""",
            device_id, role, operator_account_id, network_id, sealed)
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
            """SELECT device_id, role, operator_account_id, network_id, secret_sealed,
                      revoked_at IS NOT NULL AS revoked FROM transit_devices""")
        for row in rows:
            device_id = row["device_id"]
            if row["revoked"]:
                if self._devices.pop(device_id, None) is not None:
                    self.verifier.revoke(device_id)
                continue
            if device_id in self._devices:
                continue
            secret = await self._sealer.decrypt_field(bytes(row["secret_sealed"]),
                                                      _bound_to(device_id))
            self.verifier.add_key(device_id, secret)
            account = row["operator_account_id"]
            self._devices[device_id] = Device(device_id, row["role"],
                                              None if account is None else int(account),
                                              row["network_id"])

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
