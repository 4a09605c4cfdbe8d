"""Prometheus metrics of the key service: counts only, never keys, PANs or cryptograms."""

from __future__ import annotations

from prometheus_client import Counter

from hsm.service import ArqcResult

ARQC_RESULTS = Counter(
    "onecard_hsm_arqc_total", "ARQC verifications by backend and result", ["backend", "result"]
)


class ArqcCounters:
    """The ``onecard_hsm_arqc_total`` children of one backend, bound once."""

    def __init__(self, backend: str) -> None:
        self._children = {
            result: ARQC_RESULTS.labels(backend, result.name) for result in ArqcResult
        }

    def count(self, results: list[ArqcResult]) -> None:
        """Add a batch's results (one pass per result kind, in C)."""
        for result, child in self._children.items():
            found = results.count(result)
            if found:
                child.inc(found)
