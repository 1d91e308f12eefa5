"""Standard Webhooks verification against an independent signer (the ``standardwebhooks``
package from PyPI), so a shared misreading of the spec cannot pass both sides."""

from __future__ import annotations

import base64
import time
from datetime import UTC, datetime

import pytest
from standardwebhooks.webhooks import Webhook

from pipestatus.edge.signatures import SignatureCheck, WebhookHeaders, check, signing_key

OLD = "whsec_" + base64.b64encode(b"old-secret-of-thirty-two-bytes!!").decode()
NEW = "whsec_" + base64.b64encode(b"new-secret-of-thirty-two-bytes!!").decode()
BODY = b'{"id":"5b1f3c2e","eventType":"read.completed"}'
NOW = 1_790_000_000.0


def signed(
    secret: str, body: bytes = BODY, *, at: float = NOW, msg_id: str = "msg_1"
) -> dict[str, str]:
    stamp = datetime.fromtimestamp(at, UTC)
    signature = Webhook(secret).sign(msg_id, stamp, body.decode())
    return {"webhook-id": msg_id, "webhook-timestamp": str(int(at)), "webhook-signature": signature}


def verdict(
    headers: dict[str, str], body: bytes = BODY, secrets: tuple[str, ...] = (OLD,)
) -> SignatureCheck:
    keys = [signing_key(s) for s in secrets]
    return check(WebhookHeaders.of(headers), body, keys, now=NOW, tolerance_s=300)


def test_an_independently_signed_delivery_is_valid() -> None:
    assert verdict(signed(OLD)) is SignatureCheck.valid


def test_the_independent_verifier_accepts_what_we_verify() -> None:
    headers = signed(OLD, at=time.time())
    Webhook(OLD).verify(BODY, headers)  # raises if the two sides disagree
    assert (
        check(WebhookHeaders.of(headers), BODY, [signing_key(OLD)], now=time.time())
        is SignatureCheck.valid
    )


def test_a_tampered_body_or_id_does_not_match() -> None:
    assert verdict(signed(OLD), body=BODY + b" ") is SignatureCheck.no_match
    assert verdict({**signed(OLD), "webhook-id": "msg_2"}) is SignatureCheck.no_match


def test_a_wrong_secret_does_not_match() -> None:
    assert verdict(signed(NEW)) is SignatureCheck.no_match


def test_rotation_accepts_either_secret_and_a_multi_signature_header() -> None:
    assert verdict(signed(OLD), secrets=(NEW, OLD)) is SignatureCheck.valid
    assert verdict(signed(NEW), secrets=(NEW, OLD)) is SignatureCheck.valid
    both = signed(NEW)
    both["webhook-signature"] += " " + signed(OLD)["webhook-signature"]
    assert verdict(both, secrets=(OLD,)) is SignatureCheck.valid


@pytest.mark.parametrize(
    ("offset_s", "expected"),
    [(-301, SignatureCheck.stale), (301, SignatureCheck.future), (-299, SignatureCheck.valid),
     (299, SignatureCheck.valid)],
)  # fmt: skip
def test_the_timestamp_must_be_within_the_tolerance(
    offset_s: int, expected: SignatureCheck
) -> None:
    assert verdict(signed(OLD, at=NOW + offset_s)) is expected


def test_missing_headers_and_a_bad_timestamp() -> None:
    full = signed(OLD)
    for name in full:
        assert (
            verdict({k: v for k, v in full.items() if k != name}) is SignatureCheck.missing_headers
        )
    assert verdict({**full, "webhook-timestamp": "yesterday"}) is SignatureCheck.bad_timestamp


def test_svix_spellings_and_any_case_are_read() -> None:
    svix = {k.replace("webhook-", "Svix-").title(): v for k, v in signed(OLD).items()}
    assert verdict(svix) is SignatureCheck.valid


def test_only_v1_entries_count() -> None:
    headers = signed(OLD)
    headers["webhook-signature"] = headers["webhook-signature"].replace("v1,", "v1a,")
    assert verdict(headers) is SignatureCheck.no_match
