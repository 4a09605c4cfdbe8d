"""IssuerKeys: PAN tokens are asked of the key service once per PAN, then remembered."""

from __future__ import annotations

from types import SimpleNamespace

from engine.taps.keys import IssuerKeys

PANS = ("6217990000000000006", "6217990000000000014")


class CountingKeys:
    """The key service, counting the tokens it makes."""

    def __init__(self, key_service):
        self._key_service = key_service
        self.tokenized = 0

    async def tokenize_pan(self, pan: str) -> str:
        self.tokenized += 1
        return await self._key_service.tokenize_pan(pan)


async def test_card_tokens_are_the_key_services_and_made_once_per_pan(pool, key_service):
    counting = CountingKeys(key_service)
    issuer_keys = IssuerKeys(pool, counting)
    taps = [SimpleNamespace(pan=pan) for pan in PANS + PANS]
    expected = [await key_service.tokenize_pan(pan) for pan in PANS + PANS]
    assert await issuer_keys.card_tokens(taps) == expected
    assert await issuer_keys.card_tokens(taps[:1]) == expected[:1]
    assert counting.tokenized == len(PANS)
    assert expected[0] != expected[1] and len(expected[0]) == 32
