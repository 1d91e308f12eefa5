"""The demo's webhook sender: Codat's events delivered to the ingress as Svix would.

Each delivery is signed per Standard Webhooks with the source's secret and retried on a
5xx or a broken connection after a short, growing delay (Svix's schedule, compressed from
hours to seconds). Now and then a forged copy, signed with a wrong secret, shows the
ingress refusing it (401, not retried).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import secrets
import time
from collections.abc import Coroutine
from typing import Any, Self

import httpx

from pipestatus.edge.signatures import sign, signing_key

#: Svix retries after 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h; the demo waits seconds.
RETRY_DELAYS_S = (0.5, 2.0, 5.0, 10.0)
#: One delivery in this many is followed by a forged copy.
FORGE_EVERY = 40


class WebhookSender:
    """``async with WebhookSender(url, secret) as sender: await sender.deliver(body, id)``."""

    def __init__(self, url: str, secret: str) -> None:
        self._url = url
        self._key = signing_key(secret)
        self._forger = signing_key("whsec_" + base64.b64encode(secrets.token_bytes(24)).decode())
        self._client = httpx.AsyncClient(timeout=15)
        self._pending: set[asyncio.Task[None]] = set()
        self.stored = 0
        self.retried = 0
        self.rejected = 0
        self.given_up = 0
        self._sent = 0

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        pending, self._pending = list(self._pending), set()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5):
                await asyncio.gather(*pending, return_exceptions=True)
        for task in pending:
            task.cancel()
        await self._client.aclose()

    def deliver(self, body: bytes, msg_id: str) -> None:
        """Starts delivering (retries run in the background)."""
        self._sent += 1
        self._spawn(self._deliver(body, msg_id, self._key, attempt=0))
        if self._sent % FORGE_EVERY == 0:
            self._spawn(self._deliver(body, f"{msg_id}_forged", self._forger, attempt=0))

    def line(self) -> str:
        return (
            f"webhooks to the ingress: {self.stored} stored · {self.retried} retried · "
            f"{self.rejected} refused (bad signature) · {self.given_up} given up"
        )

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _deliver(self, body: bytes, msg_id: str, key: bytes, *, attempt: int) -> None:
        stamp = str(int(time.time()))
        headers = {
            "webhook-id": msg_id,
            "webhook-timestamp": stamp,
            "webhook-signature": "v1," + sign(key, msg_id, stamp, body),
            "content-type": "application/json",
        }
        try:
            status = (await self._client.post(self._url, content=body, headers=headers)).status_code
        except httpx.HTTPError:
            status = 0
        if 200 <= status < 300:
            self.stored += 1
        elif status in (400, 401, 404, 413):
            self.rejected += 1  # the sender's fault: Svix would retry, the demo shows it
        elif attempt < len(RETRY_DELAYS_S):
            self.retried += 1
            await asyncio.sleep(RETRY_DELAYS_S[attempt])  # the retry schedule, not a sync
            await self._deliver(body, msg_id, key, attempt=attempt + 1)
        else:
            self.given_up += 1
