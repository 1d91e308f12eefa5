"""Running ``pipestatus ingress`` in a test, signing requests independently, reading its topic."""

from __future__ import annotations

import base64
import contextlib
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer
from standardwebhooks.webhooks import Webhook

from pipestatus.adapters.asgi import AsgiServer
from pipestatus.ingress import run_ingress
from pipestatus.settings import Settings
from tests.integration.worker_tools import running_server

OLD = "whsec_" + base64.b64encode(b"ingress-old-secret-thirty-two-b!").decode()
NEW = "whsec_" + base64.b64encode(b"ingress-new-secret-thirty-two-b!").decode()
TOKEN = "generic-sender-token"


def ingress_settings(bootstrap: str, topic: str, **ingress: Any) -> Settings:
    """Three sources on ``topic``: ``codat`` (signed, two secrets), ``jobs`` (token), ``open``."""
    sources = [
        {"name": "codat", "provider": "codat", "verify": "standard-webhooks",
         "secrets": [NEW, OLD], "topic": topic},
        {"name": "jobs", "provider": "codat", "verify": "token", "secrets": [TOKEN],
         "topic": topic},
        {"name": "open", "provider": "codat", "verify": "none", "topic": topic},
    ]  # fmt: skip
    return Settings(
        kafka={"bootstrap_servers": bootstrap},
        ingress={"port": 0, "sources": sources, "produce_timeout_s": 3, **ingress},
    )


def running_ingress(settings: Settings) -> contextlib.AbstractAsyncContextManager[AsgiServer]:
    """``run_ingress`` as a task; yields its server; stops it like SIGTERM does."""
    return running_server(run_ingress, settings)


def signed(
    body: bytes, secret: str = OLD, *, msg_id: str | None = None, at: float | None = None
) -> dict[str, str]:
    """Standard Webhooks headers made by the ``standardwebhooks`` package, not by us."""
    msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
    stamp = time.time() if at is None else at
    signature = Webhook(secret).sign(msg_id, datetime.fromtimestamp(stamp, UTC), body.decode())
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(stamp)),
        "webhook-signature": signature,
        "content-type": "application/json",
    }


async def read_topic(bootstrap: str, topic: str, count: int, within_s: float = 30) -> list[Any]:
    """At least ``count`` records of ``topic``, and any that follow within a second
    (fails if fewer than ``count`` arrive in time)."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    records: list[Any] = []
    try:
        deadline = time.monotonic() + within_s
        while len(records) < count:
            assert time.monotonic() < deadline, f"{len(records)} of {count} records on {topic}"
            batches = await consumer.getmany(timeout_ms=500)
            records.extend(r for batch in batches.values() for r in batch)
        # and whatever follows within a second: a test asserting "exactly" sees extras
        batches = await consumer.getmany(timeout_ms=1000)
        records.extend(r for batch in batches.values() for r in batch)
    finally:
        await consumer.stop()
    return records
