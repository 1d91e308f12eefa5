"""Poison flood (issue 11): 10 000 poison records among a realistic workload, one worker.

Thirteen kinds of poison (not JSON, invalid payloads, NUL characters in strings and in
headers, a Zoho ``rerun_count`` beyond PostgreSQL's ``integer``, lone surrogates,
oversized values, …) are interleaved at random with the records of
``pipestatus_dev.world.generate`` on the providers' own topics, and drained by one real
``python -m pipestatus worker`` subprocess. Every valid run must end as the workload
expects, every poison record must be dead-lettered exactly once with its own reason and
field path, and the worker must keep running throughout.
"""

from __future__ import annotations

import hashlib
import random
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from pipestatus.domain.states import Provider
from pipestatus_dev.provision.services import TestServices
from pipestatus_dev.world import BenchRecord, generate
from tests.integration.fault_tools import (
    Progress,
    WorkerProcess,
    check_against_workload,
    full_snapshot,
    keyed_by_pipeline,
    produce_records,
    provider_topics,
    report,
    worker_env,
)
from tests.integration.kafka_tools import create_topics
from tests.integration.test_bad_input import codat, fixture, js, krenalis, without, zoho

pytestmark = [pytest.mark.services, pytest.mark.slow]

POISON = 10_000
VALID = 5_000
SEED = 20261111
PARTITIONS = 6
LIMIT = 64 * 1024  # PIPESTATUS_WORKER__MAX_PAYLOAD_BYTES: above every valid record

Headers = tuple[tuple[str, bytes], ...]


@dataclass(frozen=True)
class Kind:
    """One kind of poison: where it goes, what it must become, how to make the n-th one."""

    name: str
    provider: Provider
    reason: str
    path: str  # a substring of the dead letter's field path
    share: int  # records of this kind in the flood
    make: Callable[[int], tuple[bytes, Headers]]


def _failed_krenalis(n: int) -> dict[str, object]:
    return fixture("krenalis", "failed_pipeline_error") | {"id": f"k-err-{n}", "error": f"e\x00{n}"}


KINDS = [
    Kind("not JSON", Provider.codat, "not_json", "", 800,
         lambda n: (b"status=Complete&id=%d" % n, ())),
    Kind("truncated JSON", Provider.krenalis, "not_json", "", 800,
         lambda n: (js(krenalis(id=f"k-cut-{n}"))[: 30 + n % 60], ())),
    Kind("invalid UTF-8", Provider.nuvo, "not_json", "", 800,
         lambda n: (b'{"id": "\xff\xfe%d"}' % n, ())),
    Kind("wrong type", Provider.codat, "invalid_payload", "progress", 800,
         lambda n: (js(codat(progress=f"half-{n}")), ())),
    Kind("missing required field", Provider.krenalis, "invalid_payload", "startTime", 800,
         lambda n: (js(without(krenalis(id=f"k-nostart-{n}"), "startTime")), ())),
    Kind("NUL in an id", Provider.krenalis, "invalid_payload", "id", 800,
         lambda n: (js(krenalis(id=f"k-\x00-{n}")), ())),
    Kind("NUL in an error message", Provider.krenalis, "invalid_payload", "error", 800,
         lambda n: (js(_failed_krenalis(n)), ())),
    Kind("Zoho rerun_count 2147483648", Provider.zoho_dataprep, "invalid_payload",
         "pipelinerun.rerun_count", 800, lambda n: (js(zoho(rerun_count=2**31)), ())),
    Kind("lone surrogate", Provider.krenalis, "invalid_payload", "id", 800,
         lambda n: (js(krenalis(id=f"k-\ud800-{n}")), ())),
    Kind("NUL in a webhook-id header", Provider.krenalis, "invalid_payload", "webhook-id", 800,
         lambda n: (js(krenalis(id=f"k-wh-{n}")), (("webhook-id", b"wh-\x00%d" % n),))),
    Kind("not JSON, NUL bytes in a header", Provider.codat, "not_json", "", 800,
         lambda n: (b"not json %d" % n, (("x-trace\x00", b"a\x00%d" % n), ("x-ok", b"ok")))),
    Kind("unknown status", Provider.codat, "unmapped_status", "status", 800,
         lambda n: (js(codat(status="Paused")), ())),
    Kind("over the size limit", Provider.codat, "payload_too_large", "", 400,
         lambda n: (js(codat(statusDescription="x" * (LIMIT + n % 997))), ())),
]  # fmt: skip


def poison_records() -> tuple[list[BenchRecord], dict[str, Kind]]:
    """The flood in a random order, and each value's kind (by SHA-256)."""
    assert sum(kind.share for kind in KINDS) == POISON
    records, kinds = [], {}
    for kind in KINDS:
        for n in range(kind.share):
            value, headers = kind.make(n)
            kinds[hashlib.sha256(value).hexdigest()] = kind
            record = BenchRecord(kind.provider, f"poison-{n}".encode(), value, headers,
                                 "invalid", expected_reason=kind.reason)  # fmt: skip
            records.append(record)
    random.Random(SEED).shuffle(records)
    return records, kinds


def interleaved(
    valid: list[BenchRecord], poison: list[BenchRecord], rng: random.Random
) -> list[BenchRecord]:
    """Both lists merged at random, each keeping its own order."""
    merged, i, j = [], 0, 0
    while i < len(valid) or j < len(poison):
        left_valid, left_poison = len(valid) - i, len(poison) - j
        if rng.randrange(left_valid + left_poison) < left_valid:
            merged.append(valid[i])
            i += 1
        else:
            merged.append(poison[j])
            j += 1
    return merged


@pytest.mark.timeout(600)
async def test_ten_thousand_poison_records_are_each_dead_lettered_once_and_the_rest_applied(
    services: TestServices, database_url: str, tmp_path: Path
) -> None:
    workload = generate(VALID, SEED)
    poison, kind_of = poison_records()
    records = interleaved(keyed_by_pipeline(workload.records), poison, random.Random(SEED))
    assert max(len(r.value) for r in records if r.role != "invalid") < LIMIT
    topics = provider_topics("poison")
    await create_topics(services.kafka_bootstrap, topics.values(), PARTITIONS)
    await produce_records(services.kafka_bootstrap, topics, records)

    group = f"poison-{uuid.uuid4().hex[:8]}"
    env = worker_env(
        services.kafka_bootstrap,
        group,
        topics,
        database_url,
        PIPESTATUS_WORKER__MAX_PAYLOAD_BYTES=str(LIMIT),
    )
    worker = WorkerProcess(env, tmp_path / "worker.log").start()
    progress = Progress(database_url, group)
    try:
        await progress.wait_for(
            lambda n: n == len(records), worker=worker, within_s=300, what="the flood drained"
        )
        assert worker.returncode is None, worker.tail()  # it never stopped
        assert await worker.stop() == 0, worker.tail()
    finally:
        worker.ensure_dead()
        await progress.close()
    summary = worker.summary()
    bad = [r for r in records if r.role == "invalid"]  # the flood and the workload's own 1 %
    assert summary["records"] == len(records)
    assert summary["dead_letter"] == len(bad)

    state = await full_snapshot(database_url, topics)
    flood_reasons = sum((Counter({kind.reason: kind.share}) for kind in KINDS), Counter[str]())
    check_against_workload(workload, state, flood_reasons)  # every run as the workload expects
    assert len(state["events"]) == workload.summary()["original"]  # every valid event, once
    # Each bad value dead-lettered exactly as many times as it was produced, with its reason.
    expected = Counter((hashlib.sha256(r.value).hexdigest(), r.expected_reason) for r in bad)
    letters = state["dead_letters"]
    found = Counter((row["value_sha256"], row["reason"]) for row in letters)
    lost, duplicated = expected - found, found - expected
    assert found == expected, (sum(lost.values()), sum(duplicated.values()))
    kinds_found = Counter[str]()
    for row in letters:
        kind = kind_of.get(row["value_sha256"])
        if kind is not None:
            kinds_found[kind.name] += 1
            assert kind.path in row["field_path"], (kind.name, row["field_path"])
            assert row["message"], kind.name
    assert kinds_found == {kind.name: kind.share for kind in KINDS}
    header_kind = next(kind for kind in KINDS if kind.name == "not JSON, NUL bytes in a header")
    nul_headers = [
        row["headers"] for row in letters if kind_of.get(row["value_sha256"]) is header_kind
    ]
    assert len(nul_headers) == header_kind.share
    assert all(h[0]["key_hex"] == b"x-trace\x00".hex() for h in nul_headers), nul_headers[0]

    report(
        "poison_flood",
        records=len(records),
        valid_workload_records=VALID,
        poison=POISON,
        poison_by_kind=dict(kinds_found),
        dead_letters=len(letters),
        dead_letters_by_reason=dict(Counter(row["reason"] for row in letters)),
        runs=len(state["runs"]),
        event_identities=len(state["events"]),
        transitions=len(state["transitions"]),
        worker_summary={k: summary[k] for k in ("records", "applied", "duplicate", "dead_letter")},
        lost=sum(lost.values()),
        duplicated=sum(duplicated.values()),
    )
