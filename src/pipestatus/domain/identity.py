"""Event identity for deduplication (DESIGN §2): the first identity the record carries."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def event_identity(
    *,
    provider: str,
    document: Any,
    ce_source: str | None = None,
    ce_id: str | None = None,
    webhook_id: str | None = None,
    native_id: str | None = None,
) -> str:
    """CloudEvents ``source``+``id``, else ``webhook-id``, else the payload's id, else a digest.

    The digest covers the provider and the canonical JSON (sorted keys, no whitespace), so
    a poller that publishes the same resource twice produces the same identity.
    """
    if ce_id:
        return f"ce:{ce_source or ''}#{ce_id}"
    if webhook_id:
        return f"webhook:{webhook_id}"
    if native_id:
        return f"{provider}:{native_id}"
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    digest = hashlib.sha256(f"{provider}\n{canonical}".encode()).hexdigest()
    return f"sha256:{digest}"
