"""Codat's webhook sender: signed ``read.completed`` events with Svix's retry schedule.

Codat delivers through Svix, signed per Standard Webhooks (providers.md §3.5, §3.7): a
failed delivery (no answer, or anything but 2xx) is retried after 5 s, 5 min, 30 min,
2 h, 5 h, 10 h and 10 h, keeping its ``webhook-id`` and re-signing with a fresh
timestamp. ``time_scale`` shrinks the schedule for tests (0.001: 5 ms, 0.3 s, …).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from pipestatus.edge.signatures import sign, signing_key

#: Seconds before each retry after the first attempt (Svix's documented schedule).
RETRY_SCHEDULE_S = (5, 300, 1800, 7200, 18000, 36000, 36000)


def read_completed(company_id: str, connection_id: str, data_types: list[str]) -> dict[str, Any]:
    """A ``read.completed`` event for ``data_types`` read successfully."""
    return {
        "id": str(uuid.uuid4()),
        "eventType": "read.completed",
        "generatedDate": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "payload": {
            "referenceCompany": {"id": company_id, "name": "Simulated Ltd"},
            "dataTypes": [
                {"connectionId": connection_id, "dataType": name, "status": "Complete"}
                for name in data_types
            ],
        },
    }


@dataclass
class CodatWebhookSender:
    url: str
    secret: str
    time_scale: float = 1.0
    #: (webhook id, attempt number, status code or the transport error's name)
    attempts: list[tuple[str, int, str]] = field(default_factory=list)

    async def deliver(self, event: dict[str, Any]) -> bool:
        """Sends ``event`` until a 2xx or the schedule is exhausted; True if delivered."""
        body = json.dumps(event).encode()
        msg_id = f"msg_{uuid.uuid4().hex}"
        key = signing_key(self.secret)
        async with httpx.AsyncClient(timeout=10) as client:
            for attempt, wait in enumerate((0, *RETRY_SCHEDULE_S), start=1):
                await asyncio.sleep(wait * self.time_scale)
                stamp = str(int(time.time()))
                headers = {
                    "webhook-id": msg_id,
                    "webhook-timestamp": stamp,
                    "webhook-signature": "v1," + sign(key, msg_id, stamp, body),
                    "content-type": "application/json",
                }
                try:
                    response = await client.post(self.url, content=body, headers=headers)
                except httpx.TransportError as exc:
                    self.attempts.append((msg_id, attempt, type(exc).__name__))
                    continue
                self.attempts.append((msg_id, attempt, str(response.status_code)))
                if response.is_success:
                    return True
        return False
