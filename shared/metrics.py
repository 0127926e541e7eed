"""Prometheus metrics, one registry per process (built by the composition root)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.gc_collector import GCCollector


class Metrics:
    def __init__(self, service: str) -> None:
        self.service = service
        self.registry = CollectorRegistry()
        GCCollector(registry=self.registry)  # python_gc_*: see shared/runtime.py
        labels = {"service": service}
        self.requests = Counter(
            "twinaid_http_requests",
            "HTTP requests",
            ["method", "route", "status"],
            registry=self.registry,
        ).labels
        self.request_seconds = Histogram(
            "twinaid_http_request_seconds",
            "HTTP request duration",
            ["route"],
            registry=self.registry,
        ).labels
        self.appends = Counter(
            "twinaid_events_committed",
            "Events appended and committed to the log (counted by the sealer)",
            ["service"],
            registry=self.registry,
        ).labels(**labels)
        self.relay_published = Counter(
            "twinaid_relay_published",
            "Events published by the relay",
            ["service"],
            registry=self.registry,
        ).labels(**labels)
        self.relay_lag_events = Gauge(
            "twinaid_relay_lag_events",
            "Committed events not yet published",
            ["service"],
            registry=self.registry,
        ).labels(**labels)
        self.relay_lag_seconds = Gauge(
            "twinaid_relay_lag_seconds",
            "Age of the oldest unpublished event",
            ["service"],
            registry=self.registry,
        ).labels(**labels)
        self.consumer_lag = Gauge(
            "twinaid_consumer_lag_events",
            "Upstream events seen but not yet contiguous",
            ["service", "upstream"],
            registry=self.registry,
        ).labels
        # a committed event the sealer cannot seal (shared/sealer.py Watch): 1 with its
        # position, event id and reason as labels while it blocks the chain
        self.sealer_blocked = Gauge(
            "twinaid_sealer_blocked",
            "1 while a committed event cannot be sealed: nothing after it is published",
            ["service", "position", "event_id", "reason"],
            registry=self.registry,
        )
        self.sealer_blocked_position = Gauge(
            "twinaid_sealer_blocked_position",
            "Chain position of the event the sealer cannot seal; 0 when none",
            ["service"],
            registry=self.registry,
        ).labels(**labels)
        self.sealer_failures = Counter(
            "twinaid_sealer_failures",
            "Sealing rounds stopped by an event the chain cannot seal",
            ["service"],
            registry=self.registry,
        ).labels(**labels)
        self.quarantined = Counter(
            "twinaid_quarantined",
            "Upstream messages quarantined: not authentic, inconsistent or implausible",
            ["service", "upstream"],
            registry=self.registry,
        )
        self.dead_letters = Counter(
            "twinaid_dead_letters",
            "Messages sent to the dead-letter table",
            ["service"],
            registry=self.registry,
        ).labels(**labels)
        self.group_commit_batches = Counter(
            "twinaid_group_commit_batches",
            "Statements run by a group commit (shared/batching.py)",
            ["kind"],
            registry=self.registry,
        ).labels
        self.group_commit_items = Counter(
            "twinaid_group_commit_items",
            "Writes those statements carried (items / batches: the mean batch)",
            ["kind"],
            registry=self.registry,
        ).labels
