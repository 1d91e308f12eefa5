"""The Kafka record a webhook delivery becomes (docs/event-contract.md, "From the ingress").

The value is the request body byte for byte, so the worker validates exactly what the
provider sent and a dead letter keeps it. The headers carry the Standard Webhooks id and
timestamp and the CloudEvents binary-mode attributes (``ce_id`` is the webhook id), so the
worker's identity rule makes a re-delivered webhook one event. The key is the run id when
the payload names exactly one run (its events then share a partition), else the webhook id.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pipestatus.domain.states import Provider
from pipestatus.errors import EventError
from pipestatus.providers import parse_document
from pipestatus.providers.decode import decode_json

CE_SPECVERSION = "1.0"


@dataclass(frozen=True, slots=True)
class Delivery:
    """One accepted request: the source it came through and what identifies it."""

    source: str
    provider: Provider
    body: bytes
    #: ``webhook-id`` (or ``svix-id``); for unsigned senders without one, a body digest.
    msg_id: str
    #: Unix seconds as the sender stamped it, else when it arrived.
    timestamp: int


@dataclass(frozen=True, slots=True)
class OutboundRecord:
    topic: str
    key: bytes
    value: bytes
    headers: tuple[tuple[str, bytes], ...]


def digest_id(body: bytes) -> str:
    """An id for a sender that gives none: identical bodies are one event."""
    return "sha256:" + hashlib.sha256(body).hexdigest()


def to_record(
    delivery: Delivery, *, topic: str, type_prefixes: Mapping[str, Provider]
) -> OutboundRecord:
    """The record for ``delivery`` on ``topic``; never raises on a body the worker refuses."""
    document = _decoded(delivery.body)
    at = datetime.fromtimestamp(delivery.timestamp, UTC).isoformat().replace("+00:00", "Z")
    headers = (
        ("webhook-id", delivery.msg_id),
        ("webhook-timestamp", str(delivery.timestamp)),
        ("ce_specversion", CE_SPECVERSION),
        ("ce_id", delivery.msg_id),
        ("ce_source", delivery.source),
        ("ce_type", _ce_type(delivery.provider, document, type_prefixes)),
        ("ce_time", at),
        ("content-type", "application/json"),
    )
    key = _run_id(document, delivery.provider) or delivery.msg_id
    return OutboundRecord(
        topic=topic,
        key=key.encode(),
        value=delivery.body,
        headers=tuple((name, value.encode()) for name, value in headers),
    )


def _decoded(body: bytes) -> Any:
    try:
        return decode_json(body, max_bytes=len(body) + 1)
    except EventError:
        return None  # the worker dead-letters it with the reason; the edge only forwards


def _ce_type(provider: Provider, document: Any, prefixes: Mapping[str, Provider]) -> str:
    """The provider's CloudEvents prefix + the payload's own event type (Codat's
    ``eventType``), so the worker routes by type whatever the topic."""
    prefix = next((p for p, named in prefixes.items() if named is provider), f"{provider.value}.")
    event_type = document.get("eventType") if isinstance(document, dict) else None
    return prefix + (event_type if isinstance(event_type, str) and event_type else "webhook")


def _run_id(document: Any, provider: Provider) -> str | None:
    if document is None:
        return None
    try:
        parsed = parse_document(document, provider)
    except EventError:
        return None
    runs = {o.run_id for o in parsed.observations}
    return runs.pop() if len(runs) == 1 else None
