"""Prometheus metrics of the key service: counts only, never keys, PANs or cryptograms."""

from __future__ import annotations

from prometheus_client import Counter

ARQC_RESULTS = Counter(
    "onecard_hsm_arqc_total", "ARQC verifications by backend and result", ["backend", "result"]
)
CARD_KEY_CACHE = Counter(
    "onecard_hsm_card_key_cache_total", "Derived card key cache lookups", ["outcome"]
)
