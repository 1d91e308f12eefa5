"""Records from a librdkafka producer (confluent-kafka) become runs exactly like aiokafka's.

Issue 13: most producers outside the JVM are built on librdkafka, whose partitioner,
header encoding and record batches differ from aiokafka's (the tests' usual producer). The
same events (plain JSON keyed by run id, CloudEvents binary mode unkeyed on a shared topic,
structured mode keyed, and the Standard Webhooks records the ingress publishes) go through
both clients to topics of their own and are drained into a database each: the databases must
be equal, the runs what the fixtures say, and a redelivery through librdkafka must change
nothing.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import confluent_kafka
import pytest

from pipestatus.app import WorkerSummary, run_worker
from pipestatus.domain.identity import event_identity
from pipestatus.domain.states import Provider
from pipestatus.settings import Settings
from tests.integration.db_tools import snapshot
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

#: librdkafka logs to stderr unless it has a logger; through this one its lines reach
#: pytest's log capture (shown only when a test fails) instead of the terminal.
LIBRDKAFKA_LOG = logging.getLogger("tests.librdkafka")

CODAT_WEBHOOKS = "https://webhooks.example.com/codat"
POLLERS = "https://pollers.example.com"

# Runs the events below must leave, worked out from the fixtures by hand.
PULL_ID = "c0a9e3d7-4b1f-4c62-9e85-2f7d6a1b3c90"
KRENALIS_RUNNING = "7Hq3ZpV1sRtN"
KRENALIS_FAILED = "6Dq2VmXc9LtR"
ZOHO_RUN = "1830000000456001"
NUVO_RUN = "6690f1c2a7b4e90012ab34ff"
READ_ID = "5b1f3c2e-8d7a-4e61-9c0b-2a4d6e8f1a37"
INITIAL_ID = "9e4c2a18-3b7d-4f05-8a6e-d1c0b5f27e93"
DATASET_ID = "1e6b8d20-7a3c-4f95-8c01-b4d2e9f7a356"
# Codat connections in read_completed (XERO, BANK_*) and read_completed_initial (NORTHWIND)
XERO = "a7c4e210-3f9b-4d1e-8b52-6e0f9d2c4b18"
BANK_1 = "e91d0b37-6a2c-4f58-9d13-b07c4a5e8f26"
BANK_2 = "4c8a1f06-2d7e-4b93-a5f0-19e6d3b7c842"
NORTHWIND = "2f6d8b41-9c0e-4a75-b3d2-7e1a5c09f4b6"
EXPECTED_RUNS = {
    ("codat", PULL_ID): ("succeeded", 1),
    ("codat", DATASET_ID): ("succeeded", 1),
    ("codat", f"{READ_ID}:{XERO}:invoices"): ("succeeded", 1),
    ("codat", f"{READ_ID}:{XERO}:customers"): ("succeeded", 1),
    ("codat", f"{READ_ID}:{XERO}:bills"): ("failed", 1),
    ("codat", f"{READ_ID}:{BANK_1}:banking-accounts"): ("skipped", 1),
    ("codat", f"{READ_ID}:{BANK_2}:banking-accounts"): ("succeeded", 1),
    ("codat", f"{INITIAL_ID}:{NORTHWIND}:chartOfAccounts"): ("succeeded", 1),
    ("codat", f"{INITIAL_ID}:{NORTHWIND}:journalEntries"): ("failed", 1),
    ("krenalis", KRENALIS_RUNNING): ("succeeded", 1),
    ("krenalis", KRENALIS_FAILED): ("failed", 1),
    ("nuvo", NUVO_RUN): ("succeeded", 2),
    ("zoho_dataprep", ZOHO_RUN): ("failed", 1),
}
#: The runs with more than one event: their transitions, in order.
EXPECTED_MOVES = {
    ("codat", PULL_ID): [
        (None, "queued", "Queued", 1),
        ("queued", "running", "Fetching", 1),
        ("running", "succeeded", None, 1),
    ],
    ("krenalis", KRENALIS_RUNNING): [(None, "running", None, 1), ("running", "succeeded", None, 1)],
    ("nuvo", NUVO_RUN): [(None, "failed", None, 1), ("failed", "succeeded", None, 2)],
}


@dataclass(frozen=True)
class Event:
    """One record to publish: to its provider's topic, or (``shared``) to the shared topic."""

    provider: Provider
    message: Message
    shared: bool = False
    #: the identity pipestatus must give it; None: the digest of the payload
    identity: str | None = None


@dataclass(frozen=True)
class Topics:
    providers: dict[str, Provider]
    shared: str

    def of(self, event: Event) -> str:
        return self.shared if event.shared else topic_for(self.providers, event.provider)


def raw(provider: str, name: str) -> bytes:
    """A fixture's bytes as the provider sent them (not re-serialized)."""
    return (FIXTURES / provider / f"{name}.json").read_bytes()


def document(provider: str, name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(raw(provider, name))
    return loaded


def plain(provider: Provider, payload: dict[str, Any], key: str) -> Event:
    """(a) The provider's JSON, no CloudEvents, keyed by run id: identity is the digest."""
    return Event(provider, Message(json.dumps(payload).encode(), key=key.encode()))


def binary(provider: Provider, value: bytes, ce_type: str, ce_id: str, source: str) -> Event:
    """(b) CloudEvents binary mode on the shared topic, unkeyed."""
    headers = ce_headers(ce_type, ce_id, source)
    return Event(
        provider, Message(value, headers=headers), shared=True, identity=f"ce:{source}#{ce_id}"
    )


def structured(
    provider: Provider, payload: dict[str, Any], ce_type: str, ce_id: str, key: str, *, shared: bool
) -> Event:
    """(c) CloudEvents structured mode, keyed: the envelope in the value, the payload in data."""
    source = f"{POLLERS}/{provider.value}"
    envelope = {
        "specversion": "1.0",
        "id": ce_id,
        "source": source,
        "type": ce_type,
        "time": "2026-07-14T09:31:04Z",
        "datacontenttype": "application/json",
        "data": payload,
    }
    message = Message(
        json.dumps(envelope).encode(),
        key=key.encode(),
        headers=(("content-type", b"application/cloudevents+json"),),
    )
    return Event(provider, message, shared=shared, identity=f"ce:{source}#{ce_id}")


def standard_webhook(name: str, ce_type: str, webhook_id: str, key: str) -> Event:
    """What the ingress publishes for a verified Codat (Svix) delivery: the raw body, the
    Standard Webhooks id and timestamp, and binary CloudEvents attributes with
    ``ce_id`` = ``webhook-id``, keyed, on the provider's topic."""
    headers = (
        ("webhook-id", webhook_id.encode()),
        ("webhook-timestamp", b"1784021464"),
        *ce_headers(ce_type, webhook_id, CODAT_WEBHOOKS),
    )
    message = Message(raw("codat", name), key=key.encode(), headers=headers)
    return Event(Provider.codat, message, identity=f"ce:{CODAT_WEBHOOKS}#{webhook_id}")


def ce_headers(ce_type: str, ce_id: str, source: str) -> tuple[tuple[str, bytes], ...]:
    """Binary-mode attributes, and the content type of the provider payload in the value."""
    return (
        ("ce_specversion", b"1.0"),
        ("ce_id", ce_id.encode()),
        ("ce_source", source.encode()),
        ("ce_type", ce_type.encode()),
        ("ce_time", b"2026-07-14T09:31:04Z"),
        ("content-type", b"application/json"),
    )


def codat_pull(status: str) -> dict[str, Any]:
    pull = document("codat", "pull_operation") | {"status": status, "isCompleted": False}
    if status != "Complete":
        del pull["completed"]
    else:
        pull["isCompleted"] = True
    return pull


def events() -> list[Event]:
    """Every producer style, some runs with several events (in order on one partition)."""
    krenalis_running = document("krenalis", "running") | {"id": KRENALIS_RUNNING}
    krenalis_ended = document("krenalis", "succeeded_with_warnings") | {"id": KRENALIS_RUNNING}
    return [
        *(
            plain(Provider.codat, codat_pull(s), PULL_ID)
            for s in ("Queued", "Fetching", "Complete")
        ),
        plain(Provider.krenalis, krenalis_running, KRENALIS_RUNNING),
        plain(Provider.krenalis, krenalis_ended, KRENALIS_RUNNING),
        binary(
            Provider.codat,
            raw("codat", "read_completed"),
            "io.codat.read.completed",
            "msg_2pQ8vZ3kXyR1tN0bW6mE4aJ7cLd",
            CODAT_WEBHOOKS,
        ),
        binary(
            Provider.zoho_dataprep,
            raw("zoho_dataprep", "compact_failed_at_load"),
            "com.zoho.dataprep.pipelinerun.summary",
            f"{ZOHO_RUN}:1767261725000",
            f"{POLLERS}/zoho-dataprep",
        ),
        *(
            structured(
                Provider.nuvo,
                document("nuvo", name),
                "com.getnuvo.execution",
                f"{NUVO_RUN}:{name}",
                NUVO_RUN,
                shared=False,
            )
            for name in ("failed", "fixed_after_failure")
        ),
        structured(
            Provider.krenalis,
            document("krenalis", "failed_pipeline_error"),
            "com.krenalis.pipeline.run",
            f"{KRENALIS_FAILED}:ended",
            KRENALIS_FAILED,
            shared=True,
        ),
        standard_webhook(
            "legacy_sync_completed",
            "io.codat.data-sync.completed",
            "msg_2pQ8wA4lYzS2uO1cX7nF5bK8dMe",
            DATASET_ID,
        ),
        standard_webhook(
            "read_completed_initial",
            "io.codat.read.completed.initial",
            "msg_2pQ8xB5mZaT3vP2dY8oG6cL9eNf",
            NORTHWIND,
        ),
    ]


class LibrdkafkaDeliveryError(AssertionError):
    """A record librdkafka did not deliver, or an error the client reported."""


def publish_with_librdkafka(
    bootstrap: str, records: Sequence[tuple[str, Message]], *, message_timeout_ms: int = 30_000
) -> list[Any]:
    """Publishes through confluent-kafka (acks=all), flushes, closes, and raises unless the
    broker acknowledged every record and the client's threads are gone. Returns the
    delivered messages, in delivery order."""
    delivered: list[Any] = []
    failures: list[str] = []

    def on_delivery(error: confluent_kafka.KafkaError | None, message: Any) -> None:
        if error is not None:
            failures.append(f"{message.topic()}[{message.partition()}]: {error}")
        else:
            delivered.append(message)

    producer = confluent_kafka.Producer(
        {
            "bootstrap.servers": bootstrap,
            "acks": "all",
            # Tansu grants no producer ids (docs/notes-embedded.md); pipestatus needs no
            # idempotent producer anyway: duplicates collapse on the event identity.
            "enable.idempotence": False,
            "linger.ms": 5,
            "message.timeout.ms": message_timeout_ms,
            "error_cb": lambda error: failures.append(f"client error: {error}"),
            "logger": LIBRDKAFKA_LOG,
        }
    )
    try:
        for topic, message in records:
            producer.produce(
                topic,
                message.value,
                message.key,
                partition=-1 if message.partition is None else message.partition,
                on_delivery=on_delivery,
                headers=list(message.headers),
            )
            producer.poll(0)
        unsent = producer.flush(60)
    finally:
        producer.close()
    if failures or unsent or len(delivered) != len(records):
        raise LibrdkafkaDeliveryError(
            f"{len(delivered)}/{len(records)} records delivered, {unsent} unsent: {failures}"
        )
    assert librdkafka_threads() == [], "librdkafka threads outlived Producer.close()"
    return delivered


def librdkafka_threads() -> list[str]:
    """The names of this process's librdkafka threads (``rdk:main``, ``rdk:broker…``)."""
    names = []
    for task in os.listdir("/proc/self/task"):
        try:
            names.append(Path(f"/proc/self/task/{task}/comm").read_text().strip())
        except FileNotFoundError:  # the thread ended while we looked
            continue
    return [name for name in names if name.startswith("rdk:")]


async def new_topics(bootstrap: str) -> Topics:
    """Provider topics with 3 partitions (keys decide); one shared topic with 1 partition, so
    the unkeyed records of a run keep their order as with a keyed producer."""
    topics = Topics(unique_topics(), f"runs.shared.{uuid.uuid4().hex[:10]}")
    await create_topics(bootstrap, topics.providers, partitions=3)
    await create_topics(bootstrap, [topics.shared], partitions=1)
    return topics


def settings_for(services: Any, database_url: str, topics: Topics) -> Settings:
    settings = worker_settings(services.kafka_bootstrap, database_url, topics.providers)
    return settings.model_copy(
        update={"kafka": settings.kafka.model_copy(update={"shared_topics": [topics.shared]})}
    )


def addressed(topics: Topics, outgoing: Sequence[Event]) -> list[tuple[str, Message]]:
    return [(topics.of(event), event.message) for event in outgoing]


async def publish_by_aiokafka(bootstrap: str, topics: Topics, outgoing: Sequence[Event]) -> None:
    """The existing way: kafka_tools.produce, one topic at a time, in the events' order."""
    for topic in dict.fromkeys(topics.of(event) for event in outgoing):
        await produce(bootstrap, topic, [e.message for e in outgoing if topics.of(e) == topic])


def without_source(state: dict[str, Any]) -> dict[str, Any]:
    """A snapshot without where each record sat (topic names and partitioning differ)."""
    source = {"source_topic", "source_partition", "source_offset"}
    transitions = [{k: v for k, v in t.items() if k not in source} for t in state["transitions"]]
    return state | {"transitions": transitions}


def assert_expected_runs(state: dict[str, Any], outgoing: Sequence[Event]) -> None:
    runs = {(r["provider"], r["run_id"]): (r["state"], r["attempt"]) for r in state["runs"]}
    assert runs == EXPECTED_RUNS
    moves: dict[tuple[str, str], list[tuple[Any, ...]]] = {}
    for t in state["transitions"]:
        moves.setdefault((t["provider"], t["run_id"]), []).append(
            (t["from_state"], t["to_state"], t["to_phase"], t["attempt"])
        )
    assert {run: moves[run] for run in EXPECTED_MOVES} == EXPECTED_MOVES
    assert all(len(m) == 1 for run, m in moves.items() if run not in EXPECTED_MOVES)
    assert state["dead_letters"] == []
    assert state["events"] == len(outgoing)
    identities = {
        event.identity
        or event_identity(
            provider=event.provider.value, document=json.loads(event.message.value or b"")
        )
        for event in outgoing
    }
    assert {t["event_id"] for t in state["transitions"]} == identities


def assert_all_applied(summary: WorkerSummary, outgoing: Sequence[Event]) -> None:
    assert summary.records == len(outgoing)
    assert summary.outcomes == {"applied": len(outgoing)}


async def test_librdkafka_records_become_the_runs_aiokafka_records_become(
    services, database_url, second_database_url
) -> None:
    """Plain, binary, structured and Standard Webhooks records: the same database either way."""
    outgoing = events()
    by_aiokafka = await new_topics(services.kafka_bootstrap)
    by_librdkafka = await new_topics(services.kafka_bootstrap)
    await publish_by_aiokafka(services.kafka_bootstrap, by_aiokafka, outgoing)
    delivered = await asyncio.to_thread(
        publish_with_librdkafka, services.kafka_bootstrap, addressed(by_librdkafka, outgoing)
    )
    # Delivery reports come per partition, and without headers (the identities asserted
    # below come from the headers, so the worker proves those arrived).
    assert Counter((m.key(), m.value()) for m in delivered) == Counter(
        (e.message.key, e.message.value) for e in outgoing
    )

    baseline, summary = await asyncio.gather(
        run_worker(settings_for(services, database_url, by_aiokafka), until_idle=True),
        run_worker(settings_for(services, second_database_url, by_librdkafka), until_idle=True),
    )

    assert_all_applied(baseline, outgoing)
    assert_all_applied(summary, outgoing)
    expected = await snapshot(database_url)
    found = await snapshot(second_database_url)
    assert without_source(found) == without_source(expected)
    assert_expected_runs(found, outgoing)
    partitions: dict[tuple[str, str], set[int]] = {}
    for t in found["transitions"]:
        partitions.setdefault((t["provider"], t["run_id"]), set()).add(t["source_partition"])
    assert all(len(p) == 1 for p in partitions.values()), "a keyed run was split"


async def test_redelivery_through_librdkafka_has_no_second_effect(services, database_url) -> None:
    """Every record published again (a producer retry, a replayed ingress): all duplicates."""
    outgoing = events()
    topics = await new_topics(services.kafka_bootstrap)
    records = addressed(topics, outgoing)
    await asyncio.to_thread(publish_with_librdkafka, services.kafka_bootstrap, records)
    first_drain = await run_worker(settings_for(services, database_url, topics), until_idle=True)
    assert_all_applied(first_drain, outgoing)
    first = await snapshot(database_url)

    await asyncio.to_thread(publish_with_librdkafka, services.kafka_bootstrap, records)
    # A new group reads both copies; the same group would wait ~13 s for the first worker's
    # ghost membership on Tansu (docs/notes-embedded.md). Identities do not depend on groups.
    again = await run_worker(settings_for(services, database_url, topics), until_idle=True)

    assert again.records == 2 * len(outgoing)
    assert again.outcomes == {"duplicate": 2 * len(outgoing)}
    assert again.transitions == 0
    assert await snapshot(database_url) == first
    assert_expected_runs(first, outgoing)


async def test_librdkafka_fails_loudly_stays_quiet_and_leaves_no_threads(services, capfd) -> None:
    """A record the broker refuses, or a broker that is not there, raises; librdkafka's
    complaints go to the log capture, not stderr; no client thread outlives its producer."""
    topics = await new_topics(services.kafka_bootstrap)
    assert librdkafka_threads() == []
    good = (topics.shared, Message(b"{}"))
    no_such_partition = (topics.shared, Message(b"{}", partition=7))
    with socket.socket() as closed:  # bound, never listening: connections are refused
        closed.bind(("127.0.0.1", 0))
        nobody = f"127.0.0.1:{closed.getsockname()[1]}"

        with pytest.raises(LibrdkafkaDeliveryError, match=r"1/2 .*Unknown partition"):
            await asyncio.to_thread(
                publish_with_librdkafka, services.kafka_bootstrap, [good, no_such_partition]
            )
        with pytest.raises(LibrdkafkaDeliveryError, match=r"0/1 .*(timed out|Connection refused)"):
            await asyncio.to_thread(
                publish_with_librdkafka, nobody, [good], message_timeout_ms=1500
            )

    assert librdkafka_threads() == []
    assert "rdkafka#producer" not in capfd.readouterr().err
