"""Standard Webhooks signatures (https://www.standardwebhooks.com/), both directions.

A signature is ``v1,`` + base64(HMAC-SHA256(key, ``{id}.{timestamp}.{body}``)); the
``webhook-signature`` header holds a space-separated list of them, so a sender rotating
its secret signs with both keys and a receiver configured with either accepts. Svix, which
delivers Codat's webhooks, sends the same headers spelled ``svix-id``, ``svix-timestamp``
and ``svix-signature``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from pipestatus.errors import ConfigError

#: A timestamp further than this from now, either way, is refused (replay protection).
DEFAULT_TOLERANCE_S = 300.0


class SignatureCheck(StrEnum):
    """What verifying a delivery found; only ``valid`` lets it in."""

    valid = "valid"
    missing_headers = "missing_headers"
    bad_timestamp = "bad_timestamp"
    stale = "stale"
    future = "future"
    no_match = "no_match"


@dataclass(frozen=True, slots=True)
class WebhookHeaders:
    """The three Standard Webhooks headers of a delivery (either spelling)."""

    msg_id: str
    timestamp: str
    signatures: str

    @classmethod
    def of(cls, headers: Mapping[str, str]) -> WebhookHeaders | None:
        lowered = {name.lower(): value for name, value in headers.items()}
        for prefix in ("webhook-", "svix-"):
            msg_id = lowered.get(f"{prefix}id")
            stamp = lowered.get(f"{prefix}timestamp")
            signatures = lowered.get(f"{prefix}signature")
            if msg_id and stamp and signatures:
                return cls(msg_id, stamp, signatures)
        return None


def signing_key(secret: str) -> bytes:
    """The key of a ``whsec_<base64>`` secret; ``ConfigError`` (never quoting it) if malformed."""
    try:
        key = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ConfigError("webhook secret is not whsec_<base64>") from exc
    if not key:
        raise ConfigError("webhook secret is empty")
    return key


def sign(key: bytes, msg_id: str, timestamp: str, body: bytes) -> str:
    """The base64 signature (without the ``v1,`` prefix)."""
    content = f"{msg_id}.{timestamp}.".encode() + body
    return base64.b64encode(hmac.new(key, content, hashlib.sha256).digest()).decode()


def check(
    headers: WebhookHeaders | None,
    body: bytes,
    keys: Sequence[bytes],
    *,
    now: float,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
) -> SignatureCheck:
    """Verifies a delivery against every configured key, in constant time per entry."""
    if headers is None:
        return SignatureCheck.missing_headers
    try:
        stamp = int(headers.timestamp)
    except ValueError:
        return SignatureCheck.bad_timestamp
    if stamp < now - tolerance_s:
        return SignatureCheck.stale
    if stamp > now + tolerance_s:
        return SignatureCheck.future
    offered = [
        value.encode()
        for version, _, value in (entry.partition(",") for entry in headers.signatures.split())
        if version == "v1"
    ]
    found = False
    for key in keys:
        expected = sign(key, headers.msg_id, headers.timestamp, body).encode()
        for value in offered:
            found |= hmac.compare_digest(value, expected)  # no early exit
    return SignatureCheck.valid if found else SignatureCheck.no_match
