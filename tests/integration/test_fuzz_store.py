"""Fuzzing through the database (issue 11): hypothesis batches of mutated fixtures laced
with NUL, huge integers, long strings and odd Unicode go through ``prepare`` and
``commit_batch`` on a real PostgreSQL. The batch always commits and every record is
accounted for: applied or duplicate, or exactly one dead letter at its offset."""

from __future__ import annotations

import asyncio
import copy
import json
import uuid

import pytest
from hypothesis import HealthCheck, event, given, settings, strategies as st

from pipestatus.adapters.postgres import PgStore
from pipestatus.domain.batch import Outcome
from pipestatus.intake import InboundRecord, Routing, prepare
from pipestatus.service import commit_batch
from pipestatus.settings import DEFAULT_CLOUDEVENTS_TYPES, DEFAULT_TOPICS
from tests.integration.db_tools import fetch
from tests.unit.test_fuzz import DOCUMENTS, draw_spot

pytestmark = [pytest.mark.services]

ROUTING = Routing(topics=DEFAULT_TOPICS, cloudevents_type_prefixes=DEFAULT_CLOUDEVENTS_TYPES)
ODD = st.sampled_from(
    ["\x00", "a\x00b", "\ud800", "\udfff", "x" * 5000, "\u202e\u0301", "\U0001f4a9", "",
     2**31 - 1, 2**31, -(2**31) - 1, 10**12, 2**63, 10**40, -1, 1e308, None, True]
)  # fmt: skip
headers = st.lists(
    st.tuples(
        st.sampled_from(["webhook-id", "ce_id", "x-trace", "na\x00me"]), st.binary(max_size=8)
    ),
    max_size=2,
).map(tuple)


@st.composite
def laced_fixture(draw: st.DrawFn) -> tuple[str, bytes, tuple[tuple[str, bytes], ...]]:
    topic, original = draw(st.sampled_from(DOCUMENTS))
    document = copy.deepcopy(original)
    for _ in range(draw(st.integers(0, 3))):
        spot = draw_spot(draw, document)
        if spot is not None:
            parent, key = spot
            parent[key] = draw(ODD)
    return topic, json.dumps(document).encode(), draw(headers)


@settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(batch=st.lists(laced_fixture(), min_size=1, max_size=8))
def test_every_batch_commits_and_every_record_is_accounted_for(
    database_url: str, batch: list[tuple[str, bytes, tuple[tuple[str, bytes], ...]]]
) -> None:
    asyncio.run(_check(database_url, batch))


async def _check(url: str, batch: list[tuple[str, bytes, tuple[tuple[str, bytes], ...]]]) -> None:
    suffix = uuid.uuid4().hex[:8]
    records = [
        # every record on its own partition of its provider's topic, made unique per example
        InboundRecord(topic, n, 0, None, value, hdrs)
        for n, (topic, value, hdrs) in enumerate(batch)
    ]
    prepared = [prepare(r, ROUTING) for r in records]
    group = f"fuzz-{suffix}"
    async with PgStore(url) as store:
        await store.migrate()
        await store.pool.execute("TRUNCATE dead_letters")  # offsets repeat across examples
        report = await commit_batch(prepared, store=store, group_id=group)
    assert [r.record for r in report.results] == records
    for result in report.results:
        event(f"{result.outcome.value} {result.reason or ''}".strip())
    letters = await fetch(url, "SELECT source_topic, source_partition FROM dead_letters")
    dead = {(r.record.topic, r.record.partition) for r in report.results
            if r.outcome is Outcome.dead_letter}  # fmt: skip
    assert {(r["source_topic"], r["source_partition"]) for r in letters} == dead
    offsets = await fetch(
        url, "SELECT topic, partition, next_offset FROM consumer_offsets WHERE group_id = $1", group
    )
    assert {(r["topic"], r["partition"]): r["next_offset"] for r in offsets} == {
        (r.topic, r.partition): 1 for r in records
    }
