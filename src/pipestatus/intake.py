"""From a Kafka record (as plain values) to a parsed, identified event, or a rejection.

Pure: the Kafka adapter turns aiokafka records into ``InboundRecord`` values and the
worker calls ``prepare``. Routing: a CloudEvents ``type`` with a configured prefix names
the provider; otherwise the topic does (docs/event-contract.md). CloudEvents binary mode carries the
attributes in ``ce_*`` headers; structured mode sends ``application/cloudevents+json``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pipestatus.domain.identity import event_identity
from pipestatus.domain.observation import MAX_ATTEMPT
from pipestatus.domain.states import Provider
from pipestatus.errors import (
    EventError,
    InvalidCloudEventError,
    InvalidPayloadError,
    UnknownProviderError,
)
from pipestatus.providers import Parsed, parse_document
from pipestatus.providers.decode import decode_json

_REQUIRED_CE = ("id", "source", "specversion", "type")
_MIN_INT = -MAX_ATTEMPT - 1


@dataclass(frozen=True, slots=True)
class InboundRecord:
    """One consumed Kafka record."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()
    timestamp_ms: int | None = None


@dataclass(frozen=True, slots=True)
class Routing:
    """How records find their provider."""

    topics: Mapping[str, Provider]
    cloudevents_type_prefixes: Mapping[str, Provider]
    max_payload_bytes: int = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Accepted:
    """A record that validated; its observations carry the event identity."""

    record: InboundRecord
    event_id: str
    parsed: Parsed


@dataclass(frozen=True, slots=True)
class Rejected:
    """A record that cannot be applied; it becomes a dead letter."""

    record: InboundRecord
    error: EventError
    provider: Provider | None


Prepared = Accepted | Rejected


def prepare(record: InboundRecord, routing: Routing) -> Prepared:
    """Decodes, routes, validates and identifies one record; never raises on bad input."""
    provider: Provider | None = routing.topics.get(record.topic)
    try:
        headers = _text_headers(record.headers)
        envelope, document = _unwrap(record, headers, routing.max_payload_bytes)
        provider = _route(record.topic, envelope, routing)
        parsed = parse_document(document, provider)
        _check_storable(parsed)
    except EventError as exc:
        # A rejection is a value (reason, path, detail). Its traceback and chained cause
        # would tie the frames of this call - and through them the whole batch - to it, and
        # pydantic-core holds validator exceptions where the garbage collector cannot see
        # them, so such a cycle was never freed: memory grew with every batch.
        exc.__cause__ = exc.__context__ = None
        return Rejected(record, exc.with_traceback(None), provider)
    event_id = event_identity(
        provider=provider.value,
        document=document,
        ce_source=envelope.get("source"),
        ce_id=envelope.get("id"),
        webhook_id=headers.get("webhook-id"),
        native_id=parsed.native_event_id,
    )
    observations = tuple(o.with_event_id(event_id) for o in parsed.observations)
    return Accepted(record, event_id, _with_observations(parsed, observations))


def _with_observations(parsed: Parsed, observations: tuple[Any, ...]) -> Parsed:
    return Parsed(parsed.provider, parsed.kind, parsed.native_event_id, observations)


def _check_storable(parsed: Parsed) -> None:
    """Integers bound for ``integer`` columns that a provider model did not bound itself."""
    for o in parsed.observations:
        if not (_MIN_INT <= o.attempt <= MAX_ATTEMPT and _MIN_INT <= o.phase_rank <= MAX_ATTEMPT):
            name = "attempt" if not _MIN_INT <= o.attempt <= MAX_ATTEMPT else "phase_rank"
            raise InvalidPayloadError(
                f"{name} {getattr(o, name)} does not fit PostgreSQL integer", path=name
            )


def _text_headers(headers: tuple[tuple[str, bytes], ...]) -> dict[str, str]:
    decoded: dict[str, str] = {}
    for name, value in headers:
        lowered = name.lower()
        if not (lowered.startswith("ce_") or lowered in ("content-type", "webhook-id")):
            continue  # other headers are carried verbatim into dead letters only
        try:
            text = (value or b"").decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidCloudEventError(f"header {name!r} is not UTF-8", path=name) from exc
        if "\x00" in text:
            raise InvalidPayloadError(
                f"header {name!r} contains a NUL character, which PostgreSQL cannot store",
                path=name,
                stage="decode",
            )
        decoded[lowered] = text
    return decoded


def _unwrap(
    record: InboundRecord, headers: Mapping[str, str], max_bytes: int
) -> tuple[dict[str, str], Any]:
    """Returns the CloudEvents attributes (empty when none) and the provider document."""
    value = record.value if record.value is not None else b""
    content_type = headers.get("content-type", "").lower()
    if content_type.startswith("application/cloudevents"):
        event = decode_json(value, max_bytes=max_bytes)
        if not isinstance(event, dict):
            raise InvalidCloudEventError("structured CloudEvent is not a JSON object")
        attributes = _attributes(event, where="")
        if "data" not in event:
            raise InvalidCloudEventError("structured CloudEvent has no JSON `data`", path="data")
        return attributes, event["data"]
    present = {name[3:]: text for name, text in headers.items() if name.startswith("ce_")}
    attributes = _attributes(present, where="ce_") if present else {}
    return attributes, decode_json(value, max_bytes=max_bytes)


def _attributes(event: Mapping[str, Any], *, where: str) -> dict[str, str]:
    missing = [
        name for name in _REQUIRED_CE if not isinstance(event.get(name), str) or not event[name]
    ]
    if missing:
        names = ", ".join(where + name for name in missing)
        raise InvalidCloudEventError(f"CloudEvent lacks required attribute(s) {names}", path=names)
    if not str(event["specversion"]).startswith("1."):
        raise InvalidCloudEventError(
            f"unsupported CloudEvents specversion {event['specversion']!r}",
            path=f"{where}specversion",
        )
    if len(event["id"]) > 512 or len(event["source"]) > 2048:
        raise InvalidCloudEventError("CloudEvent id or source is absurdly long", path=f"{where}id")
    return {name: event[name] for name in _REQUIRED_CE}


def _route(topic: str, envelope: Mapping[str, str], routing: Routing) -> Provider:
    event_type = envelope.get("type")
    if event_type:
        for prefix, provider in routing.cloudevents_type_prefixes.items():
            if event_type.startswith(prefix):
                return provider
    by_topic = routing.topics.get(topic)
    if by_topic is not None:
        return by_topic
    if event_type:
        raise UnknownProviderError(
            f"CloudEvents type {event_type!r} matches no configured prefix and topic "
            f"{topic!r} is not mapped to a provider",
            path="ce_type",
        )
    raise UnknownProviderError(f"topic {topic!r} is not mapped to a provider", path="topic")
