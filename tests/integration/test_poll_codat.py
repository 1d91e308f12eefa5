"""``pipestatus poll`` against the Codat simulator: companies, paged history, quota."""

from __future__ import annotations

from typing import Any

import pytest

from pipestatus.adapters.polling import PollMetrics
from pipestatus.domain.states import Provider
from pipestatus.providers import parse_record
from pipestatus_dev.provision.services import TestServices
from pipestatus_dev.simulators import CodatSimulator
from tests.integration.db_tools import fetch
from tests.integration.poll_tools import (
    fresh_topic,
    one_round,
    poll_settings,
    published,
    sample,
    serving,
    value,
)

pytestmark = [pytest.mark.services]


@pytest.fixture
async def topic(services: TestServices) -> str:
    return await fresh_topic(services.kafka_bootstrap, "codat")


def source(url: str, **changes: Any) -> dict[str, Any]:
    return {
        "name": "codat-main", "provider": "codat", "base_url": url,
        "api_key": "codat_simulated", "page_size": 2, "quota_reserve": 0,
    } | changes  # fmt: skip


async def test_every_company_every_page_then_only_changes(
    services: TestServices, database_url: str, topic: str
) -> None:
    sim = CodatSimulator()
    companies = [sim.company() for _ in range(3)]
    operations = [sim.request_read(c, t) for c in companies for t in ("invoices", "bills", "items")]
    async with serving(sim.app()) as url:
        settings = poll_settings(services.kafka_bootstrap, database_url, topic, source(url))
        metrics = PollMetrics()
        assert await one_round(settings, metrics) == []
        assert sim.requests.count("GET /companies") == 2  # 3 companies, 2 a page
        assert sum(r.endswith("/data/history") for r in sim.requests) == 6  # 2 pages each
        records = await published(services.kafka_bootstrap, topic)
        assert sorted(r.key.decode() for r in records) == sorted(operations)
        assert all(value(r) == sim.operations[r.key.decode()] for r in records)

        assert await one_round(settings, metrics) == []
        assert len(await published(services.kafka_bootstrap, topic)) == 9
        sim.advance(operations[4])
        assert await one_round(settings, metrics) == []
    records = await published(services.kafka_bootstrap, topic)
    assert len(records) == 10
    assert records[-1].key.decode() == operations[4]
    (observation,) = parse_record(records[-1].value, Provider.codat).observations
    assert observation.provider_status == "Fetching"
    assert sample(metrics, "pipestatus_poll_unchanged_total", source="codat-main") == 17


async def test_a_live_operation_beyond_the_pages_is_read_by_id_with_its_company(
    services: TestServices, database_url: str, topic: str
) -> None:
    sim = CodatSimulator()
    company = sim.company()
    old = sim.request_read(company)
    async with serving(sim.app()) as url:
        settings = poll_settings(
            services.kafka_bootstrap, database_url, topic, source(url, max_pages=1)
        )
        assert await one_round(settings) == []
        sim.request_read(company, "bills")
        sim.request_read(company, "items")  # `old` is now third, past the one page read
        sim.advance(old)
        assert await one_round(settings) == []
    assert f"GET /companies/{company}/data/history/{old}" in sim.requests
    [row] = await fetch(database_url, "SELECT locator FROM poll_runs WHERE run_id = $1", old)
    assert row["locator"] == company
    records = [r for r in await published(services.kafka_bootstrap, topic) if r.key == old.encode()]
    assert [value(r)["status"] for r in records] == ["Queued", "Fetching"]


async def test_the_daily_quota_stops_the_round_until_its_reset(
    services: TestServices, database_url: str, topic: str
) -> None:
    sim = CodatSimulator(quota=10)
    company = sim.company()
    sim.request_read(company)
    async with serving(sim.app()) as url:
        settings = poll_settings(
            services.kafka_bootstrap, database_url, topic, source(url, quota_reserve=9)
        )
        metrics = PollMetrics()
        assert await one_round(settings, metrics) == ["codat-main"]
    assert sim.requests == ["GET /companies"]  # stopped after the answer that hit the reserve
    assert sample(metrics, "pipestatus_poll_errors_total", source="codat-main", reason="quota")
    assert await published(services.kafka_bootstrap, topic) == []


async def test_a_wrong_key_is_refused(
    services: TestServices, database_url: str, topic: str
) -> None:
    sim = CodatSimulator()
    sim.request_read(sim.company())
    async with serving(sim.app()) as url:
        settings = poll_settings(
            services.kafka_bootstrap, database_url, topic, source(url, api_key="wrong")
        )
        metrics = PollMetrics()
        assert await one_round(settings, metrics) == ["codat-main"]
    assert sample(metrics, "pipestatus_poll_errors_total", source="codat-main", reason="auth")
    assert await published(services.kafka_bootstrap, topic) == []
