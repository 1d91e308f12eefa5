"""The formats providers write: their timestamps, compact JSON, Standard Webhooks headers."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from pipestatus_dev.world.rand import Rand

#: Simulated time starts here: 2026-07-01T00:00:00Z.
T0_MS: Final = 1_782_864_000_000
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


def moment(ms: int) -> datetime:
    return _EPOCH + timedelta(milliseconds=ms)


def rfc3339(ms: int) -> str:
    return moment(ms).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def rfc3339_7(ms: int, rng: Rand) -> str:
    """Codat's 7 fractional digits."""
    return (
        moment(ms).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}{rng.r.randrange(10_000):04d}Z"
    )


def nuvo_time(ms: int) -> str:
    return moment(ms).strftime("%Y-%m-%d %H:%M:%S.") + f"{ms % 1000:03d}"


def compact_json(document: Any) -> bytes:
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()


def webhook_headers(rng: Rand, at_ms: int) -> tuple[tuple[str, bytes], ...]:
    """Standard Webhooks headers as Svix sends them (the signature is not checked)."""
    signature = base64.b64encode(rng.r.getrandbits(256).to_bytes(32, "big")).decode()
    return (
        ("webhook-id", f"msg_{rng.base62(27)}".encode()),
        ("webhook-timestamp", str(at_ms // 1000).encode()),
        ("webhook-signature", f"v1,{signature}".encode()),
        ("content-type", b"application/json"),
    )
