"""Routing, CloudEvents unwrapping and event identity of ``intake.prepare``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipestatus.domain.states import Provider
from pipestatus.intake import Accepted, InboundRecord, Rejected, Routing, prepare
from pipestatus.settings import DEFAULT_CLOUDEVENTS_TYPES, DEFAULT_TOPICS

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
ROUTING = Routing(topics=DEFAULT_TOPICS, cloudevents_type_prefixes=DEFAULT_CLOUDEVENTS_TYPES)
PULL = (FIXTURES / "codat" / "pull_operation.json").read_bytes()


def record(value: bytes | None, *, topic: str = "runs.codat", headers=()) -> InboundRecord:
    return InboundRecord(topic=topic, partition=0, offset=7, key=None, value=value, headers=headers)


def ce_headers(**overrides: str) -> tuple[tuple[str, bytes], ...]:
    attributes = {
        "ce_specversion": "1.0",
        "ce_id": "evt-1",
        "ce_source": "/codat/webhooks",
        "ce_type": "io.codat.pull_operation.updated",
    } | overrides
    return tuple((name, value.encode()) for name, value in attributes.items() if value)


class TestRouting:
    def test_topic_names_the_provider(self) -> None:
        """A record on a mapped topic is parsed as that provider's payload."""
        result = prepare(record(PULL), ROUTING)
        assert isinstance(result, Accepted)
        assert result.parsed.provider is Provider.codat

    def test_cloudevents_type_prefix_wins_on_a_shared_topic(self) -> None:
        """On an unmapped shared topic, the CloudEvents type names the provider."""
        result = prepare(record(PULL, topic="runs.shared", headers=ce_headers()), ROUTING)
        assert isinstance(result, Accepted)
        assert result.parsed.provider is Provider.codat

    def test_unmapped_topic_without_cloudevents_is_unknown_provider(self) -> None:
        """A record nobody claims is rejected as unknown_provider, naming the topic."""
        result = prepare(record(PULL, topic="runs.elsewhere"), ROUTING)
        assert isinstance(result, Rejected)
        assert result.error.reason == "unknown_provider"
        assert "runs.elsewhere" in str(result.error)

    def test_unknown_cloudevents_type_on_unmapped_topic_is_unknown_provider(self) -> None:
        """A CloudEvents type matching no prefix, on an unmapped topic, is unknown_provider."""
        headers = ce_headers(ce_type="com.example.thing")
        result = prepare(record(PULL, topic="runs.shared", headers=headers), ROUTING)
        assert isinstance(result, Rejected)
        assert result.error.reason == "unknown_provider"


class TestIdentity:
    def test_cloudevents_source_and_id_are_the_identity(self) -> None:
        """ce_source + ce_id identify the event, and every observation carries it."""
        result = prepare(record(PULL, headers=ce_headers()), ROUTING)
        assert isinstance(result, Accepted)
        assert result.event_id == "ce:/codat/webhooks#evt-1"
        assert {o.event_id for o in result.parsed.observations} == {result.event_id}

    def test_webhook_id_header_is_next(self) -> None:
        """Without CloudEvents, the Standard Webhooks id is the identity."""
        result = prepare(record(PULL, headers=(("webhook-id", b"msg_2x"),)), ROUTING)
        assert isinstance(result, Accepted)
        assert result.event_id == "webhook:msg_2x"

    def test_payload_digest_ignores_formatting(self) -> None:
        """Without ids, the same document with other whitespace or key order is the same event."""
        compact = json.dumps(json.loads(PULL), separators=(",", ":")).encode()
        reordered = json.dumps(dict(reversed(json.loads(PULL).items())), indent=4).encode()
        first, second = prepare(record(compact), ROUTING), prepare(record(reordered), ROUTING)
        assert isinstance(first, Accepted)
        assert isinstance(second, Accepted)
        assert first.event_id == second.event_id
        assert first.event_id.startswith("sha256:")

    def test_different_documents_have_different_digests(self) -> None:
        """A changed status is a different event."""
        changed = json.loads(PULL) | {"status": "Processing", "progress": 80}
        a = prepare(record(PULL), ROUTING)
        b = prepare(record(json.dumps(changed).encode()), ROUTING)
        assert isinstance(a, Accepted)
        assert isinstance(b, Accepted)
        assert a.event_id != b.event_id


class TestCloudEvents:
    def test_structured_mode_unwraps_data(self) -> None:
        """application/cloudevents+json carries the payload in `data` and the identity in `id`."""
        envelope = {
            "specversion": "1.0",
            "id": "e-9",
            "source": "/poller",
            "type": "io.codat.pull_operation",
            "data": json.loads(PULL),
        }
        headers = (("content-type", b"application/cloudevents+json; charset=UTF-8"),)
        result = prepare(record(json.dumps(envelope).encode(), headers=headers), ROUTING)
        assert isinstance(result, Accepted)
        assert result.event_id == "ce:/poller#e-9"

    @pytest.mark.parametrize(
        ("headers", "path"),
        [
            (ce_headers(ce_source=""), "ce_source"),
            (ce_headers(ce_specversion="0.3"), "ce_specversion"),
            ((("ce_id", b"\xff\xfe"),), "ce_id"),
        ],
        ids=["missing-source", "old-specversion", "non-utf8-header"],
    )
    def test_malformed_binary_headers_are_invalid_cloudevent(self, headers, path) -> None:
        """Broken ce_* headers are rejected with invalid_cloudevent and the header named."""
        result = prepare(record(PULL, headers=headers), ROUTING)
        assert isinstance(result, Rejected)
        assert result.error.reason == "invalid_cloudevent"
        assert path in result.error.path

    def test_structured_event_without_data_is_invalid(self) -> None:
        """A structured CloudEvent must carry its payload in `data`."""
        envelope = {"specversion": "1.0", "id": "e", "source": "/s", "type": "io.codat.x"}
        headers = (("content-type", b"application/cloudevents+json"),)
        result = prepare(record(json.dumps(envelope).encode(), headers=headers), ROUTING)
        assert isinstance(result, Rejected)
        assert result.error.reason == "invalid_cloudevent"


class TestRejections:
    @pytest.mark.parametrize(
        ("value", "reason"),
        [
            (b"\xff\xfe\x00garbage", "not_json"),
            (b'{"id": "trunc', "not_json"),
            (b"", "not_json"),
            (None, "not_json"),
            (b"[1, 2, 3]", "unknown_payload_kind"),
            (b'{"hello": "world"}', "unknown_payload_kind"),
            (PULL.replace(b'"Complete"', b'"Paused"'), "unmapped_status"),
            (PULL.replace(b'"progress": 100', b'"progress": "lots"'), "invalid_payload"),
            (b"{\"a\": 1}" + b" " * (2 * 1024 * 1024), "payload_too_large"),
        ],
        ids=[
            "invalid-utf8", "truncated", "empty", "tombstone", "array", "unknown-shape",
            "unmapped-status", "wrong-type", "too-large",
        ],
    )  # fmt: skip
    def test_bad_records_are_rejected_with_a_reason(self, value, reason) -> None:
        """Each kind of bad input gets its machine-readable reason; nothing raises."""
        result = prepare(record(value), ROUTING)
        assert isinstance(result, Rejected)
        assert result.error.reason == reason
