"""The read API's list queries at size: keyset pages against ``OFFSET`` pages (issue 15).

Loads a synthetic history straight into PostgreSQL (``--runs`` runs, ``--transitions``
per run, spread over four providers, eight states and 5 000 pipelines), then times the
API's own query (``adapters/api_queries.list_runs_page``) for the first and the
hundredth page of each main filter, against the same query paged with ``OFFSET`` as the
baseline, in the same run; and the pipelines list (keyset only). Embedded PostgreSQL
unless PIPESTATUS_BENCH_DATABASE_URL names one.

    python -m pipestatus_dev.bench.api_queries --runs 1000000 --transitions 5
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from functools import partial
from typing import Any

from pipestatus.adapters.api_queries import RunQuery, list_pipelines, list_runs_page
from pipestatus.adapters.postgres import PgStore
from pipestatus.adapters.queries import run_view
from pipestatus.domain.states import Provider, RunState
from pipestatus.views import RunView
from pipestatus_dev.provision.databases import temporary_database
from pipestatus_dev.provision.services import TestServices

DATABASE_ENV = "PIPESTATUS_BENCH_DATABASE_URL"
PAGE = 50
DEEP = 100  # the hundredth page

_LOAD_RUNS = """
INSERT INTO runs (provider, run_id, pipeline_id, attempt, state, kind, event_id,
                  error_category, error_message, started_at, ended_at,
                  created_at, updated_at, progressed_at)
SELECT (ARRAY['zoho_dataprep','krenalis','codat','nuvo'])[1 + i % 4],
       'run-' || i, 'pipeline-' || (i % 5000), 1, s.state, 'bench', 'event-' || i,
       CASE WHEN s.state = 'failed' THEN 'internal' END,
       CASE WHEN s.state = 'failed' THEN 'synthetic failure' END,
       t.at - interval '5 minutes',
       CASE WHEN s.state NOT IN ('queued', 'running') THEN t.at END,
       t.at, t.at, t.at
FROM generate_series($1::bigint, $2::bigint) AS i
CROSS JOIN LATERAL (SELECT timestamptz '2026-01-01 00:00Z' + i * interval '1 second' AS at) AS t
CROSS JOIN LATERAL (SELECT (ARRAY['succeeded','succeeded','succeeded','running','failed',
                                  'queued','cancelled','skipped'])[1 + (i * 7) % 8] AS state) AS s
"""
_LOAD_TRANSITIONS = """
INSERT INTO run_transitions (provider, run_id, pipeline_id, from_state, to_state, attempt,
                             event_id, recorded_at)
SELECT provider, run_id, pipeline_id, NULL, state, 1, event_id || '-' || n,
       updated_at - (n || ' seconds')::interval
FROM runs CROSS JOIN generate_series(1, $1::int) AS n
"""
#: The API's query with OFFSET paging instead of the cursor: the baseline.
_OFFSET_RUNS = """
SELECT * FROM runs
WHERE ($1::text IS NULL OR provider = $1)
  AND (cardinality($2::text[]) = 0 OR state = ANY($2::text[]))
ORDER BY updated_at DESC, provider DESC, run_id DESC
LIMIT $3 OFFSET $4
"""

FILTERS: dict[str, RunQuery] = {
    "all runs": RunQuery(limit=PAGE),
    "state=failed": RunQuery(states=(RunState.failed,), limit=PAGE),
    "provider=codat": RunQuery(provider=Provider.codat, limit=PAGE),
}


def _say(text: str) -> None:
    print(f"==> {text}", file=sys.stderr, flush=True)


async def _load(store: PgStore, runs: int, transitions: int) -> None:
    step = 200_000
    for start in range(1, runs + 1, step):
        await store.pool.execute(_LOAD_RUNS, start, min(runs, start + step - 1))
        _say(f"{min(runs, start + step - 1)} runs")
    if transitions:
        await store.pool.execute(_LOAD_TRANSITIONS, transitions, timeout=3600)
        _say(f"{runs * transitions} transitions")
    await store.pool.execute("VACUUM ANALYZE runs", timeout=3600)
    await store.pool.execute("VACUUM ANALYZE run_transitions", timeout=3600)


async def _offset_page(
    store: PgStore, provider: str | None, states: list[str], page: int
) -> list[RunView]:
    """The baseline: the same rows by ``OFFSET``, turned into the same views."""
    rows = await store.pool.fetch(_OFFSET_RUNS, provider, states, PAGE, (page - 1) * PAGE)
    return [run_view(row) for row in rows]


async def _timed(call: Callable[[], Awaitable[Any]], repeat: int) -> dict[str, float]:
    await call()  # warm: plan and cache
    samples = []
    for _ in range(repeat):
        began = time.perf_counter()
        await call()
        samples.append((time.perf_counter() - began) * 1000)
    samples.sort()
    return {
        "p50_ms": round(statistics.median(samples), 2),
        "p99_ms": round(samples[min(len(samples) - 1, int(len(samples) * 0.99))], 2),
    }


async def _measure(store: PgStore, repeat: int) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for name, query in FILTERS.items():
        cursor = None
        for _ in range(DEEP - 1):  # walk to the hundredth page's cursor
            cursor = (await list_runs_page(store, replace(query, cursor=cursor))).next_cursor
        deep = replace(query, cursor=cursor)
        provider = query.provider.value if query.provider else None
        states = [s.value for s in query.states]

        keyset_first = await _timed(partial(list_runs_page, store, query), repeat)
        keyset_deep = await _timed(partial(list_runs_page, store, deep), repeat)
        offset_first = await _timed(partial(_offset_page, store, provider, states, 1), repeat)
        offset_deep = await _timed(partial(_offset_page, store, provider, states, DEEP), repeat)
        results[name] = {
            "keyset page 1": keyset_first,
            f"keyset page {DEEP}": keyset_deep,
            "OFFSET page 1": offset_first,
            f"OFFSET page {DEEP}": offset_deep,
        }
        _say(f"{name}: {json.dumps(results[name])}")
    cursor = None
    for _ in range(DEEP - 1):
        cursor = (await list_pipelines(store, provider=None, cursor=cursor, limit=PAGE)).next_cursor
    results["pipelines"] = {
        "keyset page 1": await _timed(partial(_pipelines, store, None), repeat),
        f"keyset page {DEEP}": await _timed(partial(_pipelines, store, cursor), repeat),
    }
    _say(f"pipelines: {json.dumps(results['pipelines'])}")
    return results


async def _pipelines(store: PgStore, cursor: str | None) -> Any:
    return await list_pipelines(store, provider=None, cursor=cursor, limit=PAGE)


async def _bench(url: str, runs: int, transitions: int, repeat: int) -> dict[str, Any]:
    async with PgStore(url, max_size=2) as store:
        await store.migrate()
        began = time.monotonic()
        await _load(store, runs, transitions)
        loaded_s = time.monotonic() - began
        counted = await store.pool.fetchval("SELECT count(*) FROM run_transitions")
        return {
            "runs": runs,
            "transitions": counted,
            "load_seconds": round(loaded_s, 1),
            "page_size": PAGE,
            "repeat": repeat,
            "queries": await _measure(store, repeat),
        }


def table(report: dict[str, Any]) -> str:
    lines = [
        f"{report['runs']} runs, {report['transitions']} transitions; {report['page_size']} "
        f"runs a page; {report['repeat']} timings each (ms, p50 / p99)",
        f"{'filter':<16} {'page':>5} {'keyset p50':>11} {'keyset p99':>11} "
        f"{'OFFSET p50':>11} {'OFFSET p99':>11}",
    ]
    for name, figures in report["queries"].items():
        for page in (1, DEEP):
            keyset = figures[f"keyset page {page}"]
            offset = figures.get(f"OFFSET page {page}", {"p50_ms": "-", "p99_ms": "-"})
            lines.append(
                f"{name:<16} {page:>5} {keyset['p50_ms']:>11} {keyset['p99_ms']:>11} "
                f"{offset['p50_ms']:>11} {offset['p99_ms']:>11}"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipestatus_dev.bench.api_queries")
    parser.add_argument("--runs", type=int, default=1_000_000)
    parser.add_argument("--transitions", type=int, default=5, help="per run (default 5)")
    parser.add_argument("--repeat", type=int, default=200, help="timings per query")
    args = parser.parse_args(argv)
    with (
        TestServices(
            paths=("embedded",), database_env=DATABASE_ENV, purpose="the API bench"
        ) as provided,
        temporary_database(provided.database_url) as url,
    ):
        report = asyncio.run(_bench(url, args.runs, args.transitions, args.repeat))
    print(table(report))
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
