"""Reading the wire tap (:class:`terminal.tap.Tap`) into what the decision needs.

The only module of the tap path that knows the tap's field names.
"""

from __future__ import annotations

from typing import Any

import msgspec

from engine.taps.decision import TapFacts
from engine.taps.devices import Device
from terminal.tap import Tap

# Hex fields of the tap: their case never matters (a resend in lower case is the same tap).
HEX_FIELDS = ("un", "tvr", "aip", "cid", "iad", "arqc", "cdol1", "cdol1_data")


class WireIntake:
    """:class:`engine.taps.service.TapIntake` for the terminal's tap message."""

    def facts(self, tap: Tap, card_token: str, device: Device) -> TapFacts:
        """The decision's view of ``tap`` (PAN replaced by ``card_token``), sent by ``device``
        (whose fare network prices it)."""
        return TapFacts(
            tap_id=tap.tap_id, device_id=device.device_id, gate_id=tap.gate_id,
            network_id=device.network_id or "", card_token=card_token, atc=tap.atc,
            arqc=bytes.fromhex(tap.arqc), station=tap.station, direction=tap.direction,
            tapped_at=tap.local_time, currency=int(tap.currency),
        )

    def request_fields(self, tap: Tap, card_token: str) -> dict[str, Any]:
        """The tap's fields as JSON values, PAN replaced by its token and hex in upper case
        (kept to compare repeats of the same ``tap_id`` field by field; no PAN is stored)."""
        fields = msgspec.to_builtins(tap)
        fields["pan"] = card_token
        for name in HEX_FIELDS:
            fields[name] = fields[name].upper()
        return fields
