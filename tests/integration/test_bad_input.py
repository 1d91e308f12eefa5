"""Bad input end to end through a worker (issue #7): every poison record becomes a dead
letter with a precise reason, the worker keeps going, and the valid records around each
one are applied. Real broker, real PostgreSQL, the real worker loop."""

from __future__ import annotations

import copy
import hashlib
import json
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pipestatus.adapters.metrics import Metrics
from pipestatus.app import run_worker
from pipestatus.domain.states import Provider
from pipestatus.service import TRUNCATED_COPY_BYTES
from tests.integration.db_tools import fetch
from tests.integration.kafka_tools import (
    Message,
    create_topics,
    produce,
    topic_for,
    unique_topics,
    worker_settings,
)

pytestmark = [pytest.mark.services]

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
LIMIT = 100_000  # PIPESTATUS_WORKER__MAX_PAYLOAD_BYTES for this test (Kafka's own is ~1 MB)
SHARED = "shared"  # stands for this test's shared topic (CloudEvents routing only)


def fixture(provider: str, name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((FIXTURES / provider / f"{name}.json").read_text())
    return document


def codat(**changes: Any) -> dict[str, Any]:
    return fixture("codat", "pull_operation") | {"id": str(uuid.uuid4())} | changes


def krenalis(**changes: Any) -> dict[str, Any]:
    return fixture("krenalis", "running") | {"id": f"k-{uuid.uuid4().hex[:12]}"} | changes


def without(document: dict[str, Any], field: str) -> dict[str, Any]:
    return {key: value for key, value in document.items() if key != field}


def zoho(**pipelinerun: Any) -> dict[str, Any]:
    document = fixture("zoho_dataprep", "succeeded")
    document["pipelinerun"]["id"] = str(2650000000000000 + uuid.uuid4().int % 10**12)
    document["pipelinerun"].update(pipelinerun)
    return document


def zoho_broken_quality() -> dict[str, Any]:
    document = zoho()
    export = document["pipelinerun"]["pipelinetaskinstances"][3]["datasetexportaudit"]
    export["datasetexportauditmetric"]["quality"] = '{"valid":57,'  # JSON in a string, cut
    return document


def ce(**attributes: str) -> tuple[tuple[str, bytes], ...]:
    """Binary-mode CloudEvents headers; an empty value leaves the attribute out."""
    base = {"ce_specversion": "1.0", "ce_id": uuid.uuid4().hex, "ce_source": "/tests",
            "ce_type": "com.krenalis.pipeline_run"} | attributes  # fmt: skip
    return tuple((name, value.encode()) for name, value in base.items() if value)


def js(document: Any) -> bytes:
    return json.dumps(document).encode()


@dataclass(frozen=True)
class Case:
    name: str
    provider: Provider | None  # None: the shared topic
    value: bytes | None
    reason: str
    path: str = ""  # a substring of the dead letter's field path
    detail: str = ""  # a substring of its message
    headers: tuple[tuple[str, bytes], ...] = ()
    key: bytes | None = None


OVERSIZED = js(codat(statusDescription="x" * (3 * LIMIT)))
CASES = [
    Case("non-JSON text", Provider.codat, b"status=Complete&id=42", "not_json",
         detail="not JSON"),
    Case("binary, not UTF-8", Provider.codat, b"\x89PNG\r\n\x1a\n\x00\x00", "not_json",
         detail="not UTF-8"),
    Case("invalid UTF-8 inside JSON", Provider.krenalis, b'{"id": "\xff\xfe", "x": 1}',
         "not_json", detail="not UTF-8"),
    Case("truncated JSON", Provider.codat, js(codat())[:60], "not_json", detail="not JSON"),
    Case("empty value", Provider.codat, b"", "not_json", detail="empty"),
    Case("tombstone (null value)", Provider.krenalis, None, "not_json", detail="empty",
         key=b"k-deleted"),
    Case("10 000 nested arrays", Provider.codat, b"[" * 10_000 + b"]" * 10_000, "not_json",
         detail="recursion limit"),
    Case("10 000 nested objects", Provider.krenalis, b'{"a":' * 10_000 + b"1" + b"}" * 10_000,
         "not_json", detail="recursion limit"),
    Case("over the size limit", Provider.codat, OVERSIZED, "payload_too_large",
         detail=f"limit is {LIMIT}"),
    Case("wrong type", Provider.codat, js(codat(progress="half")), "invalid_payload",
         path="progress"),
    Case("wrong type, nested", Provider.zoho_dataprep, js(zoho(row_count="many")),
         "invalid_payload", path="pipelinerun.row_count"),
    Case("missing required field", Provider.krenalis, js(without(krenalis(), "startTime")),
         "invalid_payload", path="startTime", detail="required"),
    Case("unknown payload kind", Provider.codat, js({"hello": "world"}),
         "unknown_payload_kind"),
    Case("JSON array, not an object", Provider.nuvo, b"[1, 2, 3]", "unknown_payload_kind"),
    Case("unknown Codat status", Provider.codat, js(codat(status="Paused")), "unmapped_status",
         path="status", detail="Paused"),
    Case("unknown Zoho status", Provider.zoho_dataprep, js(zoho(execution_status=7)),
         "unmapped_status", path="pipelinerun.execution_status"),
    Case("unknown nuvo status", Provider.nuvo,
         js(fixture("nuvo", "processing") | {"status": "PAUSED"}), "unmapped_status",
         path="status"),
    Case("shared topic, no CloudEvents", None, js(krenalis()), "unknown_provider",
         path="topic"),
    Case("unknown CloudEvents type", None, js(krenalis()), "unknown_provider", path="ce_type",
         headers=ce(ce_type="com.example.unknown")),
    Case("CloudEvents without source", Provider.krenalis, js(krenalis()), "invalid_cloudevent",
         path="ce_source", headers=ce(ce_source="")),
    Case("CloudEvents specversion 0.3", Provider.krenalis, js(krenalis()),
         "invalid_cloudevent", path="ce_specversion", headers=ce(ce_specversion="0.3")),
    Case("CloudEvents header not UTF-8", Provider.krenalis, js(krenalis()),
         "invalid_cloudevent", path="ce_id", headers=(("ce_id", b"\xff\xfe"),)),
    Case("CloudEvents id of 10 000 chars", Provider.krenalis, js(krenalis()),
         "invalid_cloudevent", path="ce_id", headers=ce(ce_id="e" * 10_000)),
    Case("structured CloudEvent without data", Provider.krenalis,
         js({"specversion": "1.0", "id": "e1", "source": "/s", "type": "com.krenalis.x"}),
         "invalid_cloudevent", path="data",
         headers=(("content-type", b"application/cloudevents+json"),)),
    Case("timestamp before 1970", Provider.krenalis,
         js(krenalis(startTime="1969-12-31T23:59:59Z")), "invalid_payload", path="startTime",
         detail="outside 1970..2200"),
    Case("timestamp after 2200", Provider.codat, js(codat(requested="2301-01-01T00:00:00Z")),
         "invalid_payload", path="requested", detail="outside 1970..2200"),
    Case("epoch ms out of range", Provider.zoho_dataprep,
         js(zoho(created_time=99_999_999_999_999)), "invalid_payload",
         path="pipelinerun.created_time"),
    Case("empty id", Provider.krenalis, js(krenalis(id="")), "invalid_payload", path="id",
         detail="empty"),
    Case("id of 10 000 chars", Provider.krenalis, js(krenalis(id="r" * 10_000)),
         "invalid_payload", path="id", detail="10000 characters"),
    Case("Zoho JSON-in-string field broken", Provider.zoho_dataprep,
         js(zoho_broken_quality()), "invalid_payload", path="quality"),
    # found by tests/unit/test_fuzz.py: these used to raise out of prepare() and stop the worker
    Case("epoch ms past year 9999", Provider.codat,
         js(fixture("codat", "read_completed") | {"generatedDate": 253402300800000}),
         "invalid_payload", path="generatedDate", detail="out of range"),
    Case("eventType of the wrong type", Provider.codat,
         js(fixture("codat", "read_completed") | {"eventType": ["read.completed"]}),
         "unknown_payload_kind"),
    Case("Zoho API error report", Provider.zoho_dataprep,
         js(fixture("zoho_dataprep", "api_error")), "provider_api_error",
         path="response_status"),
    # issue 11: these validated, then PostgreSQL refused them and the worker crash-looped
    Case("NUL in a Krenalis id", Provider.krenalis, js(krenalis(id="k-\x00-nul")),
         "invalid_payload", path="id", detail="NUL"),
    Case("NUL in a Krenalis error", Provider.krenalis,
         js(fixture("krenalis", "failed_pipeline_error") | {"id": "k-nul-error",
                                                             "error": "boom\x00"}),
         "invalid_payload", path="error", detail="NUL"),
    Case("NUL in a webhook-id header", Provider.krenalis, js(krenalis()), "invalid_payload",
         path="webhook-id", detail="NUL", headers=(("webhook-id", b"wh-\x00"),)),
    Case("not JSON, with a NUL byte in a header", Provider.codat, b"not json",
         "not_json", headers=(("x-trace\x00", b"a\x00b"), ("x-ok", b"fine"))),
    Case("Zoho rerun_count 2147483647", Provider.zoho_dataprep,
         js(zoho(rerun_count=2147483647)), "invalid_payload", path="pipelinerun.rerun_count"),
    Case("Zoho rerun_count 10**12", Provider.zoho_dataprep, js(zoho(rerun_count=10**12)),
         "invalid_payload", path="pipelinerun.rerun_count"),
]  # fmt: skip


def valid(provider: Provider | None, n: int) -> tuple[Message, tuple[str, str]]:
    """A valid record for the topic and the run it makes."""
    if provider is None:
        document = krenalis(id=f"shared-valid-{n}")
        return Message(js(document), headers=ce()), ("krenalis", document["id"])
    if provider is Provider.codat:
        document = codat()
        return Message(js(document)), ("codat", document["id"])
    if provider is Provider.krenalis:
        document = krenalis(id=f"valid-{n}")
        return Message(js(document)), ("krenalis", document["id"])
    if provider is Provider.nuvo:
        document = copy.deepcopy(fixture("nuvo", "processing")) | {"id": f"valid-nuvo-{n}"}
        return Message(js(document)), ("nuvo", document["id"])
    document = zoho()
    return Message(js(document)), ("zoho_dataprep", document["pipelinerun"]["id"])


async def test_every_kind_of_bad_input_is_dead_lettered_and_the_rest_applied(
    services, database_url
) -> None:
    topics = unique_topics()
    shared = f"runs.shared.{uuid.uuid4().hex[:10]}"
    await create_topics(services.kafka_bootstrap, [*topics, shared])
    names = {p: topic_for(topics, p) for p in Provider} | {None: shared}

    # Each bad record sits between two valid ones on its own topic.
    outgoing: dict[str, list[Message]] = {topic: [] for topic in names.values()}
    where: dict[tuple[str, int], Case] = {}
    expected_runs: set[tuple[str, str]] = set()
    for n, case in enumerate(CASES):
        topic = names[case.provider]
        before, run_before = valid(case.provider, 2 * n)
        after, run_after = valid(case.provider, 2 * n + 1)
        outgoing[topic].append(before)
        where[(topic, len(outgoing[topic]))] = case
        outgoing[topic].append(Message(case.value, key=case.key, headers=case.headers))
        outgoing[topic].append(after)
        expected_runs |= {run_before, run_after}
    for topic, messages in outgoing.items():
        await produce(services.kafka_bootstrap, topic, messages)

    settings = worker_settings(services.kafka_bootstrap, database_url, topics)
    settings = settings.model_copy(
        update={
            "kafka": settings.kafka.model_copy(update={"shared_topics": [shared]}),
            "worker": settings.worker.model_copy(update={"max_payload_bytes": LIMIT}),
        }
    )
    metrics = Metrics()
    summary = await run_worker(settings, until_idle=True, metrics=metrics)  # never raises

    total = sum(len(messages) for messages in outgoing.values())
    assert summary.records == total
    assert summary.outcomes["dead_letter"] == len(CASES)
    assert summary.outcomes["applied"] == total - len(CASES)

    letters = await fetch(
        database_url,
        "SELECT source_topic, source_offset, provider, stage, reason, field_path, message,"
        " raw_value, value_size, value_sha256, value_truncated, headers FROM dead_letters",
    )
    found = {(row["source_topic"], row["source_offset"]): row for row in letters}
    assert found.keys() == where.keys()
    for position, case in where.items():
        row = found[position]
        assert row["reason"] == case.reason, (case.name, dict(row))
        assert case.path in row["field_path"], (case.name, row["field_path"])
        assert case.detail in row["message"], (case.name, row["message"])
        assert row["stage"], case.name
        if case.reason != "payload_too_large":
            assert row["raw_value"] == case.value, case.name  # kept verbatim
            assert not row["value_truncated"]
        if case.provider is None:
            assert row["provider"] is None
    big = next(found[p] for p, c in where.items() if c.reason == "payload_too_large")
    assert big["value_truncated"] is True
    assert big["value_size"] == len(OVERSIZED)
    assert big["value_sha256"] == hashlib.sha256(OVERSIZED).hexdigest()
    assert big["raw_value"] == OVERSIZED[:TRUNCATED_COPY_BYTES]
    assert big["stage"] == "decode"
    not_utf8_header = next(
        found[p] for p, c in where.items() if c.name == "CloudEvents header not UTF-8"
    )
    assert json.loads(not_utf8_header["headers"]) == [{"key": "ce_id", "hex": "fffe"}]
    nul_header = next(found[p] for p, c in where.items() if "NUL byte in a header" in c.name)
    assert json.loads(nul_header["headers"]) == [
        {"key_hex": b"x-trace\x00".hex(), "hex": "610062"},
        {"key": "x-ok", "value": "fine"},
    ]

    runs = await fetch(database_url, "SELECT provider, run_id FROM runs")
    assert {(r["provider"], r["run_id"]) for r in runs} == expected_runs

    offsets = await fetch(database_url, "SELECT topic, next_offset FROM consumer_offsets")
    assert {r["topic"]: r["next_offset"] for r in offsets} == {
        topic: len(messages) for topic, messages in outgoing.items()
    }

    counted = Counter[tuple[str, str]]()
    for metric in metrics.registry.collect():
        if metric.name == "pipestatus_dead_letters":
            for sample in metric.samples:
                if sample.name.endswith("_total"):
                    key = (sample.labels["provider"], sample.labels["reason"])
                    counted[key] += int(sample.value)
    expected = Counter(
        (case.provider.value if case.provider else "unknown", case.reason) for case in CASES
    )
    assert counted == expected
