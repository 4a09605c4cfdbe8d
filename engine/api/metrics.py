"""Prometheus metrics of the engine (exposition format at ``GET /metrics``).

Each application gets its own registry so tests and several apps in one process do not
share counters. With several worker processes (``onecard serve --workers N``) each process
keeps its own values unless ``PROMETHEUS_MULTIPROC_DIR`` is set, in which case
``/metrics`` aggregates every worker's (prometheus-client multiprocess mode; ``serve``
sets it up).
"""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client import multiprocess

from engine.taps.wire import TapAnswer, TapConflict

LATENCY_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0)
FLUSH_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


class Metrics:
    """The engine's collectors; implements :class:`engine.taps.service.TapMetrics`."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.tap_latency = Histogram(
            "onecard_tap_latency_seconds", "Time from a tap's arrival to its durable answer",
            buckets=LATENCY_BUCKETS_S, registry=self.registry)
        self.tap_decisions = Counter(
            "onecard_tap_decisions_total", "Taps answered, by decision and reason",
            ["decision", "reason"], registry=self.registry)
        self.flush_size = Histogram(
            "onecard_tap_flush_size", "Taps per micro-batch flush",
            buckets=FLUSH_SIZE_BUCKETS, registry=self.registry)
        self.ledger_commit = Histogram(
            "onecard_ledger_commit_latency_seconds",
            "Duration of one flush transaction (cards, taps, ledger postings) to commit",
            buckets=LATENCY_BUCKETS_S, registry=self.registry)
        self._decision_counters: dict[tuple[str, str], Counter] = {}
        self.alerts = Counter(
            "onecard_alerts_total", "Abnormal-usage alerts raised, by kind", ["kind"],
            registry=self.registry)

    def flushed(self, size: int, commit_s: float) -> None:
        self.flush_size.observe(size)
        self.ledger_commit.observe(commit_s)

    def decided(self, answer: TapAnswer | TapConflict, latency_s: float) -> None:
        self.tap_latency.observe(latency_s)
        labels = (("conflict", "conflict") if isinstance(answer, TapConflict)
                  else (answer.decision, answer.reason))
        # One counter child per label pair, looked up once: this runs for every tap.
        counter = self._decision_counters.get(labels)
        if counter is None:
            counter = self._decision_counters[labels] = self.tap_decisions.labels(*labels)
        counter.inc()

    def alerted(self, kind: str) -> None:
        self.alerts.labels(kind).inc()

    def exposition(self) -> bytes:
        """The text exposition of every worker (multiprocess mode) or of this process."""
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry)
        return generate_latest(self.registry)
