"""Errors of the fare engine: bad rule files and taps the rules cannot price.

They descend from :class:`engine.errors.EngineError` (so the CLI shows their message) and
from ``ValueError`` or ``LookupError``; every message names the file, row and field.
"""

from __future__ import annotations

from engine.errors import EngineError


class FareRulesError(EngineError, ValueError):
    """A rules file (GTFS feed, fare bands, network, rider rules) is malformed."""


class UnpriceableError(EngineError, LookupError):
    """No rule prices this leg (unknown network or stop, no matching fare leg rule)."""


class BadTapError(EngineError, ValueError):
    """A tap's facts are malformed: a naive time, a kind its network does not take, or a
    time before the card's last priced tap."""
