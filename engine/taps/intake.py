"""Reading the wire tap (:class:`terminal.tap.Tap`) into what the decision needs.

The only module of the tap path that knows the tap's field names.
"""

from __future__ import annotations

from typing import Any

import msgspec

from engine.taps.decision import TapFacts


class WireIntake:
    """:class:`engine.taps.service.TapIntake` for the terminal's tap message."""

    def facts(self, tap: Any, card_token: str, device_id: str) -> TapFacts:
        """The decision's view of ``tap`` (PAN replaced by ``card_token``)."""
        return TapFacts(
            tap_id=tap.tap_id, device_id=device_id, card_token=card_token,
            atc=int.from_bytes(bytes.fromhex(tap.atc), "big"), arqc=bytes.fromhex(tap.arqc),
            station=tap.station, direction=tap.direction, tapped_at=tap.local_time,
            currency=int(tap.currency),
        )

    def request_fields(self, tap: Any, card_token: str) -> dict[str, Any]:
        """The tap's fields as JSON values, PAN replaced by its token (kept to compare
        repeats of the same ``tap_id`` field by field; no PAN is ever stored)."""
        fields = msgspec.to_builtins(tap)
        fields["pan"] = card_token
        return fields
