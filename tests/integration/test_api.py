"""``pipestatus serve`` over real HTTP, on a database the real worker filled (issue 15).

Every answer is checked against the database itself, read with plain SQL here.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from pipestatus.adapters.asgi import AsgiServer
from pipestatus.serve import openapi_document
from pipestatus_dev.provision.services import TestServices
from tests.integration.api_tools import (
    AWKWARD_RUN,
    GENERATED,
    REPLAYABLE_RUN,
    TOKEN,
    Filled,
    fill,
    filled_database,
    run_uuid,
    running_serve,
    serve_settings,
)
from tests.integration.db_tools import fetch

pytestmark = [pytest.mark.services]

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
ORDER = "ORDER BY updated_at DESC, provider DESC, run_id DESC"


@pytest.fixture(scope="module")
def filled(services: TestServices) -> Iterator[Filled]:
    """One database for the read-only tests of this module, filled once."""
    yield from filled_database(services)


@pytest.fixture
async def api(filled: Filled) -> AsyncIterator[httpx.AsyncClient]:
    async with (
        running_serve(serve_settings(filled)) as server,
        httpx.AsyncClient(base_url=server.url, timeout=30) as client,
    ):
        yield client


async def keys(url: str, where: str = "TRUE", *args: Any) -> list[tuple[str, str]]:
    rows = await fetch(url, f"SELECT provider, run_id FROM runs WHERE {where} {ORDER}", *args)  # noqa: S608  # the tests' own SQL
    return [(r["provider"], r["run_id"]) for r in rows]


async def all_pages(
    api: httpx.AsyncClient, path: str, params: dict[str, Any]
) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    for _ in range(1000):
        response = await api.get(path, params=params | ({"cursor": cursor} if cursor else {}))
        assert response.status_code == 200, response.text
        page = response.json()
        items += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return items
    raise AssertionError("paging never ended")


async def run_keys(api: httpx.AsyncClient, **params: Any) -> list[tuple[str, str]]:
    items = await all_pages(api, "/api/v1/runs", {"limit": 7} | params)
    return [(item["provider"], item["run_id"]) for item in items]


async def test_pages_of_runs_are_every_run_once_newest_first(
    api: httpx.AsyncClient, filled: Filled
) -> None:
    expected = await keys(filled.database_url)
    assert len(expected) > GENERATED + 20  # the fixtures, the generated pulls, the streak
    assert await run_keys(api) == expected
    first = (await api.get("/api/v1/runs", params={"limit": 500})).json()
    assert first["next_cursor"] is None
    assert len(first["items"]) == len(expected)


async def test_filters_are_applied_in_the_database_across_pages(
    api: httpx.AsyncClient, filled: Filled
) -> None:
    url = filled.database_url
    failed = await keys(url, "state = 'failed'")
    assert len(failed) > GENERATED // 3  # every third generated pull failed
    assert await run_keys(api, state="failed") == failed
    ended_badly = await keys(url, "state IN ('failed', 'cancelled')")
    assert set(ended_badly) > set(failed)
    assert await run_keys(api, state=["failed", "cancelled"]) == ended_badly

    zoho = await keys(url, "provider = 'zoho_dataprep'")
    assert zoho
    assert await run_keys(api, provider="zoho-dataprep") == zoho
    assert await run_keys(api, provider="zoho_dataprep") == zoho

    warned = await keys(url, "warnings <> '[]'::jsonb")
    assert warned
    assert await run_keys(api, warnings="true") == warned
    assert await run_keys(api, warnings="false") == await keys(url, "warnings = '[]'::jsonb")

    [streak] = await fetch(url, "SELECT pipeline_id FROM runs WHERE run_id = $1",
                           run_uuid("streak-ok"))  # fmt: skip
    pipeline = await keys(url, "pipeline_id = $1", streak["pipeline_id"])
    assert len(pipeline) == 3
    assert await run_keys(api, pipeline_id=streak["pipeline_id"]) == pipeline

    # A batch's runs share its transaction's time: split at the third batch's.
    times = await fetch(url, "SELECT DISTINCT updated_at FROM runs ORDER BY 1")
    assert len(times) >= 4  # the fixtures' worker run, then one per streak step
    middle: datetime = times[2]["updated_at"]
    newer = await keys(url, "updated_at >= $1", middle)
    older = await keys(url, "updated_at < $1", middle)
    assert newer
    assert older
    assert await run_keys(api, since=middle.isoformat()) == newer
    assert await run_keys(api, until=middle.isoformat()) == older

    ended = "ended_at >= '2026-07-14T09:30:00Z' AND ended_at < '2026-07-14T09:45:00Z'"
    window = await keys(url, ended)
    assert window
    found = await run_keys(
        api, ended_since="2026-07-14T09:30:00Z", ended_until="2026-07-14T09:45:00Z"
    )
    assert found == window


async def test_a_run_with_its_transitions_oldest_first(
    api: httpx.AsyncClient, filled: Filled
) -> None:
    run_id = run_uuid("streak-f2")
    response = await api.get(f"/api/v1/runs/codat/{run_id}")
    assert response.status_code == 200
    body = response.json()
    run = body["run"]
    assert (run["state"], run["error_category"]) == ("failed", "mapping")
    assert run["error_message"] == "MapError while pulling"
    assert run["attempt"] == 1
    stored = await fetch(
        filled.database_url,
        "SELECT id, to_state, event_id FROM run_transitions WHERE run_id = $1 ORDER BY id",
        run_id,
    )
    assert [t["event_id"] for t in body["transitions"]] == [t["event_id"] for t in stored]
    assert body["transitions"][-1]["to_state"] == "failed"

    awkward = await api.get(f"/api/v1/runs/krenalis/{quote(AWKWARD_RUN, safe='')}")
    assert awkward.status_code == 200, awkward.text
    assert awkward.json()["run"]["run_id"] == AWKWARD_RUN

    [zoho] = await fetch(
        filled.database_url, "SELECT run_id FROM runs WHERE provider = 'zoho_dataprep' LIMIT 1"
    )
    both = [
        await api.get(f"/api/v1/runs/{name}/{zoho['run_id']}")
        for name in ("zoho-dataprep", "zoho_dataprep")
    ]
    assert [r.status_code for r in both] == [200, 200]
    assert both[0].json() == both[1].json()


async def test_pipelines_show_latest_run_streak_and_last_success(
    api: httpx.AsyncClient, filled: Filled
) -> None:
    items = await all_pages(api, "/api/v1/pipelines", {"limit": 3})
    rows = await fetch(
        filled.database_url, "SELECT DISTINCT provider, pipeline_id FROM runs ORDER BY 1, 2"
    )
    assert [(p["provider"], p["pipeline_id"]) for p in items] == [
        (r["provider"], r["pipeline_id"]) for r in rows
    ]
    [streak] = [p for p in items if p["latest_run_id"] == run_uuid("streak-f2")]
    assert streak["state"] == "failed"
    assert streak["consecutive_failures"] == 2
    assert streak["runs"] == 3
    assert streak["last_success_at"] == "2026-07-14T09:01:30Z"
    assert streak["last_failure_at"] == "2026-07-14T09:03:30Z"
    assert streak["error_category"] == "mapping"
    codat = await all_pages(api, "/api/v1/pipelines", {"provider": "codat"})
    assert codat
    assert {p["provider"] for p in codat} == {"codat"}


async def test_dead_letters_list_filter_and_detail(api: httpx.AsyncClient, filled: Filled) -> None:
    stored = await fetch(
        filled.database_url,
        "SELECT id, reason, provider, raw_value FROM dead_letters ORDER BY id DESC",
    )
    listed = (await api.get("/api/v1/dead-letters")).json()["items"]
    assert [d["id"] for d in listed] == [r["id"] for r in stored]
    reasons = {r["reason"] for r in stored}
    assert {"not_json", "unmapped_status", "unknown_provider", "provider_api_error"} <= reasons
    only = (await api.get("/api/v1/dead-letters", params={"reason": "unmapped_status"})).json()
    assert {d["reason"] for d in only["items"]} == {"unmapped_status"}
    codat = (await api.get("/api/v1/dead-letters", params={"provider": "codat"})).json()["items"]
    assert sorted(d["id"] for d in codat) == sorted(
        r["id"] for r in stored if r["provider"] == "codat"
    )
    paged = await all_pages(api, "/api/v1/dead-letters", {"limit": 1, "status": "all"})
    assert [d["id"] for d in paged] == [r["id"] for r in stored]
    assert (await api.get("/api/v1/dead-letters", params={"status": "replayed"})).json()[
        "items"
    ] == []

    not_json = next(r for r in stored if r["reason"] == "not_json")
    detail = (await api.get(f"/api/v1/dead-letters/{not_json['id']}")).json()
    assert detail["value"] == not_json["raw_value"].decode() == "status=Complete&id=42"
    assert detail["reason"] == "not_json"
    assert detail["replayed_at"] is None


async def test_errors_are_rfc_9457_problem_documents(api: httpx.AsyncClient) -> None:
    cases = {
        "/api/v1/runs/codat/no-such-run": 404,
        "/api/v1/runs/acme/r1": 422,
        "/api/v1/runs?state=exploded": 422,
        "/api/v1/runs?limit=0": 422,
        "/api/v1/runs?cursor=bm9wZQ": 400,
        "/api/v1/dead-letters/999999": 404,
        "/api/v1/no-such-endpoint": 404,
        "/api/v1/stats?interval_s=59": 422,
    }
    for path, status in cases.items():
        response = await api.get(path)
        assert response.status_code == status, (path, response.text)
        assert response.headers["content-type"] == "application/problem+json", path
        problem = response.json()
        assert problem["status"] == status
        assert problem["title"], path
        assert problem["detail"], path
        assert problem["instance"] == path.split("?")[0]
    cursor = (await api.get("/api/v1/pipelines", params={"limit": 1})).json()["next_cursor"]
    wrong_list = await api.get("/api/v1/runs", params={"cursor": cursor})
    assert wrong_list.status_code == 400
    assert "not a runs cursor" in wrong_list.json()["detail"]


async def test_stats_count_what_the_database_holds(api: httpx.AsyncClient, filled: Filled) -> None:
    body = (await api.get("/api/v1/stats", params={"interval_s": 3600})).json()
    rows = await fetch(
        filled.database_url, "SELECT provider, state, count(*) AS n FROM runs GROUP BY 1, 2"
    )
    assert {(s["provider"], s["state"]): s["count"] for s in body["by_provider_state"]} == {
        (r["provider"], r["state"]): r["n"] for r in rows
    }
    # Every run changed within the last 24 h (this test wrote them): the buckets hold all.
    assert sum(b["count"] for b in body["buckets"]) == sum(r["n"] for r in rows)
    starts = [datetime.fromisoformat(b["start"]) for b in body["buckets"]]
    assert all(start.minute == start.second == 0 for start in starts)
    # A window wider than 1000 buckets is cut at its start, and the answer says so.
    wide = await api.get(
        "/api/v1/stats",
        params={"interval_s": 60, "since": "2000-01-01T00:00:00Z", "until": "2030-01-01T00:00Z"},
    )
    assert wide.status_code == 200
    assert wide.json()["since"] == "2029-12-31T07:20:00Z"  # 1000 minutes before `until`
    assert wide.json()["buckets"] == []  # no run changed then


async def test_text_postgresql_cannot_hold_matches_nothing(api: httpx.AsyncClient) -> None:
    """Found by the property tests: a NUL in a filter was a 500 (PostgreSQL refuses it)."""
    assert await run_keys(api, pipeline_id="p\x00") == []
    letters = await api.get("/api/v1/dead-letters", params={"reason": "not_json\x00"})
    assert (letters.status_code, letters.json()["items"]) == (200, [])
    run = await api.get("/api/v1/runs/codat/" + quote("r\x00", safe=""))
    assert run.status_code == 404
    auth = {"Authorization": f"Bearer {TOKEN}", "content-type": "application/json"}
    replay = await api.post(
        "/api/v1/dead-letters/replay", content=b'{"reason": "x\\u0000"}', headers=auth
    )
    assert replay.status_code == 200, replay.text
    assert replay.json() == {"applied": 0, "duplicate": 0, "stale": 0, "still_failing": 0}
    surrogate = await api.post(
        "/api/v1/dead-letters/replay", content=b'{"reason": "\\udb52x"}', headers=auth
    )
    assert surrogate.status_code == 422  # not Unicode text: refused before any query
    assert surrogate.headers["content-type"] == "application/problem+json"


async def test_filter_times_outside_1970_2200_mean_from_the_start_or_to_the_end(
    api: httpx.AsyncClient, filled: Filled
) -> None:
    everything = await keys(filled.database_url)
    assert await run_keys(api, since="1900-01-01T00:00:00Z") == everything
    assert await run_keys(api, until="2471-12-30T19:45:44Z") == everything
    assert await run_keys(api, since="9999-12-31T23:59:59-23:59") == []
    assert await run_keys(api, until="0001-01-01T00:00:00+23:59") == []


async def test_alerts_are_the_stored_states_and_deliveries(
    api: httpx.AsyncClient, filled: Filled
) -> None:
    body = (await api.get("/api/v1/alerts", params={"limit": 500})).json()
    states = await fetch(filled.database_url, "SELECT dedup_key, status FROM alert_state")
    assert {s["dedup_key"]: s["status"] for s in body["states"]} == {
        r["dedup_key"]: r["status"] for r in states
    }
    statuses = [s["status"] for s in body["states"]]
    assert statuses == sorted(statuses)  # "firing" sorts before "resolved": firing first
    deliveries = await fetch(filled.database_url, "SELECT id FROM alert_outbox ORDER BY id DESC")
    assert [d["id"] for d in body["deliveries"]] == [r["id"] for r in deliveries][:500]


async def test_probes_metrics_and_the_committed_openapi(api: httpx.AsyncClient) -> None:
    assert (await api.get("/healthz")).text == "ok\n"
    assert (await api.get("/readyz")).text == "ready\n"
    await api.get("/api/v1/runs")
    metrics = (await api.get("/metrics")).text
    assert 'pipestatus_api_requests_total{status="200"}' in metrics
    served = (await api.get("/openapi.json")).json()
    assert served == json.loads((SCHEMAS / "openapi.json").read_text(encoding="utf-8"))
    assert openapi_document() == served


# ------------------------------------------------------------------ the auth boundary


async def _writable_state(url: str) -> list[Any]:
    letters = await fetch(url, "SELECT * FROM dead_letters ORDER BY id")
    runs = await fetch(url, "SELECT provider, run_id, state, updated_at FROM runs ORDER BY 1, 2")
    return [[dict(r) for r in letters], [dict(r) for r in runs]]


async def test_replay_needs_the_token_and_a_refusal_changes_nothing(
    services: TestServices, database_url: str
) -> None:
    filled = await fill(services.kafka_bootstrap, database_url)
    [letter] = await fetch(
        database_url, "SELECT id FROM dead_letters WHERE reason = 'unknown_provider'"
    )
    before = await _writable_state(database_url)
    body = {"ids": [letter["id"]]}
    async with running_serve(serve_settings(filled, token=None)) as off:
        async with httpx.AsyncClient(base_url=off.url) as client:
            refused = await client.post("/api/v1/dead-letters/replay", json=body,
                                        headers={"Authorization": f"Bearer {TOKEN}"})  # fmt: skip
        assert refused.status_code == 403
        assert "replay is off" in refused.json()["detail"]
    assert await _writable_state(database_url) == before

    server: AsgiServer
    async with (
        running_serve(serve_settings(filled)) as server,
        httpx.AsyncClient(base_url=server.url) as client,
    ):
        for headers in ({}, {"Authorization": "Bearer wrong"},
                        {"Authorization": f"Bearer {TOKEN}x"},
                        {"Authorization": f"Basic {TOKEN}"}):  # fmt: skip
            response = await client.post("/api/v1/dead-letters/replay", json=body, headers=headers)
            assert response.status_code == 401, (headers, response.text)
            assert response.headers["content-type"] == "application/problem+json"
            assert response.headers["www-authenticate"].startswith("Bearer")
        assert await _writable_state(database_url) == before

        auth = {"Authorization": f"Bearer {TOKEN}"}
        empty = await client.post("/api/v1/dead-letters/replay", json={}, headers=auth)
        assert empty.status_code == 422
        done = await client.post("/api/v1/dead-letters/replay", json=body, headers=auth)
        assert done.status_code == 200, done.text
        assert done.json() == {"applied": 1, "duplicate": 0, "stale": 0, "still_failing": 0}
        shown = (await client.get(f"/api/v1/dead-letters/{letter['id']}")).json()
        assert shown["replay_result"] == "applied"
        assert shown["replayed_at"] is not None
        run = await client.get(f"/api/v1/runs/krenalis/{REPLAYABLE_RUN}")
        assert run.status_code == 200
        assert run.json()["run"]["state"] == "running"
