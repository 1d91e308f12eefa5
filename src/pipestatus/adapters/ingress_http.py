"""The ingress's HTTP surface: ``POST /webhooks/{name}`` beside the probes and ``/metrics``.

Answers (docs/runbook.md, "Ingress"): 204 once the broker acknowledged the record; 401
for a missing or bad signature or token, or a timestamp outside the tolerance, with no
detail (the log says which); 404 for an unknown source; 413 for a body over the limit,
before it is read whole; 400 for an empty body; 503 with ``Retry-After`` while the broker
cannot take the record, so the sender retries.
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from fastapi import FastAPI, Request, Response
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from pipestatus.adapters.health import health_app
from pipestatus.domain.states import Provider
from pipestatus.edge.envelope import Delivery, OutboundRecord, digest_id, to_record
from pipestatus.edge.signatures import SignatureCheck, WebhookHeaders, check, signing_key
from pipestatus.errors import BrokerError
from pipestatus.settings import IngressSettings, SourceSettings

logger = logging.getLogger(__name__)

Publish = Callable[[OutboundRecord], Awaitable[tuple[int, int]]]
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class IngressMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.requests = Counter(
            "pipestatus_ingress_requests", "Webhook requests, by source and result.",
            ["source", "result"], registry=registry,
        )  # fmt: skip
        self.produce_seconds = Histogram(
            "pipestatus_ingress_produce_seconds", "Time from request to broker acknowledgement.",
            ["source"], buckets=_LATENCY_BUCKETS, registry=registry,
        )  # fmt: skip
        self.in_flight = Gauge(
            "pipestatus_ingress_in_flight", "Webhook requests being handled.", registry=registry
        )


@dataclass(frozen=True, slots=True)
class _Source:
    settings: SourceSettings
    topic: str
    keys: tuple[bytes, ...]  # signing keys, or accepted tokens


def _sources(settings: IngressSettings, topics: Mapping[str, str]) -> dict[str, _Source]:
    built = {}
    for source in settings.sources:
        secrets = [s.get_secret_value() for s in source.secrets]
        keys = (
            tuple(signing_key(s) for s in secrets)
            if source.verify == "standard-webhooks"
            else tuple(s.encode() for s in secrets)
        )
        topic = source.topic or topics[source.provider.value]
        built[source.name] = _Source(source, topic, keys)
    return built


def ingress_app(
    settings: IngressSettings,
    *,
    provider_topics: Mapping[str, str],
    type_prefixes: Mapping[str, Provider],
    publish: Publish,
    readiness: Callable[[], Awaitable[list[str]]],
    metrics: IngressMetrics,
    clock: Callable[[], float] = time.time,
) -> FastAPI:
    """``provider_topics``: provider name → its topic (for sources without a topic)."""
    sources = _sources(settings, provider_topics)
    app = health_app(metrics.registry, readiness)
    limit = settings.max_body_bytes

    @app.post("/webhooks/{name}", status_code=204, response_class=Response)
    async def receive(name: str, request: Request) -> Response:
        source = sources.get(name)
        if source is None:
            metrics.requests.labels("unknown", "unknown_source").inc()
            return Response(status_code=404)
        with metrics.in_flight.track_inprogress():
            result, response = await _handle(source, request)
        metrics.requests.labels(name, result).inc()
        return response

    async def _handle(source: _Source, request: Request) -> tuple[str, Response]:
        began = time.perf_counter()
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            return "too_large", Response(status_code=413)
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                return "too_large", Response(status_code=413)
        if not body.strip():
            return "empty", Response(status_code=400)
        delivery = _admit(source, request.headers, bytes(body), clock(), settings.tolerance_s)
        if delivery is None:
            return "unauthorized", Response(status_code=401)
        record = to_record(delivery, topic=source.topic, type_prefixes=type_prefixes)
        try:
            await publish(record)
        except BrokerError as exc:
            logger.warning(
                "ingress %s: broker unavailable, answering 503: %s", source.settings.name, exc
            )
            headers = {"Retry-After": str(settings.retry_after_s)}
            return "broker_unavailable", Response(status_code=503, headers=headers)
        metrics.produce_seconds.labels(source.settings.name).observe(time.perf_counter() - began)
        return "stored", Response(status_code=204)

    return app


def _admit(
    source: _Source, headers: Mapping[str, str], body: bytes, now: float, tolerance_s: float
) -> Delivery | None:
    """The delivery if the source's scheme lets it in; logs why not (never a secret)."""
    name, scheme = source.settings.name, source.settings.verify
    webhook = WebhookHeaders.of(headers)
    if scheme == "standard-webhooks":
        verdict = check(webhook, body, source.keys, now=now, tolerance_s=tolerance_s)
        if verdict is not SignatureCheck.valid or webhook is None:
            logger.warning("ingress %s: refused (401): signature %s", name, verdict.value)
            return None
        return Delivery(
            name, source.settings.provider, body, webhook.msg_id, int(webhook.timestamp)
        )
    if scheme == "token":
        offered = headers.get(source.settings.token_header, "").encode()
        matched = False
        for token in source.keys:
            matched |= hmac.compare_digest(offered, token)  # no early exit
        if not matched:
            logger.warning("ingress %s: refused (401): token missing or wrong", name)
            return None
    msg_id = headers.get("webhook-id") or headers.get("svix-id") or digest_id(body)
    return Delivery(name, source.settings.provider, body, msg_id, int(now))
