"""Event identity for deduplication (docs/event-contract.md): the record's first identity."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any, Final

import orjson

#: Number tokens that orjson and ``json.dumps`` write differently: only magnitudes below
#: 1e-4, as negative exponents (``1.5e-7`` / ``1.5e-07``) or tiny decimals (``0.00001`` /
#: ``1e-05``). Matched loosely (a string holding ``2e-3`` matches too), which only costs a
#: slower digest; the substring tests first keep the regex off nearly every document.
_FLOAT_SPELLED_DIFFERENTLY: Final = re.compile(rb"[0-9]e-|(?:^|[:,\[])-?0\.0000")


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
    digest = hashlib.sha256(provider.encode() + b"\n" + canonical_json(document)).hexdigest()
    return f"sha256:{digest}"


def canonical_json(document: Any) -> bytes:
    """Sorted keys, no whitespace, UTF-8: the bytes ``json.dumps`` has always produced.

    Stored identities must never change across versions, so the definition stays
    ``json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=False)``; orjson
    writes the same bytes about four times faster, except for the float spellings above
    and integers beyond 64 bits, where the reference encoder runs instead.
    """
    try:
        fast = orjson.dumps(document, option=orjson.OPT_SORT_KEYS)
    except TypeError:
        fast = None
    if fast is not None and not _may_differ(fast):
        return fast
    return reference_canonical_json(document)


def _may_differ(fast: bytes) -> bool:
    if b"e-" not in fast and b"0.0000" not in fast:
        return False
    return _FLOAT_SPELLED_DIFFERENTLY.search(fast) is not None


def reference_canonical_json(document: Any) -> bytes:
    """The definition of the canonical form (slow; the fallback and the tests' oracle)."""
    text = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return text.encode()
