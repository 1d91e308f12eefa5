"""A real Alertmanager hears PipelineRunFailed from the worker, then its resolution."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from pipestatus.domain.states import Provider
from pipestatus.settings import ReceiverSettings
from tests.integration.alertmanager_tools import get_alerts, running_alertmanager
from tests.integration.kafka_tools import (
    Message,
    create_topics,
    produce,
    topic_for,
    unique_topics,
    worker_settings,
)
from tests.integration.worker_tools import running_worker

pytestmark = [pytest.mark.services]
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "nuvo"


async def wait_for(url: str, matches: Any, what: str) -> dict[str, Any] | None:
    """Alertmanager processes pushes asynchronously: poll its API until ``matches``."""
    deadline = time.monotonic() + 60
    async with httpx.AsyncClient() as client:
        while True:
            alerts = await get_alerts(client, url, active="true", silenced="true")
            ours = next(
                (a for a in alerts if a["labels"].get("alertname") == "PipelineRunFailed"), None
            )
            if matches(ours):
                return ours
            assert time.monotonic() < deadline, f"Alertmanager never showed {what}: {alerts}"
            await asyncio.sleep(0.2)


def ended(alert: dict[str, Any] | None) -> bool:
    if alert is None:
        return True
    return datetime.fromisoformat(alert["endsAt"].replace("Z", "+00:00")) <= datetime.now(UTC)


async def test_failed_run_fires_and_next_success_resolves_in_alertmanager(
    services, database_url, tmp_path
) -> None:
    """A failed nuvo execution fires PipelineRunFailed; the pipeline's next success resolves it."""
    topics = unique_topics()
    await create_topics(services.kafka_bootstrap, topics)
    topic = topic_for(topics, Provider.nuvo)
    failed = (FIXTURES / "failed.json").read_bytes()
    succeeded = (FIXTURES / "successful.json").read_bytes()
    pipeline = json.loads(failed)["pipeline"]
    with running_alertmanager(tmp_path / "am") as alertmanager:
        settings = worker_settings(services.kafka_bootstrap, database_url, topics)
        alerts = settings.alerts.model_copy(
            update={
                "receivers": [ReceiverSettings(name="am", type="alertmanager", url=alertmanager)]
            }
        )
        settings = settings.model_copy(update={"alerts": alerts})
        async with running_worker(settings):
            await produce(services.kafka_bootstrap, topic, [Message(failed)])
            firing = await wait_for(
                alertmanager, lambda a: a is not None and not ended(a), "the alert firing"
            )
            assert firing is not None
            assert firing["labels"]["pipeline_id"] == pipeline
            assert firing["labels"]["provider"] == "nuvo"
            assert firing["annotations"]["consecutive_failures"] == "1"
            assert firing["annotations"]["error_category"] == "quality_threshold"

            await produce(services.kafka_bootstrap, topic, [Message(succeeded)])
            await wait_for(alertmanager, ended, "the alert resolved")
