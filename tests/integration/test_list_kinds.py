"""List responses end to end: the worker records each entry exactly as if it came alone."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pipestatus.app import run_worker
from pipestatus.domain.states import Provider
from pipestatus_dev.provision.services import TestServices
from tests.integration.db_tools import fetch
from tests.integration.kafka_tools import (
    Message,
    create_topics,
    produce,
    topic_for,
    unique_topics,
    worker_settings,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
#: (provider, fixture, field holding the entries); the pipeline id (Codat: the company, part
#: of it) is what a broken copy of each list lacks in its second entry.
LISTS = [
    (Provider.nuvo, "read_all_response", "data"),
    (Provider.codat, "pull_operation_page", "results"),
    (Provider.krenalis, "runs_list", "runs"),
]
RUN_COLUMNS = "provider, run_id, pipeline_id, attempt, state, provider_status, error_category"


def _load(provider: Provider, name: str) -> dict[str, Any]:
    document = json.loads((FIXTURES / provider.value / f"{name}.json").read_text())
    assert isinstance(document, dict)
    return document


async def _drain(services: TestServices, url: str, messages: dict[Provider, list[bytes]]) -> None:
    topics = unique_topics()
    await create_topics(services.kafka_bootstrap, topics)
    for provider, values in messages.items():
        await produce(
            services.kafka_bootstrap, topic_for(topics, provider), [Message(v) for v in values]
        )
    summary = await run_worker(
        worker_settings(services.kafka_bootstrap, url, topics), until_idle=True
    )
    assert summary.records == sum(len(values) for values in messages.values())


async def test_list_records_make_the_runs_their_entries_make_alone(
    services: TestServices, database_url: str, second_database_url: str
) -> None:
    as_lists: dict[Provider, list[bytes]] = {}
    alone: dict[Provider, list[bytes]] = {}
    broken_paths: dict[Provider, str] = {}
    for provider, name, field in LISTS:
        document = _load(provider, name)
        broken = json.loads(json.dumps(document))
        required = "companyId" if provider is Provider.codat else "pipeline"
        del broken[field][1][required]
        broken_paths[provider] = f"{field}.1.{required}"
        as_lists[provider] = [json.dumps(document).encode(), json.dumps(broken).encode()]
        alone[provider] = [json.dumps(entry).encode() for entry in document[field]]
    await _drain(services, database_url, as_lists)
    await _drain(services, second_database_url, alone)

    query = f"SELECT {RUN_COLUMNS} FROM runs ORDER BY provider, run_id"  # noqa: S608  # constant
    from_lists = [dict(row) for row in await fetch(database_url, query)]
    from_entries = [dict(row) for row in await fetch(second_database_url, query)]
    assert from_lists == from_entries
    assert len(from_lists) == sum(len(_load(p, n)[f]) for p, n, f in LISTS)

    letters = await fetch(database_url, "SELECT reason, field_path FROM dead_letters")
    assert sorted((row["reason"], row["field_path"]) for row in letters) == sorted(
        ("invalid_payload", path) for path in broken_paths.values()
    )
