"""Composition root of ``pipestatus poll``: provider APIs in, Kafka records out.

One process, one loop: PostgreSQL (state and locks), one HTTP client per source, the
Kafka publisher and the metrics endpoint are opened in that order and closed in reverse.
Each source polls as its own task; ``once`` runs one round of every source and returns
which failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

import httpx

from pipestatus.adapters.health import HealthServer
from pipestatus.adapters.poll_apis import poll_api
from pipestatus.adapters.polling import PollMetrics, SourcePoller
from pipestatus.adapters.postgres import PgStore
from pipestatus.adapters.producer import KafkaPublisher
from pipestatus.errors import ConfigError, InfrastructureError
from pipestatus.settings import Settings

logger = logging.getLogger(__name__)


async def run_poller(
    settings: Settings,
    *,
    stop: asyncio.Event,
    once: bool = False,
    metrics: PollMetrics | None = None,
    on_ready: Callable[[HealthServer | None], None] | None = None,
) -> list[str]:
    """Polls until ``stop`` (or one round with ``once``); returns the sources that failed."""
    poll = settings.poll
    if not poll.sources:
        raise ConfigError(
            "no poll sources: set PIPESTATUS_POLL__SOURCES, e.g. "
            '[{"name": "krenalis", "provider": "krenalis", "base_url": "https://…", '
            '"api_key": "api_…", "workspace": "1"}]'
        )
    topics = {provider: topic for topic, provider in settings.kafka.topics.items()}
    prefixes = {provider: p for p, provider in settings.kafka.cloudevents_type_prefixes.items()}
    missing = [s.name for s in poll.sources if not s.topic and s.provider not in topics]
    if missing:
        raise ConfigError(f"poll sources {missing} name no topic and their provider has none")
    metrics = metrics or PollMetrics()
    database = settings.database
    async with contextlib.AsyncExitStack() as stack:
        store = await stack.enter_async_context(
            PgStore(
                database.url.get_secret_value(),
                max_size=max(database.pool_max_size, len(poll.sources) + 1),
                connect_timeout_s=database.connect_timeout_s,
            )
        )
        await store.migrate()
        publisher = await stack.enter_async_context(
            KafkaPublisher(settings.kafka, timeout_s=poll.produce_timeout_s)
        )
        pollers = []
        for source in poll.sources:
            client = await stack.enter_async_context(
                httpx.AsyncClient(base_url=source.base_url, timeout=source.timeout_s)
            )
            pollers.append(
                SourcePoller(
                    source=source,
                    api=poll_api(client, source, max_wait_s=poll.retry_max_s),
                    pool=store.pool,
                    publisher=publisher,
                    topic=source.topic or topics[source.provider],
                    type_prefix=prefixes.get(source.provider, f"{source.provider.value}."),
                    settings=poll,
                    metrics=metrics,
                )
            )
        server = None
        if settings.http.enabled:

            async def readiness() -> list[str]:
                return [] if await publisher.reachable() else ["broker unreachable"]

            server = await stack.enter_async_context(
                HealthServer(
                    metrics.registry, readiness, host=settings.http.host, port=settings.http.port
                )
            )
        if on_ready is not None:
            on_ready(server)
        names = ", ".join(f"{s.name} ({s.provider.value})" for s in poll.sources)
        logger.info("poller started: %s", names)
        if once:
            return await _one_round(pollers)
        async with asyncio.TaskGroup() as tasks:
            for poller in pollers:
                tasks.create_task(poller.run(stop))
    logger.info("poller stopped")
    return []


async def _one_round(pollers: list[SourcePoller]) -> list[str]:
    failed = []
    outcomes = await asyncio.gather(*(p.poll_once() for p in pollers), return_exceptions=True)
    for poller, outcome in zip(pollers, outcomes, strict=True):
        if isinstance(outcome, InfrastructureError):
            poller.failed(outcome, 1)
            failed.append(poller.source.name)
        elif isinstance(outcome, BaseException):
            raise outcome
    return failed
