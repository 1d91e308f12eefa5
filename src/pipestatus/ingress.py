"""Composition root of ``pipestatus ingress``: webhooks in, Kafka records out.

One process, one loop: the Kafka publisher is opened first and closed last, so a SIGTERM
first stops accepting requests, lets those in flight finish (each answered only after the
broker acknowledged its record), then flushes and closes the producer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable

from prometheus_client import CollectorRegistry

from pipestatus.adapters.asgi import AsgiServer
from pipestatus.adapters.ingress_http import IngressMetrics, ingress_app
from pipestatus.adapters.producer import KafkaPublisher
from pipestatus.errors import ConfigError
from pipestatus.settings import Settings

logger = logging.getLogger(__name__)


async def run_ingress(
    settings: Settings,
    *,
    stop: asyncio.Event,
    on_ready: Callable[[AsgiServer], None] | None = None,
) -> None:
    """Serves until ``stop`` is set."""
    async with serving_ingress(settings) as server:
        if on_ready is not None:
            on_ready(server)
        await stop.wait()
        logger.info("ingress stopping: finishing requests in flight")
    logger.info("ingress stopped")


@contextlib.asynccontextmanager
async def serving_ingress(settings: Settings) -> AsyncIterator[AsgiServer]:
    """The ingress, serving while the block runs (the demo and tests embed it this way)."""
    ingress = settings.ingress
    if not ingress.sources:
        raise ConfigError(
            "no webhook sources: set PIPESTATUS_INGRESS__SOURCES, e.g. "
            '[{"name": "codat", "provider": "codat", "verify": "standard-webhooks", '
            '"secrets": ["whsec_..."]}]'
        )
    provider_topics = {provider.value: topic for topic, provider in settings.kafka.topics.items()}
    missing = [
        s.name for s in ingress.sources if not s.topic and s.provider.value not in provider_topics
    ]
    if missing:
        raise ConfigError(f"sources {missing} name no topic and their provider has none")
    metrics = IngressMetrics(CollectorRegistry())
    async with contextlib.AsyncExitStack() as stack:
        publisher = await stack.enter_async_context(
            KafkaPublisher(settings.kafka, timeout_s=ingress.produce_timeout_s)
        )

        async def readiness() -> list[str]:
            return [] if await publisher.reachable() else ["broker unreachable"]

        app = ingress_app(
            ingress,
            provider_topics=provider_topics,
            type_prefixes=settings.kafka.cloudevents_type_prefixes,
            publish=publisher.publish,
            readiness=readiness,
            metrics=metrics,
        )
        server = await stack.enter_async_context(
            AsgiServer(app, host=ingress.host, port=ingress.port, name="ingress")
        )
        routes = ", ".join(
            f"/webhooks/{s.name} ({s.provider.value}, {s.verify})" for s in ingress.sources
        )
        logger.info("ingress on %s: %s", server.url, routes)
        yield server
