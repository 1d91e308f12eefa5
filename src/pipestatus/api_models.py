"""The read API's response and request models, and its opaque page cursors (pure).

Every list is newest first and paged by a keyset cursor: the last row's sort key,
encoded, so the next page starts strictly after it and never counts rows (no ``OFFSET``).
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from pipestatus.domain.states import ErrorCategory, Provider, RunState
from pipestatus.views import RunView, TransitionView

#: Page sizes: the default, and the most one request may ask for.
DEFAULT_LIMIT = 50
MAX_LIMIT = 500
#: Largest dead-letter id the API takes: the largest integer every JSON parser keeps exact.
MAX_ID = 2**53 - 1


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class RunPage(_Frozen):
    """One page of runs, most recently changed first."""

    items: list[RunView]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null: last")


class RunDetail(_Frozen):
    """A run with every transition it made, oldest first."""

    run: RunView
    transitions: list[TransitionView]


class PipelineView(_Frozen):
    """A pipeline as its runs show it."""

    provider: Provider
    pipeline_id: str
    runs: int = Field(description="runs stored for this pipeline")
    latest_run_id: str = Field(description="the run changed most recently")
    state: RunState = Field(description="state of the latest run")
    updated_at: datetime = Field(description="last change of the latest run")
    error_category: ErrorCategory | None
    error_message: str | None
    consecutive_failures: int = Field(description="failed runs that ended after the last success")
    last_success_at: datetime | None
    last_failure_at: datetime | None


class PipelinePage(_Frozen):
    items: list[PipelineView]
    next_cursor: str | None


class DeadLetterView(_Frozen):
    """A record the worker refused, and why."""

    id: int
    provider: Provider | None
    source_topic: str
    source_partition: int
    source_offset: int
    value_size: int
    value_truncated: bool
    stage: str
    reason: str
    field_path: str
    message: str
    first_seen_at: datetime
    replayed_at: datetime | None
    replay_result: str | None


class DeadLetterDetail(DeadLetterView):
    """A dead letter with the record's key, value and headers as stored."""

    key: str | None = Field(description='UTF-8 text, or "hex:" and the bytes in hex')
    value: str | None = Field(description='UTF-8 text, or "hex:" and the bytes in hex')
    headers: list[dict[str, str]]


class DeadLetterPage(_Frozen):
    items: list[DeadLetterView]
    next_cursor: str | None


class ReplayRequest(_Frozen):
    """Which open dead letters to replay: these ``ids``, those of a ``reason``, or both."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        # What ``_names_something`` checks, said in the schema too.
        json_schema_extra={
            "anyOf": [
                {"required": ["ids"], "properties": {"ids": {"minItems": 1}}},
                {"required": ["reason"], "properties": {"reason": {"type": "string"}}},
            ]
        },
    )

    ids: list[Annotated[int, Field(ge=1, le=MAX_ID)]] = Field(
        default_factory=list, max_length=10_000
    )
    reason: str | None = Field(None, min_length=1, max_length=200)

    @model_validator(mode="after")
    def _names_something(self) -> ReplayRequest:
        if not self.ids and self.reason is None:
            raise ValueError("name the dead letters to replay: `ids`, `reason`, or both")
        return self


class ReplayResult(_Frozen):
    applied: int
    duplicate: int
    stale: int
    still_failing: int


class AlertStateView(_Frozen):
    dedup_key: str
    rule: str
    provider: Provider
    pipeline_id: str
    run_id: str | None
    status: Literal["firing", "resolved"]
    consecutive_failures: int
    labels: dict[str, str]
    annotations: dict[str, str]
    started_at: datetime
    updated_at: datetime
    resolved_at: datetime | None
    last_sent_at: datetime | None


class DeliveryView(_Frozen):
    """One notification to one receiver (the alert outbox)."""

    id: int
    dedup_key: str
    receiver: str
    action: Literal["trigger", "resolve"]
    created_at: datetime
    attempts: int
    last_error: str | None
    delivered_at: datetime | None
    gave_up_at: datetime | None


class AlertsView(_Frozen):
    states: list[AlertStateView] = Field(description="firing first, then recently changed")
    deliveries: list[DeliveryView] = Field(description="most recent first")


class StateCount(_Frozen):
    provider: Provider
    state: RunState
    count: int


class BucketCount(_Frozen):
    start: datetime = Field(description="bucket start; a bucket holds runs last changed in it")
    state: RunState
    count: int


class StatsView(_Frozen):
    by_provider_state: list[StateCount]
    interval_s: int
    since: datetime
    until: datetime
    buckets: list[BucketCount] = Field(description="only buckets and states with runs")


class Problem(_Frozen):
    """An error, as RFC 9457 problem details (``application/problem+json``)."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    errors: list[dict[str, Any]] | None = Field(None, description="invalid parameters, if any")


class CursorError(ValueError):
    """A cursor this API did not hand out (or from a different list)."""


def encode_cursor(kind: str, *key: Any) -> str:
    """The opaque cursor of a sort key (datetimes as ISO 8601)."""
    values = [v.isoformat() if isinstance(v, datetime) else v for v in key]
    raw = json.dumps([kind, *values], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(kind: str, cursor: str, types: tuple[type, ...]) -> tuple[Any, ...]:
    """The sort key a cursor of ``kind`` carries, each value of the given type."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        decoded = json.loads(raw)
    except (binascii.Error, ValueError) as exc:
        raise CursorError("cursor is not one this API handed out") from exc
    if not (isinstance(decoded, list) and decoded and decoded[0] == kind):
        raise CursorError(f"cursor is not a {kind} cursor")
    values = decoded[1:]
    if len(values) != len(types):
        raise CursorError("cursor is not one this API handed out")
    out: list[Any] = []
    for value, wanted in zip(values, types, strict=True):
        try:
            if wanted is datetime:
                moment = datetime.fromisoformat(value)
                if moment.tzinfo is None:
                    raise ValueError("naive")
                out.append(moment)
            elif isinstance(value, wanted) and not isinstance(value, bool):
                out.append(value)
            else:
                raise ValueError(type(value).__name__)
        except (TypeError, ValueError) as exc:
            raise CursorError("cursor is not one this API handed out") from exc
    return tuple(out)
