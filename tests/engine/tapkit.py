"""Helpers of the tap API tests: emulated riders and a signed client (imported by the
tests and by ``conftest.py``; a plain module so its name never clashes with another
directory's ``conftest``)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import msgspec
from stdnum import luhn

from adapters.signing import sign
from terminal.card import Card
from terminal.reader import read_tap

IMK = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")
SCHEME = "pboc-3des"
T0 = datetime(2026, 11, 30, 10, 0, tzinfo=timezone(timedelta(hours=8)))  # off-peak Monday


def pan(serial: int) -> str:
    """A Luhn-valid PAN of the test issuer (prefix 621700)."""
    body = f"621700{serial:012d}"
    return body + luhn.calc_check_digit(body)


class Rider:
    """A cardholder with an emulated card; ``tap`` reads the card at a gate."""

    def __init__(self, serial: int):
        self.pan = pan(serial)
        self.card = Card.issue(SCHEME, IMK, self.pan, "01")
        self.token = ""

    def tap(self, tap_id, direction="entry", station="weijianian", minutes=0, gate="gate-1"):
        return read_tap(self.card.transmit, amount=0, tap_id=tap_id, gate_id=gate,
                        station=station, direction=direction,
                        local_time=T0 + timedelta(minutes=minutes))


class Api:
    """A signed client for the running engine."""

    def __init__(self, session, base, secrets, services, pool, *, operator_account_id,
                 bank_account_id):
        self.session, self.base, self.secrets = session, base, secrets
        self.services, self.pool = services, pool
        self.operator_account_id, self.bank_account_id = operator_account_id, bank_account_id

    async def call(self, method, path, body=b"", *, device="gate-1", headers=None):
        signed = sign(self.secrets[device], method, path, body, key_id=device)
        signed |= headers or {}
        async with self.session.request(method, self.base + path, data=body,
                                        headers=signed) as response:
            data = await response.read()
            is_json = response.content_type == "application/json"
            return response.status, (msgspec.json.decode(data) if is_json and data else data)

    async def tap(self, tap, **kwargs):
        return await self.call("POST", "/v1/taps", msgspec.json.encode(tap), **kwargs)

    async def balance(self, account_id):
        async with self.pool.acquire() as connection:
            row = await connection.fetchrow(
                "SELECT debits_posted, credits_posted FROM ledger_accounts WHERE id = $1",
                account_id.to_bytes(16, "big"))
        return row["debits_posted"], row["credits_posted"]
