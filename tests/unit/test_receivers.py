"""The three alert receivers against ``httpx.MockTransport``: request shapes and error classes."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from pipestatus.adapters.dispatcher import backoff_delay
from pipestatus.adapters.receivers import (
    AlertmanagerReceiver,
    AlertRejectedError,
    AlertRetryLaterError,
    OutboxItem,
    PagerDutyReceiver,
    WebhookReceiver,
    build_receivers,
    http_client,
    pagerduty_dedup_key,
    sign,
    verify_signature,
)
from pipestatus.errors import AlertDeliveryError, ConfigError
from pipestatus.settings import AlertSettings, ReceiverSettings

SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()
ROUTING_KEY = "R0UT1NGKEY0123456789abcdefabcdef"
LABELS = {
    "alertname": "PipelineRunFailed",
    "provider": "codat",
    "pipeline_id": "sync-42",
    "severity": "warning",
}
ANNOTATIONS = {
    "summary": "sync-42 failed",
    "description": "run r-9 failed: auth",
    "run_id": "r-9",
    "consecutive_failures": 3,
}
STARTS = "2025-03-01T10:00:00+00:00"
ENDS = "2025-03-01T11:00:00+00:00"

Handler = Callable[[httpx.Request], httpx.Response]


def item(action: str = "trigger", *, row_id: int = 7, **payload: Any) -> OutboxItem:
    body: dict[str, Any] = {
        "rule": "PipelineRunFailed",
        "labels": LABELS,
        "annotations": ANNOTATIONS,
        "starts_at": STARTS,
        "ends_at": ENDS if action == "resolve" else None,
    }
    body.update(payload)
    return OutboxItem(
        id=row_id,
        dedup_key="PipelineRunFailed/codat/sync-42",
        receiver="r",
        action=action,  # type: ignore[arg-type]
        payload=body,
    )


class Recorder:
    """A MockTransport handler that keeps every request and answers as told."""

    def __init__(self, status: int = 200, *, headers: dict[str, str] | None = None) -> None:
        self.status = status
        self.headers = headers or {}
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return httpx.Response(self.status, headers=self.headers, text="")

    def json(self, index: int = -1) -> Any:
        return json.loads(self.requests[index].content)


def client(handler: Handler) -> httpx.AsyncClient:
    return http_client(httpx.MockTransport(handler))


async def test_alertmanager_trigger_and_resolve_shapes() -> None:
    rec = Recorder(200)
    async with client(rec) as c:
        am = AlertmanagerReceiver("am", "http://am.example:9093/", c, 5.0)
        await am.deliver(item("trigger", generator_url="https://ui.example/runs/r-9"))
        await am.deliver(item("resolve"))
    first, _ = rec.requests
    assert first.method == "POST"
    assert str(first.url) == "http://am.example:9093/api/v2/alerts"
    assert first.headers["content-type"] == "application/json"
    [firing] = rec.json(0)
    assert firing["labels"] == LABELS
    assert firing["annotations"]["consecutive_failures"] == "3"  # labelSet values are strings
    assert firing["startsAt"] == STARTS
    assert "endsAt" not in firing  # Alertmanager applies resolve_timeout; the rules re-send
    assert firing["generatorURL"] == "https://ui.example/runs/r-9"
    [resolved] = rec.json(1)
    assert resolved["labels"] == firing["labels"]  # same label set: same alert
    assert resolved["endsAt"] == ENDS


async def test_alertmanager_adds_alertname_from_the_rule() -> None:
    rec = Recorder(200)
    labels = {k: v for k, v in LABELS.items() if k != "alertname"}
    async with client(rec) as c:
        await AlertmanagerReceiver("am", "http://am", c, 5.0).deliver(item(labels=labels))
    assert rec.json()[0]["labels"]["alertname"] == "PipelineRunFailed"


async def test_webhook_shape_and_signature() -> None:
    rec = Recorder(204)
    async with client(rec) as c:
        await WebhookReceiver("hook", "https://hooks.example/in", c, 5.0, SECRET).deliver(item())
    [request] = rec.requests
    body = json.loads(request.content)
    assert body == {
        "type": "alert.firing",
        "dedup_key": "PipelineRunFailed/codat/sync-42",
        "rule": "PipelineRunFailed",
        "labels": LABELS,
        "annotations": ANNOTATIONS,
        "starts_at": STARTS,
        "ends_at": None,
    }
    assert request.headers["webhook-id"] == "msg_7"
    assert abs(int(request.headers["webhook-timestamp"]) - time.time()) < 5
    assert request.headers["webhook-signature"].startswith("v1,")
    assert verify_signature(SECRET, dict(request.headers), request.content)


async def test_webhook_resolve_and_stable_id_across_retries() -> None:
    rec = Recorder(200)
    async with client(rec) as c:
        hook = WebhookReceiver("hook", "https://hooks.example/in", c, 5.0, SECRET)
        await hook.deliver(item("resolve", row_id=11))
        await hook.deliver(item("resolve", row_id=11))
    assert rec.json(0)["type"] == "alert.resolved"
    assert rec.json(0)["ends_at"] == ENDS
    assert {r.headers["webhook-id"] for r in rec.requests} == {"msg_11"}


def signed(body: bytes, *, msg_id: str = "msg_1", at: float | None = None) -> dict[str, str]:
    stamp = str(int(time.time() if at is None else at))
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": stamp,
        "webhook-signature": sign(SECRET, msg_id, stamp, body),
    }


def test_verify_signature_accepts_the_real_one() -> None:
    body = b'{"a":1}'
    assert verify_signature(SECRET, signed(body), body)
    # several signatures (key rotation): any v1 match counts; header names are case-insensitive
    headers = signed(body)
    headers["webhook-signature"] = "v1,Zm9v " + headers["webhook-signature"]
    assert verify_signature(SECRET, {k.title(): v for k, v in headers.items()}, body)


def test_verify_signature_rejects_tampering() -> None:
    body = b'{"a":1}'
    headers = signed(body)
    other_secret = "whsec_" + base64.b64encode(b"another key, same length 32 byte").decode()
    assert not verify_signature(SECRET, headers, b'{"a":2}')
    assert not verify_signature(other_secret, headers, body)
    assert not verify_signature(
        SECRET, {**headers, "webhook-timestamp": str(int(time.time()) + 1)}, body
    )
    assert not verify_signature(SECRET, {**headers, "webhook-id": "msg_2"}, body)
    assert not verify_signature(SECRET, {**headers, "webhook-signature": "v1a,xyz"}, body)
    assert not verify_signature(SECRET, {}, body)
    assert not verify_signature("whsec_%%%", headers, body)


def test_verify_signature_enforces_the_tolerance() -> None:
    body = b"{}"
    assert not verify_signature(SECRET, signed(body, at=time.time() - 301), body)
    assert not verify_signature(SECRET, signed(body, at=time.time() + 301), body)
    assert verify_signature(SECRET, signed(body, at=time.time() - 200), body)
    assert verify_signature(SECRET, signed(body, at=time.time() - 3600), body, tolerance_s=7200)


async def test_pagerduty_trigger_and_resolve_shapes() -> None:
    rec = Recorder(202)
    async with client(rec) as c:
        pd = PagerDutyReceiver("pd", "", c, 5.0, ROUTING_KEY)
        await pd.deliver(item("trigger"))
        await pd.deliver(item("resolve"))
    assert str(rec.requests[0].url) == "https://events.pagerduty.com/v2/enqueue"
    trigger, resolve = rec.json(0), rec.json(1)
    assert trigger["routing_key"] == ROUTING_KEY
    assert trigger["event_action"] == "trigger"
    assert trigger["dedup_key"] == "PipelineRunFailed/codat/sync-42"
    payload = trigger["payload"]
    assert payload["summary"] == "sync-42 failed"
    assert payload["source"] == "pipestatus"
    assert payload["severity"] == "warning"
    assert payload["custom_details"] == {**LABELS, **ANNOTATIONS}
    assert resolve == {
        "routing_key": ROUTING_KEY,
        "event_action": "resolve",
        "dedup_key": "PipelineRunFailed/codat/sync-42",
    }


async def test_pagerduty_maps_unknown_severity_and_long_keys() -> None:
    rec = Recorder(202)
    async with client(rec) as c:
        pd = PagerDutyReceiver("pd", "https://pd.example/v2/enqueue", c, 5.0, ROUTING_KEY)
        await pd.deliver(item(labels={**LABELS, "severity": "page"}))
    assert rec.json()["payload"]["severity"] == "error"
    long_key = "k" * 300
    assert len(pagerduty_dedup_key(long_key)) == 64
    assert pagerduty_dedup_key(long_key) == pagerduty_dedup_key(long_key)
    assert pagerduty_dedup_key("short") == "short"


def receivers(c: httpx.AsyncClient) -> list[Any]:
    return [
        AlertmanagerReceiver("am", "http://user:hunter2@am.example", c, 5.0),
        WebhookReceiver("hook", "https://hooks.example/in", c, 5.0, SECRET),
        PagerDutyReceiver("pd", "https://pd.example/v2/enqueue", c, 5.0, ROUTING_KEY),
    ]


#: What each receiver knows and must never show (a receiver cannot scrub another's secrets).
OWN_SECRETS = {
    "am": ["hunter2"],
    "hook": [SECRET, SECRET.removeprefix("whsec_")],
    "pd": [ROUTING_KEY],
}
#: A careless server or proxy that echoes secrets back.
ECHO = f"oops hunter2 {SECRET} {ROUTING_KEY}"


def assert_no_secret(exc: BaseException, receiver: Any) -> None:
    for text in (str(exc), repr(exc), repr(receiver)):
        for secret in OWN_SECRETS[receiver.name]:
            assert secret not in text


@pytest.mark.parametrize("status", [500, 502, 503, 429, 408])
async def test_server_errors_and_throttling_are_retriable(status: int) -> None:
    # the body echoes the secrets, as a careless proxy might
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, text=f"{ECHO} {request.content!r}")

    async with client(handler) as c:
        for receiver in receivers(c):
            with pytest.raises(AlertDeliveryError) as caught:
                await receiver.deliver(item())
            assert caught.value.retriable
            assert not isinstance(caught.value, AlertRejectedError)
            assert f"HTTP {status}" in str(caught.value)
            assert_no_secret(caught.value, receiver)


async def test_retry_after_is_kept() -> None:
    async with client(Recorder(429, headers={"retry-after": "42"})) as c:
        with pytest.raises(AlertRetryLaterError) as caught:
            await receivers(c)[2].deliver(item())
    assert caught.value.retriable
    assert caught.value.retry_after_s == 42.0


@pytest.mark.parametrize("status", [400, 401, 403, 404, 413, 301])
async def test_client_errors_are_not_retriable(status: int) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, json={"errors": [ECHO, request.content.decode()]})

    async with client(handler) as c:
        for receiver in receivers(c):
            with pytest.raises(AlertRejectedError) as caught:
                await receiver.deliver(item())
            assert isinstance(caught.value, AlertDeliveryError)
            assert not caught.value.retriable
            assert caught.value.receiver == receiver.name
            assert_no_secret(caught.value, receiver)


@pytest.mark.parametrize(
    "error",
    [
        httpx.ConnectError(f"refused {ECHO}"),
        httpx.ReadTimeout("read timed out"),
        httpx.ConnectTimeout("connect timed out"),
        httpx.RemoteProtocolError(f"server hung up {ECHO}"),
    ],
    ids=lambda e: type(e).__name__,
)
async def test_transport_errors_and_timeouts_are_retriable(error: httpx.HTTPError) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise error

    async with client(handler) as c:
        for receiver in receivers(c):
            with pytest.raises(AlertDeliveryError) as caught:
                await receiver.deliver(item())
            assert caught.value.retriable
            assert caught.value.__cause__ is error
            assert_no_secret(caught.value, receiver)


async def test_a_malformed_payload_is_rejected_not_retried() -> None:
    async with client(Recorder(200)) as c:
        for receiver in receivers(c)[:2]:
            with pytest.raises(AlertRejectedError):
                await receiver.deliver(item(starts_at="not a time"))
        with pytest.raises(AlertRejectedError):
            await receivers(c)[0].deliver(item(labels=["not", "a", "map"]))


async def test_build_receivers_from_settings() -> None:
    settings = AlertSettings(
        receivers=[
            ReceiverSettings(name="am", type="alertmanager", url="http://am:9093"),
            ReceiverSettings(
                name="hook", type="webhook", url="https://h", secret=SecretStr(SECRET)
            ),
            ReceiverSettings(
                name="pd", type="pagerduty", url="", routing_key=SecretStr(ROUTING_KEY)
            ),
        ]
    )
    async with client(Recorder()) as c:
        built = build_receivers(settings, c)
    assert {k: type(v) for k, v in built.items()} == {
        "am": AlertmanagerReceiver,
        "hook": WebhookReceiver,
        "pd": PagerDutyReceiver,
    }
    for receiver in built.values():
        assert SECRET not in repr(receiver)
        assert ROUTING_KEY not in repr(receiver)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"name": "h", "type": "webhook", "url": "https://h"}, "needs a secret"),
        ({"name": "h", "type": "webhook", "url": "https://h", "secret": "whsec_%%"}, "whsec_"),
        ({"name": "p", "type": "pagerduty", "url": ""}, "needs a routing_key"),
    ],
)
async def test_build_receivers_rejects_missing_secrets(entry: dict[str, Any], message: str) -> None:
    settings = AlertSettings(receivers=[ReceiverSettings.model_validate(entry)])
    async with client(Recorder()) as c:
        with pytest.raises(ConfigError, match=message) as caught:
            build_receivers(settings, c)
    assert "%%" not in str(caught.value)


async def test_build_receivers_rejects_duplicate_names() -> None:
    am = ReceiverSettings(name="am", type="alertmanager", url="http://am")
    async with client(Recorder()) as c:
        with pytest.raises(ConfigError, match="twice"):
            build_receivers(AlertSettings(receivers=[am, am]), c)


def test_backoff_is_full_jitter_capped() -> None:
    assert backoff_delay(0, 1.0, 300.0, lambda: 1.0) == 1.0
    assert backoff_delay(3, 1.0, 300.0, lambda: 1.0) == 8.0
    assert backoff_delay(3, 1.0, 300.0, lambda: 0.5) == 4.0
    assert backoff_delay(50, 1.0, 300.0, lambda: 1.0) == 300.0
    assert backoff_delay(10_000, 1.0, 300.0, lambda: 1.0) == 300.0
    assert backoff_delay(2, 1.0, 300.0, lambda: 0.0) == 0.0
