"""A database the real worker filled from the fixtures, and ``pipestatus serve`` over it.

``fill`` produces every fixture file of every provider, 60 more Codat pull operations
(enough to page), one Codat pipeline with a known streak (success, then two failures, a
worker run each), and bad records that become dead letters: not JSON, an unmapped status,
and a Krenalis run on a shared topic without CloudEvents headers (``unknown_provider``).
That last one passes on replay once the serve's settings name the shared topic as Krenalis's.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipestatus.adapters.asgi import AsgiServer
from pipestatus.app import run_worker
from pipestatus.domain.states import Provider
from pipestatus.serve import run_serve
from pipestatus.settings import Settings
from pipestatus_dev.provision.databases import temporary_database
from pipestatus_dev.provision.services import TestServices
from tests.integration.kafka_tools import (
    Message,
    create_topics,
    produce,
    topic_for,
    unique_topics,
    worker_settings,
)
from tests.integration.worker_tools import running_server

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
TOKEN = "api-write-token-3f9c2a"  # the tests' own token
GENERATED = 60
#: The streak pipeline: one Codat company/connection/data type.
STREAK_COMPANY = "5a1b2c3d-0000-4000-8000-00000000beef"
STREAK_CONNECTION = "6b2c3d4e-0000-4000-8000-00000000cafe"
STREAK = (("streak-ok", "Complete", "01"), ("streak-f1", "FetchError", "02"),
          ("streak-f2", "MapError", "03"))  # fmt: skip
REPLAYABLE_RUN = "k-replayable-on-shared"
#: A run id with the characters a URL path treats specially.
AWKWARD_RUN = "k-awkward/run?id=1&x=#2 %"


@dataclass(frozen=True)
class Filled:
    """A filled database and the topics its worker read."""

    database_url: str
    topics: dict[str, Provider]
    shared: str


def _js(document: Any) -> bytes:
    return json.dumps(document).encode()


def run_uuid(name: str) -> str:
    """The Codat run id (a UUID) the tests call ``name``."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"pipestatus-api-test/{name}"))


def _codat_pull(name: str, status: str, minute: str, data_type: str = "invoices") -> bytes:
    document = json.loads((FIXTURES / "codat" / "pull_operation.json").read_text())
    failed = status != "Complete"
    document |= {
        "id": run_uuid(name),
        "status": status,
        "dataType": data_type,
        "requested": f"2026-07-14T09:{minute}:00Z",
        "completed": f"2026-07-14T09:{minute}:30Z",
        "isErrored": failed,
        "errorMessage": f"{status} while pulling" if failed else None,
    }
    if data_type == "bills":
        document |= {"companyId": STREAK_COMPANY, "connectionId": STREAK_CONNECTION}
    return _js(document)


async def fill(bootstrap: str, database_url: str) -> Filled:
    """Runs the real worker over the fixtures until caught up (four times, see above)."""
    topics = unique_topics()
    shared = f"runs.shared.{uuid.uuid4().hex[:10]}"
    await create_topics(bootstrap, [*topics, shared])
    for provider in Provider:
        messages = [
            Message(path.read_bytes())
            for path in sorted((FIXTURES / provider.value).glob("*.json"))
        ]
        if provider is Provider.krenalis:
            krenalis = json.loads((FIXTURES / "krenalis" / "running.json").read_text())
            messages.append(Message(_js(krenalis | {"id": AWKWARD_RUN})))
        if provider is Provider.codat:
            messages += [
                Message(_codat_pull(f"gen-{n:03d}", "Complete" if n % 3 else "InternalError",
                                    f"{n % 60:02d}"))
                for n in range(GENERATED)
            ]  # fmt: skip
            messages += [
                Message(b"status=Complete&id=42"),
                Message(_codat_pull("p", "Paused", "07")),
            ]
        await produce(bootstrap, topic_for(topics, provider), messages)
    settings = worker_settings(bootstrap, database_url, topics, group=f"api-{uuid.uuid4().hex[:8]}")
    settings = settings.model_copy(
        update={"kafka": settings.kafka.model_copy(update={"shared_topics": [shared]})}
    )
    await run_worker(settings, until_idle=True)
    # The streak in order, a worker run each, so each step is a later change than the last.
    krenalis = json.loads((FIXTURES / "krenalis" / "running.json").read_text())
    await produce(bootstrap, shared, [Message(_js(krenalis | {"id": REPLAYABLE_RUN}))])
    for name, status, minute in STREAK:
        pull = _codat_pull(name, status, minute, "bills")
        await produce(bootstrap, topic_for(topics, Provider.codat), [Message(pull)])
        await run_worker(settings, until_idle=True)
    return Filled(database_url, topics, shared)


def filled_database(services: TestServices) -> Iterator[Filled]:
    """A temporary database the worker filled (``fill``), dropped after use: for
    module-scoped fixtures (``yield from``)."""
    with temporary_database(services.database_url) as url:
        yield asyncio.run(fill(services.kafka_bootstrap, url))


def serve_settings(filled: Filled, *, token: str | None = TOKEN) -> Settings:
    """The API over ``filled``; its routing knows the shared topic as Krenalis's."""
    topics = {name: p.value for name, p in filled.topics.items()} | {filled.shared: "krenalis"}
    api: dict[str, Any] = {"port": 0}
    if token is not None:
        api["write_token"] = token
    return Settings(kafka={"topics": topics}, database={"url": filled.database_url}, api=api)


def running_serve(settings: Settings) -> contextlib.AbstractAsyncContextManager[AsgiServer]:
    """``run_serve`` as a task; yields its server; stops it like SIGTERM does."""
    return running_server(run_serve, settings)
