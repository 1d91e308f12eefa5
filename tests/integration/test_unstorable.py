"""The database safety net (issue 11, item 2) on a real PostgreSQL.

The intake guard is bypassed on purpose: records are prepared normally, then one
observation is given a value PostgreSQL refuses (a NUL in text server-side, an attempt
beyond ``integer`` client-side). ``commit_batch`` must set exactly that record aside as
an ``unstorable`` dead letter and commit the others with the whole batch's offsets.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from pipestatus.adapters.postgres import PgStore
from pipestatus.intake import Accepted, InboundRecord, Prepared, Routing, prepare
from pipestatus.service import commit_batch
from pipestatus.settings import DEFAULT_CLOUDEVENTS_TYPES, DEFAULT_TOPICS
from tests.integration.db_tools import fetch

pytestmark = [pytest.mark.services]

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
ROUTING = Routing(topics=DEFAULT_TOPICS, cloudevents_type_prefixes=DEFAULT_CLOUDEVENTS_TYPES)
TOPIC = "runs.krenalis"


def item(offset: int) -> Accepted:
    document = json.loads((FIXTURES / "krenalis" / "running.json").read_text())
    document["id"] = f"run-{offset}"
    value = json.dumps(document).encode()
    prepared = prepare(InboundRecord(TOPIC, 0, offset, None, value), ROUTING)
    assert isinstance(prepared, Accepted)
    return prepared


def poisoned(accepted: Accepted, **changes: Any) -> Accepted:
    """``accepted`` with observation fields the intake would have refused."""
    observations = tuple(dataclasses.replace(o, **changes) for o in accepted.parsed.observations)
    parsed = dataclasses.replace(accepted.parsed, observations=observations)
    return dataclasses.replace(accepted, parsed=parsed)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"error_message": "boom\x00"}, "0x00"),  # server side: CharacterNotInRepertoire
        ({"attempt": 2**31}, "int32"),  # client side: asyncpg's codec refuses it
    ],
)
async def test_a_refused_record_is_dead_lettered_and_the_rest_committed(
    database_url: str, changes: dict[str, Any], message: str
) -> None:
    bad = {3, 9}
    items: list[Prepared] = [
        poisoned(item(n), **changes) if n in bad else item(n) for n in range(12)
    ]
    async with PgStore(database_url) as store:
        await store.migrate()
        report = await commit_batch(items, store=store, group_id="g")
    assert [(r.record.offset, r.reason) for r in report.results if r.reason] == [
        (3, "unstorable"),
        (9, "unstorable"),
    ]

    runs = await fetch(database_url, "SELECT run_id FROM runs")
    assert {r["run_id"] for r in runs} == {f"run-{n}" for n in range(12) if n not in bad}
    letters = await fetch(
        database_url, "SELECT source_offset, reason, stage, message, raw_value FROM dead_letters"
    )
    assert sorted(r["source_offset"] for r in letters) == sorted(bad)
    for row in letters:
        assert (row["reason"], row["stage"]) == ("unstorable", "store")
        assert message in row["message"], row["message"]
        assert row["raw_value"] == items[row["source_offset"]].record.value
    offsets = await fetch(
        database_url, "SELECT topic, partition, next_offset FROM consumer_offsets"
    )
    assert [tuple(r) for r in offsets] == [(TOPIC, 0, 12)]
    events = await fetch(database_url, "SELECT count(*) AS n FROM processed_events")
    assert events[0]["n"] == 12 - len(bad)
