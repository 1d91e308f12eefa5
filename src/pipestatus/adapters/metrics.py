"""Every Prometheus metric pipestatus exposes, on an injected registry.

Labels take values from enums and configuration only (provider, state, outcome, reason,
receiver, topic, partition): never run or pipeline ids, so cardinality stays bounded.
"""

from __future__ import annotations

import collections
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from pipestatus import __version__
from pipestatus.domain.states import TERMINAL
from pipestatus.service import BatchReport

_DELAY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)
_DURATION_BUCKETS = (1, 10, 30, 60, 300, 600, 1800, 3600, 7200, 14400, 43200, 86400)
_BATCH_BUCKETS = (1, 10, 50, 100, 250, 500, 1000, 2000, 5000)
_BATCH_SECONDS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class Metrics:
    """Owns the metrics; the worker, dispatcher and sweeps report through it."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.records = Counter(
            "pipestatus_records_consumed", "Records consumed, by what became of them.",
            ["provider", "outcome"], registry=r,
        )  # fmt: skip
        self.transitions = Counter(
            "pipestatus_transitions", "Run state transitions recorded.",
            ["provider", "from_state", "to_state"], registry=r,
        )  # fmt: skip
        self.dead_letters = Counter(
            "pipestatus_dead_letters", "Records stored as dead letters, by reason.",
            ["provider", "reason"], registry=r,
        )  # fmt: skip
        self.runs = Gauge(
            "pipestatus_runs", "Runs currently in each state.", ["provider", "state"], registry=r
        )
        self.run_duration = Histogram(
            "pipestatus_run_duration_seconds", "Duration of runs that ended (provider times).",
            ["provider"], buckets=_DURATION_BUCKETS, registry=r,
        )  # fmt: skip
        self.event_delay = Histogram(
            "pipestatus_event_delay_seconds",
            "Delay from the provider's timestamp of an applied observation to its commit.",
            ["provider"], buckets=_DELAY_BUCKETS, registry=r,
        )  # fmt: skip
        self.batch_records = Histogram(
            "pipestatus_batch_records", "Records per processed batch.",
            buckets=_BATCH_BUCKETS, registry=r,
        )  # fmt: skip
        self.batch_duration = Histogram(
            "pipestatus_batch_duration_seconds", "Time to process and commit one batch.",
            buckets=_BATCH_SECONDS, registry=r,
        )  # fmt: skip
        self.lag = Gauge(
            "pipestatus_consumer_lag_messages", "Messages behind the end of each partition.",
            ["topic", "partition"], registry=r,
        )  # fmt: skip
        self.partitions = Gauge(
            "pipestatus_partitions_assigned", "Partitions assigned to this worker.", registry=r
        )
        self.last_batch = Gauge(
            "pipestatus_last_batch_timestamp_seconds",
            "Unix time of the last committed batch.", registry=r,
        )  # fmt: skip
        self.database_up = Gauge(
            "pipestatus_database_up", "1 when PostgreSQL answered the last check.", registry=r
        )
        self.retries = Counter(
            "pipestatus_dependency_retries", "Backoffs after a dependency failed.",
            ["dependency"], registry=r,
        )  # fmt: skip
        self.deliveries = Counter(
            "pipestatus_alert_deliveries", "Alert deliveries by receiver and result.",
            ["receiver", "result"], registry=r,
        )  # fmt: skip
        self.outbox_backlog = Gauge(
            "pipestatus_alert_outbox_backlog", "Alert deliveries not yet made.", registry=r
        )
        self.alerts_firing = Gauge(
            "pipestatus_alerts_firing", "Alerts currently firing, by rule.", ["rule"], registry=r
        )
        self.build_info = Gauge(
            "pipestatus_build_info", "Always 1; labels carry the version.", ["version"], registry=r
        )
        self.build_info.labels(version=__version__).set(1)
        # "No batch since" alerts measure from the start, not from 1970.
        self.last_batch.set(datetime.now(UTC).timestamp())

    def observe_batch(self, report: BatchReport) -> None:
        """Everything a committed batch tells the metrics.

        Counts are summed per label set first: ``labels()`` takes a lock and builds a key,
        and calling it once per record was a visible share of the worker's CPU.
        """
        now = datetime.now(UTC)
        outcomes = collections.Counter((r.provider, r.outcome.value) for r in report.results)
        for (provider, outcome), count in outcomes.items():
            self.records.labels(provider, outcome).inc(count)
        reasons = collections.Counter(
            (r.provider, r.reason) for r in report.results if r.reason is not None
        )
        for (provider, reason), count in reasons.items():
            self.dead_letters.labels(provider, reason).inc(count)
        moves: collections.Counter[tuple[str, str, str]] = collections.Counter()
        for transition in report.transitions:
            o = transition.observation
            before = transition.from_state.value if transition.from_state else "none"
            moves[(o.provider.value, before, o.state.value)] += 1
            if o.state in TERMINAL and o.started_at and o.ended_at and o.ended_at >= o.started_at:
                seconds = (o.ended_at - o.started_at).total_seconds()
                self.run_duration.labels(o.provider.value).observe(seconds)
        for labels, count in moves.items():
            self.transitions.labels(*labels).inc(count)
        for o in report.applied:
            if o.occurred_at is not None:
                delay = max(0.0, (now - o.occurred_at).total_seconds())
                self.event_delay.labels(o.provider.value).observe(delay)
        self.batch_records.observe(len(report.results))
        self.batch_duration.observe(report.seconds)
        self.last_batch.set(now.timestamp())

    def delivery(self, receiver: str, result: str) -> None:
        self.deliveries.labels(receiver, result).inc()
