"""The read API's SQL: keyset-paged lists, one query a page, each ordered by an index.

Filters are bound parameters that are NULL when unused (``$n IS NULL OR …``), so every
statement is one static string. Pages fetch one row more than asked to know whether a
next page exists; the cursor is the last row's sort key (``api_models.encode_cursor``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from pipestatus.adapters.postgres import PgStore, map_pg_errors
from pipestatus.adapters.queries import run_view, show_dead_letter, show_run
from pipestatus.api_models import (
    AlertStateView,
    AlertsView,
    BucketCount,
    DeadLetterDetail,
    DeadLetterPage,
    DeadLetterView,
    DeliveryView,
    PipelinePage,
    PipelineView,
    RunDetail,
    RunPage,
    StateCount,
    StatsView,
    decode_cursor,
    encode_cursor,
)
from pipestatus.domain.states import Provider, RunState
from pipestatus.service import text_storable

_LIST_RUNS = """
SELECT * FROM runs
WHERE ($1::text IS NULL OR provider = $1)
  AND (cardinality($2::text[]) = 0 OR state = ANY($2::text[]))
  AND ($3::text IS NULL OR pipeline_id = $3)
  AND ($4::timestamptz IS NULL OR updated_at >= $4)
  AND ($5::timestamptz IS NULL OR updated_at < $5)
  AND ($6::timestamptz IS NULL OR ended_at >= $6)
  AND ($7::timestamptz IS NULL OR ended_at < $7)
  AND ($8::bool IS NULL OR (warnings <> '[]'::jsonb) = $8)
  AND {after}
ORDER BY updated_at DESC, provider DESC, run_id DESC
LIMIT $12
"""
#: Two statements, not ``$9 IS NULL OR …``: a generic plan cannot start an index scan at
#: an optional bound, so a deep page would scan every row before its cursor.
_LIST_RUNS_FIRST = _LIST_RUNS.replace(
    "{after}", "$9::timestamptz IS NULL AND $10::text IS NULL AND $11::text IS NULL"
)
_LIST_RUNS_AFTER = _LIST_RUNS.replace(
    "{after}", "(updated_at, provider, run_id) < ($9::timestamptz, $10::text, $11::text)"
)
#: A loose index scan: the page's pipelines one index probe each (runs_pipeline_idx),
#: then each pipeline's figures from its own index range; never a scan of all runs.
_LIST_PIPELINES = """
WITH RECURSIVE keys AS (
    (SELECT provider, pipeline_id FROM runs
     WHERE ($1::text IS NULL OR provider = $1) AND {after}
     ORDER BY provider, pipeline_id
     LIMIT 1)
    UNION ALL
    SELECT following.provider, following.pipeline_id FROM keys
    CROSS JOIN LATERAL (
        SELECT r.provider, r.pipeline_id FROM runs r
        WHERE (r.provider, r.pipeline_id) > (keys.provider, keys.pipeline_id)
          AND ($1::text IS NULL OR r.provider = $1)
        ORDER BY r.provider, r.pipeline_id
        LIMIT 1
    ) AS following
), page AS (
    SELECT * FROM keys LIMIT $4
)
SELECT page.provider, page.pipeline_id, figures.runs, figures.last_success_at,
       figures.last_failure_at, latest.run_id AS latest_run_id, latest.state,
       latest.updated_at, latest.error_category, latest.error_message,
       (SELECT count(*) FROM runs f
        WHERE f.provider = page.provider AND f.pipeline_id = page.pipeline_id
          AND f.state = 'failed'
          AND COALESCE(f.ended_at, f.updated_at)
              > COALESCE(figures.last_success_at, '-infinity'::timestamptz)
       ) AS consecutive_failures
FROM page
CROSS JOIN LATERAL (
    SELECT count(*) AS runs,
           max(COALESCE(ended_at, updated_at)) FILTER (WHERE state = 'succeeded')
               AS last_success_at,
           max(COALESCE(ended_at, updated_at)) FILTER (WHERE state = 'failed')
               AS last_failure_at
    FROM runs a WHERE a.provider = page.provider AND a.pipeline_id = page.pipeline_id
) AS figures
CROSS JOIN LATERAL (
    SELECT run_id, state, updated_at, error_category, error_message FROM runs l
    WHERE l.provider = page.provider AND l.pipeline_id = page.pipeline_id
    ORDER BY updated_at DESC, run_id DESC
    LIMIT 1
) AS latest
ORDER BY page.provider, page.pipeline_id
"""
_LIST_PIPELINES_FIRST = _LIST_PIPELINES.replace("{after}", "$2::text IS NULL AND $3::text IS NULL")
_LIST_PIPELINES_AFTER = _LIST_PIPELINES.replace(
    "{after}", "(provider, pipeline_id) > ($2::text, $3::text)"
)
_LIST_DEAD_LETTERS = """
SELECT id, provider, source_topic, source_partition, source_offset, value_size, value_truncated,
       stage, reason, field_path, message, first_seen_at, replayed_at, replay_result
FROM dead_letters
WHERE ($1::text IS NULL OR reason = $1)
  AND ($2::text IS NULL OR provider = $2)
  AND ($3::text = 'all' OR ($3::text = 'open') = (replayed_at IS NULL))
  AND ($4::bigint IS NULL OR id < $4)
ORDER BY id DESC
LIMIT $5
"""
_ALERT_STATES = """
SELECT * FROM alert_state ORDER BY status = 'firing' DESC, updated_at DESC, dedup_key LIMIT $1
"""
_DELIVERIES = """
SELECT id, dedup_key, receiver, action, created_at, attempts, last_error, delivered_at,
       gave_up_at
FROM alert_outbox ORDER BY id DESC LIMIT $1
"""
_BY_PROVIDER_STATE = """
SELECT provider, state, count(*) AS count FROM runs GROUP BY provider, state
ORDER BY provider, state
"""
_BUCKETS = """
SELECT date_bin(make_interval(secs => $1::int), updated_at, TIMESTAMPTZ '2000-01-01 00:00Z')
           AS start,
       state, count(*) AS count
FROM runs
WHERE updated_at >= $2 AND updated_at < $3 AND ($4::text IS NULL OR provider = $4)
GROUP BY 1, 2
ORDER BY 1, 2
"""

DeadLetterStatus = Literal["open", "replayed", "all"]


def storable(*texts: str | None) -> bool:
    """Whether PostgreSQL can hold these texts. A filter that fails this matches no stored
    value, so it is answered without a query (PostgreSQL would refuse it)."""
    return all(text is None or text_storable(text) for text in texts)


@dataclass(frozen=True, slots=True)
class RunQuery:
    """``GET /runs``'s filters; ``since`` is inclusive, ``until`` exclusive."""

    provider: Provider | None = None
    states: Sequence[RunState] = field(default_factory=tuple)
    pipeline_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    ended_since: datetime | None = None
    ended_until: datetime | None = None
    warnings: bool | None = None
    cursor: str | None = None
    limit: int = 50


async def list_runs_page(store: PgStore, q: RunQuery) -> RunPage:
    after: tuple[Any, ...] = (None, None, None)
    if q.cursor is not None:
        after = decode_cursor("runs", q.cursor, (datetime, str, str))
    if not storable(q.pipeline_id, *after[1:]):
        return RunPage(items=[], next_cursor=None)
    with map_pg_errors():
        rows = await store.pool.fetch(
            _LIST_RUNS_FIRST if q.cursor is None else _LIST_RUNS_AFTER,
            q.provider.value if q.provider else None,
            [s.value for s in q.states],
            q.pipeline_id,
            q.since,
            q.until,
            q.ended_since,
            q.ended_until,
            q.warnings,
            *after,
            q.limit + 1,
        )
    page, more = rows[: q.limit], len(rows) > q.limit
    last = page[-1] if page else None
    cursor = (
        encode_cursor("runs", last["updated_at"], last["provider"], last["run_id"])
        if more and last is not None
        else None
    )
    return RunPage(items=[run_view(row) for row in page], next_cursor=cursor)


async def run_detail(store: PgStore, provider: Provider, run_id: str) -> RunDetail | None:
    if not storable(run_id):
        return None
    found = await show_run(store, provider.value, run_id)
    if found is None:
        return None
    run, transitions = found
    return RunDetail(run=run, transitions=transitions)


async def list_pipelines(
    store: PgStore, *, provider: Provider | None, cursor: str | None, limit: int
) -> PipelinePage:
    after: tuple[Any, ...] = (None, None)
    if cursor is not None:
        after = decode_cursor("pipelines", cursor, (str, str))
    if not storable(*after):
        return PipelinePage(items=[], next_cursor=None)
    with map_pg_errors():
        rows = await store.pool.fetch(
            _LIST_PIPELINES_FIRST if cursor is None else _LIST_PIPELINES_AFTER,
            provider.value if provider else None,
            *after,
            limit + 1,
        )
    page, more = rows[:limit], len(rows) > limit
    items = [PipelineView.model_validate(dict(row)) for row in page]
    last = items[-1] if items else None
    next_cursor = (
        encode_cursor("pipelines", last.provider.value, last.pipeline_id)
        if more and last is not None
        else None
    )
    return PipelinePage(items=items, next_cursor=next_cursor)


async def list_dead_letters_page(
    store: PgStore,
    *,
    reason: str | None,
    provider: Provider | None,
    status: DeadLetterStatus,
    cursor: str | None,
    limit: int,
) -> DeadLetterPage:
    before: int | None = None
    if cursor is not None:
        (before,) = decode_cursor("dead-letters", cursor, (int,))
    if not storable(reason):
        return DeadLetterPage(items=[], next_cursor=None)
    with map_pg_errors():
        rows = await store.pool.fetch(
            _LIST_DEAD_LETTERS,
            reason,
            provider.value if provider else None,
            status,
            before,
            limit + 1,
        )
    page, more = rows[:limit], len(rows) > limit
    items = [DeadLetterView.model_validate(dict(row)) for row in page]
    next_cursor = encode_cursor("dead-letters", items[-1].id) if more and items else None
    return DeadLetterPage(items=items, next_cursor=next_cursor)


async def dead_letter_detail(store: PgStore, letter_id: int) -> DeadLetterDetail | None:
    letter = await show_dead_letter(store, letter_id)
    return None if letter is None else DeadLetterDetail.model_validate(letter)


async def alerts(store: PgStore, *, limit: int) -> AlertsView:
    with map_pg_errors():
        states = await store.pool.fetch(_ALERT_STATES, limit)
        deliveries = await store.pool.fetch(_DELIVERIES, limit)
    return AlertsView(
        states=[
            AlertStateView.model_validate(
                dict(row) | {key: json.loads(row[key]) for key in ("labels", "annotations")}
            )
            for row in states
        ],
        deliveries=[DeliveryView.model_validate(dict(row)) for row in deliveries],
    )


async def stats(
    store: PgStore,
    *,
    interval_s: int,
    since: datetime,
    until: datetime,
    provider: Provider | None,
) -> StatsView:
    with map_pg_errors():
        totals = await store.pool.fetch(_BY_PROVIDER_STATE)
        buckets = await store.pool.fetch(
            _BUCKETS, interval_s, since, until, provider.value if provider else None
        )
    return StatsView(
        by_provider_state=[StateCount.model_validate(dict(row)) for row in totals],
        interval_s=interval_s,
        since=since,
        until=until,
        buckets=[BucketCount.model_validate(dict(row)) for row in buckets],
    )
