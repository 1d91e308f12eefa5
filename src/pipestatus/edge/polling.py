"""What a poll publishes, decided purely from what the API returned and what was published.

A poll yields resources, each a JSON object exactly as the provider returned it (a list
item or a single resource). The fingerprint covers only the status-relevant fields of the
provider (``STATUS_FIELDS``), so a resource whose status did not move publishes nothing;
the event id is ``{run id}:{fingerprint}`` under the source ``pipestatus/poll/{provider}``,
so a republished resource (crash between produce and checkpoint, two replicas) is the
same event to the worker. A terminal run stays in the state for ``grace_s`` after it
ended: read by id while it is live or within the window (a re-run or a FIX changes the
fingerprint and is published), then forgotten once the API stops listing it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

import orjson

from pipestatus.domain.identity import canonical_json
from pipestatus.domain.states import TERMINAL, Provider
from pipestatus.edge.envelope import CE_SPECVERSION, OutboundRecord
from pipestatus.errors import EventError
from pipestatus.providers import parse_document

#: Fields whose change is a status change, per provider (the rest is not fingerprinted).
STATUS_FIELDS: Final[Mapping[Provider, tuple[str, ...]]] = {
    Provider.krenalis: ("endTime", "passed", "failed", "error"),
    Provider.nuvo: ("status", "error", "logs", "updated_at"),
    Provider.codat: (
        "status", "statusDescription", "errorMessage", "completed", "progress",
        "isCompleted", "isErrored",
    ),
    Provider.zoho_dataprep: ("response_status", "pipelinerun"),
}  # fmt: skip

#: The field naming what a by-id read needs besides the run id (Codat: the company).
LOCATOR_FIELDS: Final[Mapping[Provider, str]] = {Provider.codat: "companyId"}

#: The CloudEvents ``type`` of a polled resource, after the provider's type prefix.
POLLED_TYPE: Final = "polled"


@dataclass(frozen=True, slots=True)
class Polled:
    """One resource as the API returned it, with what pipestatus reads from it."""

    run_id: str
    fingerprint: str
    terminal: bool
    document: dict[str, Any]
    #: What is published: the response body of a single resource, else the item's JSON.
    body: bytes
    locator: str | None = None


@dataclass(frozen=True, slots=True)
class Known:
    """A run the poller has published: its last fingerprint and when it was seen ended."""

    run_id: str
    fingerprint: str
    ended_seen_at: datetime | None
    locator: str | None = None


@dataclass(frozen=True, slots=True)
class Listing:
    """What a list read returned: resources, and ids it still names but did not re-read
    (Zoho's watched jobs, whose summaries are read one by one while live)."""

    resources: list[Polled]
    named: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Plan:
    publish: tuple[Polled, ...]
    unchanged: int
    #: Runs ended longer than the grace window ago that the API no longer returned.
    expired: tuple[str, ...]


def live(known: Mapping[str, Known], *, now: datetime, grace: timedelta) -> list[Known]:
    """Runs still read by id when a list omits them: not ended, or ended within grace."""
    return [
        run
        for run in known.values()
        if run.ended_seen_at is None or now - run.ended_seen_at <= grace
    ]


def checkpoint(resource: Polled, before: Known | None, *, now: datetime) -> Known:
    """The state row once ``resource`` is acknowledged; a reopened run is live again."""
    if not resource.terminal:
        ended = None
    elif before is not None and before.ended_seen_at is not None:
        ended = before.ended_seen_at
    else:
        ended = now
    locator = resource.locator or (before.locator if before is not None else None)
    return Known(resource.run_id, resource.fingerprint, ended, locator)


def inner(provider: Provider, document: dict[str, Any]) -> dict[str, Any]:
    """The resource inside a by-id response (nuvo wraps it in ``{"data": {...}}``)."""
    if provider is Provider.nuvo and isinstance(document.get("data"), dict):
        data: dict[str, Any] = document["data"]
        return data
    return document


def polled(
    provider: Provider, document: dict[str, Any], body: bytes | None = None
) -> Polled | None:
    """Reads one resource; ``None`` when it names no run at all (nothing to key it by).

    A resource the worker would reject is still published (its dead letter is the visible
    trace of an API change), keyed by its raw ``id``.
    """
    resource = inner(provider, document)
    body = orjson.dumps(document) if body is None else body
    fields = {name: resource.get(name) for name in STATUS_FIELDS[provider]}
    fingerprint = hashlib.sha256(canonical_json(fields)).hexdigest()[:32]
    found = resource.get(LOCATOR_FIELDS.get(provider, ""))
    locator = found if isinstance(found, str) and found else None
    try:
        observations = parse_document(document, provider).observations
    except EventError:
        raw = resource.get("id")
        if isinstance(raw, bool) or not isinstance(raw, str | int) or not str(raw):
            return None
        return Polled(str(raw), fingerprint, False, document, body, locator)
    if not observations:
        return None
    run = observations[0]
    return Polled(run.run_id, fingerprint, run.state in TERMINAL, document, body, locator)


def plan(
    seen: Iterable[Polled],
    known: Mapping[str, Known],
    *,
    now: datetime,
    grace: timedelta,
    named: frozenset[str] = frozenset(),
) -> Plan:
    """Which resources to publish (changed or new), how many did not move, which expire
    (ended past the grace window, and neither returned nor ``named`` by the API now)."""
    publish: dict[str, Polled] = {}
    returned: set[str] = set(named)
    unchanged = 0
    for resource in seen:
        returned.add(resource.run_id)
        before = known.get(resource.run_id)
        if before is not None and before.fingerprint == resource.fingerprint:
            unchanged += 1
        else:
            publish[resource.run_id] = resource  # a run listed twice: the last one wins
    expired = tuple(
        run_id
        for run_id, run in known.items()
        if run_id not in returned
        and run.ended_seen_at is not None
        and now - run.ended_seen_at > grace
    )
    return Plan(tuple(publish.values()), unchanged, expired)


def event_source(provider: Provider) -> str:
    return f"pipestatus/poll/{provider.value}"


def event_id(resource: Polled) -> str:
    return f"{resource.run_id}:{resource.fingerprint}"


def to_record(
    provider: Provider, resource: Polled, *, topic: str, type_prefix: str, at: datetime
) -> OutboundRecord:
    """The record of one changed resource: its JSON as returned, keyed by the run id."""
    headers = (
        ("ce_specversion", CE_SPECVERSION),
        ("ce_id", event_id(resource)),
        ("ce_source", event_source(provider)),
        ("ce_type", type_prefix + POLLED_TYPE),
        ("ce_time", at.isoformat().replace("+00:00", "Z")),
        ("content-type", "application/json"),
    )
    return OutboundRecord(
        topic=topic,
        key=resource.run_id.encode(),
        value=resource.body,
        headers=tuple((name, value.encode()) for name, value in headers),
    )


def backoff_s(failures: int, *, initial: float, maximum: float, jitter: float) -> float:
    """The wait after ``failures`` failed rounds in a row: exponential from ``initial``,
    capped at ``maximum``, scaled by ``jitter`` in [0.5, 1] (so replicas spread out)."""
    ceiling = min(maximum, initial * 2.0 ** max(failures - 1, 0))
    return float(ceiling * min(max(jitter, 0.5), 1.0))
