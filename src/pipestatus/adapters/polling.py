"""One poll of one source, and the loop that repeats it with backoff (README, "Pollers").

A round holds the source's PostgreSQL lock: load the state, read the list, read by id the
live runs the list omitted, publish every changed resource and checkpoint each one only
after the broker acknowledged it, then forget expired runs. A crash between publish and
checkpoint republishes the same event id next round; the worker applies it once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg
from prometheus_client import CollectorRegistry, Counter, Gauge

from pipestatus.adapters.poll_http import PollApi
from pipestatus.adapters.poll_store import locked_source
from pipestatus.adapters.producer import KafkaPublisher
from pipestatus.edge.polling import backoff_s, checkpoint, live, plan, to_record
from pipestatus.errors import InfrastructureError, ProviderPollError
from pipestatus.settings import PollSettings, PollSourceSettings

logger = logging.getLogger(__name__)


class PollMetrics:
    """Counters by source (configuration names only) and reason (a bounded label)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.polls = Counter(
            "pipestatus_polls", "Poll rounds, by outcome (ok, failed, locked).",
            ["source", "outcome"], registry=r,
        )  # fmt: skip
        self.published = Counter(
            "pipestatus_poll_published", "Changed resources published.", ["source"], registry=r
        )
        self.unchanged = Counter(
            "pipestatus_poll_unchanged", "Resources read whose status had not moved.",
            ["source"], registry=r,
        )  # fmt: skip
        self.errors = Counter(
            "pipestatus_poll_errors", "Failed poll rounds, by reason.",
            ["source", "reason"], registry=r,
        )  # fmt: skip
        self.last_success = Gauge(
            "pipestatus_poll_last_success_timestamp_seconds",
            "When the source was last polled successfully (poll lag = now - this).",
            ["source"], registry=r,
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class Round:
    published: int
    unchanged: int
    locked: bool = False


@dataclass(frozen=True, slots=True)
class SourcePoller:
    source: PollSourceSettings
    api: PollApi
    pool: asyncpg.Pool
    publisher: KafkaPublisher
    topic: str
    type_prefix: str
    settings: PollSettings
    metrics: PollMetrics

    async def poll_once(self) -> Round:
        """One round; ``Round(locked=True)`` when another replica holds the source."""
        name, provider = self.source.name, self.source.provider
        grace = timedelta(seconds=self.settings.grace_s)
        async with locked_source(self.pool, name) as state:
            if state is None:
                self.metrics.polls.labels(name, "locked").inc()
                return Round(0, 0, locked=True)
            known = await state.load()
            now = datetime.now(UTC)
            listing = await self.api.listed(known)
            seen = list(listing.resources)
            listed = {resource.run_id for resource in seen}
            gone = []
            for run in live(known, now=now, grace=grace):
                if run.run_id in listed:
                    continue
                resource = await self.api.one(run.run_id, run.locator)
                if resource is None:
                    gone.append(run.run_id)
                else:
                    seen.append(resource)
            decided = plan(seen, known, now=now, grace=grace, named=listing.named)
            for resource in decided.publish:
                record = to_record(
                    provider, resource, topic=self.topic, type_prefix=self.type_prefix, at=now
                )
                await self.publisher.publish(record)  # acknowledged, or it raises
                await state.save(checkpoint(resource, known.get(resource.run_id), now=now))
                self.metrics.published.labels(name).inc()
            await state.forget([*decided.expired, *gone])
        self.metrics.unchanged.labels(name).inc(decided.unchanged)
        self.metrics.polls.labels(name, "ok").inc()
        self.metrics.last_success.labels(name).set(now.timestamp())
        logger.info(
            "polled %s: %d published, %d unchanged, %d forgotten",
            name, len(decided.publish), decided.unchanged, len(decided.expired) + len(gone),
        )  # fmt: skip
        return Round(len(decided.publish), decided.unchanged)

    async def run(self, stop: asyncio.Event) -> None:
        """Polls every ``interval_s`` until ``stop``; failures back off with jitter."""
        failures = 0
        while not stop.is_set():
            try:
                await self.poll_once()
                failures = 0
                delay = self.source.interval_s
            except InfrastructureError as exc:
                failures += 1
                delay = self.failed(exc, failures)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)

    def failed(self, exc: InfrastructureError, failures: int) -> float:
        """Counts the failure; the wait before the next round."""
        reason = exc.reason if isinstance(exc, ProviderPollError) else type(exc).__name__
        self.metrics.errors.labels(self.source.name, reason).inc()
        self.metrics.polls.labels(self.source.name, "failed").inc()
        retry_after = exc.retry_after_s if isinstance(exc, ProviderPollError) else None
        delay = retry_after if retry_after is not None else self.backoff(failures)
        logger.warning("poll of %s failed (%s), next in %.1fs", self.source.name, exc, delay)
        return delay

    def backoff(self, failures: int) -> float:
        settings = self.settings
        return backoff_s(
            failures,
            initial=settings.retry_initial_s,
            maximum=settings.retry_max_s,
            jitter=random.uniform(0.5, 1.0),  # noqa: S311  # jitter, not a secret
        )
