"""Alert receivers (docs/architecture.md, alerts): Alertmanager API v2, Standard Webhooks,
PagerDuty Events v2.

Each receiver turns one ``alert_outbox`` row into one HTTP request over a shared
``httpx.AsyncClient`` and says, by the error it raises, whether a retry can help.
Secrets (signing secret, routing key, URL passwords) never reach a message or a ``repr``.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol
from urllib.parse import urlsplit

import httpx

from pipestatus.edge import signatures
from pipestatus.edge.signatures import SignatureCheck, WebhookHeaders, check, signing_key
from pipestatus.errors import AlertDeliveryError, ConfigError
from pipestatus.settings import AlertSettings, ReceiverSettings

PAGERDUTY_EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
_PD_SEVERITIES = frozenset({"critical", "error", "warning", "info"})
_PD_MAX_DEDUP_KEY = 255
_PD_MAX_SUMMARY = 1024
_RETRIABLE_STATUS = frozenset({408, 429})
_USER_AGENT = "pipestatus"


@dataclass(frozen=True, slots=True)
class OutboxItem:
    """One ``alert_outbox`` row as the dispatcher hands it to a receiver."""

    id: int
    dedup_key: str
    receiver: str
    action: Literal["trigger", "resolve"]
    payload: Mapping[str, Any]
    attempts: int = 0

    @property
    def rule(self) -> str:
        return str(self.payload.get("rule", ""))

    @property
    def labels(self) -> dict[str, str]:
        return {str(k): str(v) for k, v in (self.payload.get("labels") or {}).items()}

    @property
    def annotations(self) -> dict[str, Any]:
        return {str(k): v for k, v in (self.payload.get("annotations") or {}).items()}


class AlertRejectedError(AlertDeliveryError):
    """The receiver refused the alert itself (4xx, bad payload): retrying cannot help."""

    retriable = False


class AlertRetryLaterError(AlertDeliveryError):
    """Throttled or unavailable with a ``Retry-After``: wait at least that long."""

    def __init__(self, receiver: str, detail: str, retry_after_s: float) -> None:
        self.retry_after_s = retry_after_s
        super().__init__(receiver, detail)


class Receiver(Protocol):
    """Somewhere alerts go; ``deliver`` raises ``AlertDeliveryError`` when it did not."""

    name: str

    async def deliver(self, row: OutboxItem) -> None: ...


class _HttpReceiver:
    """Shared by the three: one POST, errors classified and scrubbed of secrets."""

    def __init__(
        self, name: str, url: str, client: httpx.AsyncClient, timeout_s: float, secrets: list[str]
    ) -> None:
        self.name = name
        self._url = url
        self._client = client
        self._timeout = timeout_s
        password = urlsplit(url).password
        self._secrets = [s for s in [*secrets, password or ""] if s]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text[:300]

    async def _post(self, body: bytes, headers: Mapping[str, str]) -> None:
        try:
            response = await self._client.post(
                self._url,
                content=body,
                headers={"content-type": "application/json", "user-agent": _USER_AGENT, **headers},
                timeout=self._timeout,
            )
        except httpx.TimeoutException as exc:
            raise AlertDeliveryError(self.name, f"timed out ({type(exc).__name__})") from exc
        except httpx.HTTPError as exc:
            detail = self._scrub(f"{type(exc).__name__}: {exc}")
            raise AlertDeliveryError(self.name, f"transport error: {detail}") from exc
        if response.is_success:
            return
        status, text = response.status_code, self._scrub(response.text.strip())
        detail = f"HTTP {status}: {text}" if text else f"HTTP {status}"
        if status in _RETRIABLE_STATUS or status >= 500:
            after = _retry_after(response.headers.get("retry-after"))
            if after is not None:
                raise AlertRetryLaterError(self.name, detail, after)
            raise AlertDeliveryError(self.name, detail)
        raise AlertRejectedError(self.name, detail)

    def _reject_payload(self, row: OutboxItem, exc: Exception) -> AlertRejectedError:
        return AlertRejectedError(self.name, f"invalid outbox payload (row {row.id}): {exc}")


class AlertmanagerReceiver(_HttpReceiver):
    """Pushes to ``/api/v2/alerts``; Alertmanager deduplicates on the label set."""

    def __init__(self, name: str, url: str, client: httpx.AsyncClient, timeout_s: float) -> None:
        super().__init__(name, url.rstrip("/") + "/api/v2/alerts", client, timeout_s, [])

    async def deliver(self, row: OutboxItem) -> None:
        try:
            labels = {"alertname": row.rule, **row.labels}
            alert: dict[str, Any] = {
                "labels": labels,
                "annotations": {k: _text(v) for k, v in row.annotations.items() if v is not None},
                "startsAt": _timestamp(row.payload["starts_at"]),
            }
            if row.action == "resolve":
                alert["endsAt"] = _timestamp(row.payload.get("ends_at")) or _now()
            if url := row.payload.get("generator_url"):
                alert["generatorURL"] = str(url)
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise self._reject_payload(row, exc) from exc
        await self._post(json.dumps([alert]).encode(), {})


class WebhookReceiver(_HttpReceiver):
    """A JSON POST signed per Standard Webhooks; ``webhook-id`` is stable across retries."""

    def __init__(
        self, name: str, url: str, client: httpx.AsyncClient, timeout_s: float, secret: str
    ) -> None:
        super().__init__(name, url, client, timeout_s, [secret, secret.removeprefix("whsec_")])
        self._key = signing_key(secret)

    async def deliver(self, row: OutboxItem) -> None:
        try:
            event = {
                "type": "alert.firing" if row.action == "trigger" else "alert.resolved",
                "dedup_key": row.dedup_key,
                "rule": row.rule,
                "labels": row.labels,
                "annotations": row.annotations,
                "starts_at": _timestamp(row.payload["starts_at"]),
                "ends_at": _timestamp(row.payload.get("ends_at")),
            }
            body = json.dumps(event, separators=(",", ":")).encode()
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise self._reject_payload(row, exc) from exc
        msg_id, stamp = f"msg_{row.id}", str(int(time.time()))
        headers = {
            "webhook-id": msg_id,
            "webhook-timestamp": stamp,
            "webhook-signature": "v1," + signatures.sign(self._key, msg_id, stamp, body),
        }
        await self._post(body, headers)


class PagerDutyReceiver(_HttpReceiver):
    """Events API v2: trigger/resolve correlated by ``dedup_key``; 202 is success."""

    def __init__(
        self, name: str, url: str, client: httpx.AsyncClient, timeout_s: float, routing_key: str
    ) -> None:
        super().__init__(name, url or PAGERDUTY_EVENTS_URL, client, timeout_s, [routing_key])
        self._routing_key = routing_key

    async def deliver(self, row: OutboxItem) -> None:
        event: dict[str, Any] = {
            "routing_key": self._routing_key,
            "event_action": row.action,
            "dedup_key": pagerduty_dedup_key(row.dedup_key),
        }
        if row.action == "trigger":
            try:
                labels, annotations = row.labels, row.annotations
                summary = str(annotations.get("summary") or row.rule or row.dedup_key)
                severity = labels.get("severity", "error")
                event["client"] = _USER_AGENT
                event["payload"] = {
                    "summary": summary[:_PD_MAX_SUMMARY],
                    "source": "pipestatus",
                    "severity": severity if severity in _PD_SEVERITIES else "error",
                    "timestamp": _timestamp(row.payload.get("starts_at")),
                    "component": labels.get("provider"),
                    "group": labels.get("pipeline_id"),
                    "class": row.rule or None,
                    "custom_details": {**labels, **annotations},
                }
                event["payload"] = {k: v for k, v in event["payload"].items() if v is not None}
            except (AttributeError, TypeError, ValueError) as exc:
                raise self._reject_payload(row, exc) from exc
        await self._post(json.dumps(event).encode(), {})


def pagerduty_dedup_key(dedup_key: str) -> str:
    """PagerDuty caps keys at 255 characters; a longer key becomes its stable SHA-256."""
    if len(dedup_key) <= _PD_MAX_DEDUP_KEY:
        return dedup_key
    return hashlib.sha256(dedup_key.encode()).hexdigest()


def build_receivers(settings: AlertSettings, client: httpx.AsyncClient) -> dict[str, Receiver]:
    """One receiver per configured entry; a missing secret is a ``ConfigError`` here."""
    receivers: dict[str, Receiver] = {}
    for r in settings.receivers:
        if r.name in receivers:
            raise ConfigError(f"alert receiver {r.name!r} is configured twice")
        receivers[r.name] = _build_one(r, client)
    return receivers


def _build_one(r: ReceiverSettings, client: httpx.AsyncClient) -> Receiver:
    if r.type == "alertmanager":
        return AlertmanagerReceiver(r.name, r.url, client, r.timeout_s)
    if r.type == "webhook":
        if r.secret is None:
            raise ConfigError(f"webhook receiver {r.name!r} needs a secret (whsec_…)")
        return WebhookReceiver(r.name, r.url, client, r.timeout_s, r.secret.get_secret_value())
    if r.routing_key is None:
        raise ConfigError(f"pagerduty receiver {r.name!r} needs a routing_key")
    return PagerDutyReceiver(r.name, r.url, client, r.timeout_s, r.routing_key.get_secret_value())


def http_client(transport: httpx.AsyncBaseTransport | None = None) -> httpx.AsyncClient:
    """The one client all receivers share: pooled, no redirects (a redirect is a config error)."""
    return httpx.AsyncClient(
        transport=transport,
        follow_redirects=False,
        limits=httpx.Limits(max_connections=20, max_keepalive_connections=10),
        timeout=httpx.Timeout(10.0),
    )


def sign(secret: str, msg_id: str, timestamp: str, body: bytes) -> str:
    """The ``webhook-signature`` header value for one message (``v1,<base64>``)."""
    return "v1," + signatures.sign(signing_key(secret), msg_id, timestamp, body)


def verify_signature(
    secret: str, headers: Mapping[str, str], body: bytes, tolerance_s: float = 300
) -> bool:
    """True when any ``v1`` signature matches and the timestamp is within the tolerance."""
    try:
        key = signing_key(secret)
    except ConfigError:
        return False
    verdict = check(
        WebhookHeaders.of(headers), body, [key], now=time.time(), tolerance_s=tolerance_s
    )
    return verdict is SignatureCheck.valid


def _timestamp(value: object) -> str | None:
    """An ISO 8601 value normalised to RFC 3339 in UTC; naive values are taken as UTC."""
    if value is None:
        return None
    parsed = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC).isoformat()


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _text(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _retry_after(value: str | None) -> float | None:
    """Delta-seconds form only; an HTTP-date is rare from these receivers."""
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None
