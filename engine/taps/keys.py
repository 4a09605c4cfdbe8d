"""The tap path's use of the key service: PAN tokens and batched ARQC verification.

Which issuer master key verifies a card is found by the longest PAN prefix registered in
``transit_issuers``; the key's scheme (``hsm.scheme.SCHEMES``) comes from the key
service's metadata and says which bytes the card MACed
(:func:`terminal.tap.transaction_data`). Both tables are small and kept in memory,
refreshed by the application every few seconds.
"""

from __future__ import annotations

from typing import Sequence

import asyncpg

from engine.taps import store
from engine.taps.reasons import Reason
from engine.taps.store import Issuer
from hsm.cache import LruCache
from hsm.scheme import scheme_named
from hsm.service import BATCH_SIZE_MAX, ArqcRequest, ArqcResult, KeyService
from terminal.tap import Tap, transaction_data

ARQC_FAILURES = {
    ArqcResult.verified: None,
    ArqcResult.key_not_found: Reason.card_unknown,
    ArqcResult.input_invalid: Reason.tap_invalid,
    ArqcResult.arqc_mismatch: Reason.arqc_invalid,
}
assert set(ARQC_FAILURES) == set(ArqcResult)
# PAN tokens kept per process: a token is an HMAC through the key service, and a card
# taps many times a day. A PAN's token never changes (``pan-token`` keys do not rotate).
CARD_TOKENS_CACHED_MAX = 200_000


class IssuerKeys:
    """:class:`engine.taps.service.TapKeys` over a :class:`hsm.service.KeyService`."""

    def __init__(self, pool: asyncpg.Pool, key_service: KeyService):
        self._pool = pool
        self._keys = key_service
        self._issuers: list[Issuer] = []
        self._schemes: dict[str, str] = {}
        self._tokens: LruCache[str, str] = LruCache(CARD_TOKENS_CACHED_MAX)

    def __repr__(self) -> str:
        return f"IssuerKeys(issuers={len(self._issuers)})"

    async def refresh(self) -> None:
        """Reload the issuer table and the schemes of the key service's ``imk-ac`` keys."""
        async with self._pool.acquire() as connection:
            self._issuers = await store.issuers(connection)
        self._schemes = {info.label: info.scheme for info in await self._keys.list_keys()
                         if info.key_type == "imk-ac" and info.scheme}

    def issuer_of(self, pan: str) -> Issuer | None:
        """The issuer with the longest prefix of ``pan``, or ``None``."""
        for issuer in self._issuers:  # a loop, not next(generator): this runs per tap
            if pan.startswith(issuer.pan_prefix):
                return issuer
        return None

    async def card_tokens(self, taps: Sequence[Tap]) -> list[str]:
        """The PAN token of each tap (:meth:`KeyService.tokenize_pan`, 32 hex digits;
        remembered per PAN, the last ``CARD_TOKENS_CACHED_MAX`` used)."""
        tokens = []
        for tap in taps:
            token = self._tokens.get(tap.pan)
            if token is None:
                token = await self._keys.tokenize_pan(tap.pan)
                self._tokens.put(tap.pan, token)
            tokens.append(token)
        return tokens

    async def arqc_checks(self, taps: Sequence[Tap]) -> list[Reason | None]:
        """``None`` per tap whose ARQC verified, else the reason; one batch call per
        ``BATCH_SIZE_MAX`` taps (EMV 4.4 Book 2, A1.2-A1.4)."""
        checks: list[Reason | None] = [Reason.card_unknown] * len(taps)
        requests: list[ArqcRequest] = []
        positions: list[int] = []
        for position, tap in enumerate(taps):
            issuer = self.issuer_of(tap.pan)
            scheme_name = self._schemes.get(issuer.key_label) if issuer else None
            if scheme_name is None:
                continue
            scheme = scheme_named(scheme_name)
            requests.append(ArqcRequest(
                key_label=issuer.key_label, pan=tap.pan, psn=tap.psn,
                atc=tap.atc.to_bytes(2, "big"), un=bytes.fromhex(tap.un),
                transaction_data=transaction_data(tap, scheme.session_key_derivation),
                arqc=bytes.fromhex(tap.arqc)))
            positions.append(position)
        for start in range(0, len(requests), BATCH_SIZE_MAX):
            chunk = requests[start:start + BATCH_SIZE_MAX]
            results = await self._keys.verify_arqc_batch(chunk)
            assert len(results) == len(chunk)
            for position, result in zip(positions[start:start + BATCH_SIZE_MAX], results):
                checks[position] = ARQC_FAILURES[result]
        return checks
