"""A deterministic, realistic workload for ``pipestatus bench`` (issue #6).

``generate(events, seed)`` returns exactly ``events`` Kafka records, always the same ones
for the same arguments. The payloads are built like the fixtures in ``tests/fixtures``
(same shapes, same nesting, fresh ids and times), one *life* per run:

- **Zoho DataPrep** (Job Summary responses from a poller): created → running at
  extract / raw parse / transform / load (the poller misses some) → succeeded, failed at
  a stage, stopped or system-killed. A failed or killed run is often re-run: the same
  run id with ``rerun_count`` (or ``re_run_count``) 1, i.e. attempt 2.
- **Krenalis** (pipeline-run resources from a poller): running → ended (succeeded, with
  warnings when records failed, or one of the termination errors, or a pipeline error);
  6- or 7-step count arrays, string or integer ids.
- **Codat**: pull operations polled through their statuses (Initial/Queued → Fetching →
  … → Processing → Complete or an error), sometimes followed by the legacy
  ``Data sync completed`` / ``Data Sync Status Changed To Error`` rule webhook for the same
  dataset; and ``read.completed[.initial]`` webhooks that fan out per data type. Webhooks
  carry Standard Webhooks headers (``webhook-id`` …), as Svix delivers them.
- **nuvo**: an execution created (create response or bare ``PROCESSING``, sometimes as
  ``{"data": {...}}``) → ``SUCCESSFUL`` or ``FAILED``; a failed execution is often fixed,
  which appends a ``FIX`` log: attempt 2, processing again, then successful.

Lives start every 1.5 s of simulated time (2026-07-01 onwards) and overlap; records are
delivered in event-time order, keyed by run id (so one run stays in one partition). Then:

- ``REORDERED_SHARE`` (10 %) of the records are delivered late: two consecutive events
  of one life swap places, so the earlier one arrives after its successor;
- ``DUPLICATE_SHARE`` (15 %) of the records are exact re-deliveries (same key, value and
  headers) of an earlier valid record, 1 to ~2000 records after it;
- ``INVALID_SHARE`` (1 %) of the records are invalid, each of a kind the worker must
  dead-letter: truncated or empty values (``not_json``), broken fields
  (``invalid_payload``), statuses no table maps (``unmapped_status``), events that report
  no run (``unknown_payload_kind``) and Zoho API error reports (``provider_api_error``).

``Workload.expected`` is each run's final (state, attempt) by construction — what the
``runs`` table must show once everything is consumed, in any delivery order.
"""

from __future__ import annotations

import base64
import json
import math
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal, TypeVar

from pipestatus.domain.states import Provider

Role = Literal["original", "duplicate", "invalid"]
_T = TypeVar("_T")

DUPLICATE_SHARE: Final = 0.15
REORDERED_SHARE: Final = 0.10
INVALID_SHARE: Final = 0.01

#: How often each kind of life starts (runs, not records: a Codat pull operation has
#: more records than a Krenalis run). With these weights every provider has at least
#: ~12 % of the records; see ``Workload.summary``.
LIFE_WEIGHTS: Final[tuple[tuple[str, float], ...]] = (
    ("codat_pull", 0.27),
    ("codat_read", 0.03),
    ("krenalis", 0.30),
    ("nuvo", 0.25),
    ("zoho", 0.15),
)

_T0_MS: Final = 1_782_864_000_000  # 2026-07-01T00:00:00Z
_LIFE_SPACING_MS: Final = 1_500
_MAX_DUPLICATE_DISTANCE: Final = 2_000
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class BenchRecord:
    """One Kafka record of the workload; ``provider`` names its topic."""

    provider: Provider
    key: bytes
    value: bytes
    headers: tuple[tuple[str, bytes], ...]
    role: Role
    #: The life (one run's history) the record belongs to, and its place in it; -1 when
    #: invalid. A duplicate carries its original's life and step.
    life: int = -1
    step: int = -1
    #: Delivered after the next event of its life (a reordered delivery).
    late: bool = False
    #: The dead-letter reason an invalid record must get.
    expected_reason: str | None = None


@dataclass(frozen=True, slots=True)
class ExpectedRun:
    state: str
    attempt: int


@dataclass
class Workload:
    seed: int
    records: list[BenchRecord]
    #: (provider, run_id) → final state and attempt.
    expected: dict[tuple[str, str], ExpectedRun]
    lives: int

    def summary(self) -> dict[str, Any]:
        """Counts by role and provider, reordered records, bytes: what the report shows."""
        roles = Counter(record.role for record in self.records)
        providers = Counter(record.provider.value for record in self.records)
        reasons = Counter(r.expected_reason for r in self.records if r.expected_reason)
        states = Counter(run.state for run in self.expected.values())
        return {
            "records": len(self.records),
            "bytes": sum(len(record.value) for record in self.records),
            "original": roles["original"],
            "duplicate": roles["duplicate"],
            "invalid": roles["invalid"],
            "late": sum(record.late for record in self.records),
            "lives": self.lives,
            "runs": len(self.expected),
            "reruns": sum(run.attempt > 1 for run in self.expected.values()),
            "providers": dict(sorted(providers.items())),
            "invalid_reasons": dict(sorted(reasons.items())),
            "final_states": dict(sorted(states.items())),
        }

    def expected_by_state(self) -> dict[tuple[str, str], int]:
        """(provider, state) → number of runs expected in it."""
        counts = Counter((provider, run.state) for (provider, _), run in self.expected.items())
        return dict(sorted(counts.items()))


def generate(events: int, seed: int = 1) -> Workload:
    """Exactly ``events`` records, deterministic for ``(events, seed)``."""
    if events < 1:
        raise ValueError("events must be at least 1")
    rng = _Rand(seed)
    n_invalid = round(events * INVALID_SHARE)
    n_duplicate = round(events * DUPLICATE_SHARE)
    n_original = events - n_invalid - n_duplicate

    lives = _lives(rng, n_original)
    expected = _expected(lives)
    order = _delivery_order(lives)
    late = _reorder(rng, lives, order, round(events * REORDERED_SHARE))

    position = {slot: index for index, slot in enumerate(order)}
    placed: list[tuple[float, int, BenchRecord]] = []
    originals: list[tuple[int, BenchRecord]] = []
    for life_index, life in enumerate(lives):
        for step, event in enumerate(life):
            record = _record(event, "original", life_index, step, (life_index, step) in late)
            pos = position[(life_index, step)]
            placed.append((float(pos), 0, record))
            originals.append((pos, record))
    originals.sort(key=lambda item: item[0])
    for index in range(n_duplicate):
        pos, original = originals[rng.r.randrange(len(originals))]
        distance = int(math.exp(rng.r.uniform(0.0, math.log(_MAX_DUPLICATE_DISTANCE))))
        copy = BenchRecord(
            original.provider,
            original.key,
            original.value,
            original.headers,
            "duplicate",
            original.life,
            original.step,
        )
        placed.append((pos + distance + 0.5, 1 + index, copy))
    placed.extend(
        (rng.r.uniform(0, max(len(order), 1)), 1 + n_duplicate + index, _invalid(rng))
        for index in range(n_invalid)
    )
    placed.sort(key=lambda item: (item[0], item[1]))
    return Workload(seed, [record for _, _, record in placed], expected, len(lives))


# --------------------------------------------------------------------------- plumbing


@dataclass(slots=True)
class _Event:
    """One provider report in a life; ``runs`` says which runs it moves where."""

    at_ms: int
    provider: Provider
    key: str
    document: Any
    #: (run id, state, attempt) for each run the event reports on.
    runs: tuple[tuple[str, str, int], ...]
    headers: tuple[tuple[str, bytes], ...] = ()


class _Rand:
    """The one source of randomness: ``random.Random(seed)`` and id helpers."""

    _BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

    def __init__(self, seed: int) -> None:
        self.r = random.Random(seed)  # noqa: S311  # a reproducible workload, not crypto
        self.serial = 0

    def chance(self, p: float) -> bool:
        return self.r.random() < p

    def pick(self, items: Sequence[_T]) -> _T:
        return items[self.r.randrange(len(items))]

    def weighted(self, items: Sequence[tuple[_T, float]]) -> _T:
        total = sum(weight for _, weight in items)
        point = self.r.random() * total
        for item, weight in items:
            point -= weight
            if point < 0:
                return item
        return items[-1][0]

    def uuid(self) -> str:
        value = (self.r.getrandbits(128) & ~(0xF << 76) | (4 << 76)) & ~(0x3 << 62) | (2 << 62)
        text = f"{value:032x}"
        return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"

    def base62(self, length: int) -> str:
        return "".join(self.pick(self._BASE62) for _ in range(length))

    def hexid(self, length: int) -> str:
        return f"{self.r.getrandbits(4 * length):0{length}x}"

    def next_serial(self) -> int:
        self.serial += 1
        return self.serial


def _moment(ms: int) -> datetime:
    return _EPOCH + timedelta(milliseconds=ms)


def _rfc3339(ms: int) -> str:
    return _moment(ms).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def _rfc3339_7(ms: int, rng: _Rand) -> str:
    """Codat's 7 fractional digits."""
    return (
        _moment(ms).strftime("%Y-%m-%dT%H:%M:%S.")
        + f"{ms % 1000:03d}{rng.r.randrange(10_000):04d}Z"
    )


def _nuvo_time(ms: int) -> str:
    return _moment(ms).strftime("%Y-%m-%d %H:%M:%S.") + f"{ms % 1000:03d}"


def _json(document: Any) -> bytes:
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()


def _record(event: _Event, role: Role, life: int, step: int, late: bool) -> BenchRecord:
    value = event.document if isinstance(event.document, bytes) else _json(event.document)
    return BenchRecord(
        event.provider, event.key.encode(), value, event.headers, role, life, step, late
    )


def _webhook_headers(rng: _Rand, at_ms: int) -> tuple[tuple[str, bytes], ...]:
    """Standard Webhooks headers as Svix sends them (the signature is not checked)."""
    signature = base64.b64encode(rng.r.getrandbits(256).to_bytes(32, "big")).decode()
    return (
        ("webhook-id", f"msg_{rng.base62(27)}".encode()),
        ("webhook-timestamp", str(at_ms // 1000).encode()),
        ("webhook-signature", f"v1,{signature}".encode()),
        ("content-type", b"application/json"),
    )


def _lives(rng: _Rand, n_original: int) -> list[list[_Event]]:
    builders = {
        "codat_pull": _codat_pull_life,
        "codat_read": _codat_read_life,
        "krenalis": _krenalis_life,
        "nuvo": _nuvo_life,
        "zoho": _zoho_life,
    }
    world = _World(rng)
    lives: list[list[_Event]] = []
    total = 0
    while total < n_original:
        start = _T0_MS + len(lives) * _LIFE_SPACING_MS + rng.r.randrange(1_000)
        life = builders[rng.weighted(LIFE_WEIGHTS)](rng, world, start)
        life = life[: n_original - total]  # the last life may still be in flight
        lives.append(life)
        total += len(life)
    return lives


def _expected(lives: Sequence[Sequence[_Event]]) -> dict[tuple[str, str], ExpectedRun]:
    """A life's events are in convergence order, so each run ends as its last report."""
    expected: dict[tuple[str, str], ExpectedRun] = {}
    for life in lives:
        for event in life:
            for run_id, state, attempt in event.runs:
                expected[(event.provider.value, run_id)] = ExpectedRun(state, attempt)
    return expected


def _delivery_order(lives: Sequence[Sequence[_Event]]) -> list[tuple[int, int]]:
    slots = [
        (event.at_ms, life_index, step)
        for life_index, life in enumerate(lives)
        for step, event in enumerate(life)
    ]
    slots.sort()
    return [(life_index, step) for _, life_index, step in slots]


def _reorder(
    rng: _Rand, lives: Sequence[Sequence[_Event]], order: list[tuple[int, int]], wanted: int
) -> set[tuple[int, int]]:
    """Swaps ``wanted`` disjoint pairs of consecutive events; returns the late ones."""
    pairs = [
        (life_index, step) for life_index, life in enumerate(lives) for step in range(len(life) - 1)
    ]
    rng.r.shuffle(pairs)
    used: set[tuple[int, int]] = set()
    late: set[tuple[int, int]] = set()
    position = {slot: index for index, slot in enumerate(order)}
    for life_index, step in pairs:
        if len(late) >= wanted:
            break
        first, second = (life_index, step), (life_index, step + 1)
        if first in used or second in used:
            continue
        used.update((first, second))
        a, b = position[first], position[second]
        order[a], order[b] = second, first
        position[first], position[second] = b, a
        late.add(first)
    return late


# --------------------------------------------------------------------------- providers


@dataclass(slots=True)
class _ZohoPipeline:
    id: str
    name: str
    project: dict[str, Any]
    user: dict[str, Any]
    user_full: dict[str, Any]
    pipeline: dict[str, Any]
    source: str
    dataset: str
    sink: str
    serial_base: int


@dataclass(slots=True)
class _CodatCompany:
    id: str
    name: str
    connections: list[str]


@dataclass
class _World:
    """Pools of pipelines, companies and organizations the lives draw from."""

    rng: _Rand
    zoho: list[_ZohoPipeline] = field(default_factory=list)
    codat: list[_CodatCompany] = field(default_factory=list)
    krenalis: list[str] = field(default_factory=list)
    nuvo: list[tuple[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        rng = self.rng
        self.zoho = [_zoho_pipeline(rng, index) for index in range(24)]
        self.codat = [
            _CodatCompany(
                rng.uuid(),
                f"{rng.pick(_COMPANY_WORDS)} {rng.pick(_COMPANY_KINDS)}",
                [rng.uuid() for _ in range(1 + rng.r.randrange(2))],
            )
            for _ in range(300)
        ]
        self.krenalis = [rng.base62(12) for _ in range(40)]
        self.nuvo = [(rng.hexid(24), rng.hexid(24)) for _ in range(30)]


_COMPANY_WORDS: Final = ("Harbour", "Northwind", "Granite", "Bluebell", "Copper", "Meadow")
_COMPANY_KINDS: Final = ("Bikes Ltd", "Joinery", "Foods plc", "Logistics", "Studio", "Labs")
_USERS: Final = (
    ("Asha Raman", "asha.raman"),
    ("Dana Ortiz", "dana.ortiz"),
    ("Lee Park", "lee.park"),
    ("Mo Haddad", "mo.haddad"),
)


def _zoho_pipeline(rng: _Rand, index: int) -> _ZohoPipeline:
    base = 2650000000418005 + 1000 * index
    name, login = rng.pick(_USERS)
    zuid = str(80012345 + index)
    user_id = str(2650000000012003 + index)
    profile = {"id": "2650000000010011"}
    user = {
        "id": user_id,
        "zuid": zuid,
        "username": name,
        "email_id": f"{login}@example.com",
        "invited_time": "1761800000000",
        "profile": profile,
        "status": 1,
        "zsoid": "70054321",
        "profilelink": f"https://accounts.zoho.com/u/{zuid}",
    }
    user_full = {
        **user,
        "invited_by": None,
        "profile": {
            "id": "2650000000010011",
            "name": "Org Admin",
            "is_default": True,
            "zuid": None,
            "permission": "7FFFFFFF",
        },
        "has_more_rows": [False],
    }
    project = {
        "id": str(base - 1004),
        "name": rng.pick(("Sales sync", "Finance", "Marketing ops", "Warehouse")),
        "description": None,
        "status": 1,
        "migration_status": 3,
        "is_locked": False,
        "created_time": "1761900000000",
        "modtime": "1766000000000",
        "created_by": user,
        "modified_by": user_full,
    }
    source = rng.pick(("public.contactnew", "public.orders", "sales.deals", "crm.accounts"))
    dataset = source.split(".")[-1]
    sink = rng.pick(("box", "zoho_analytics", "s3", "bigquery"))
    pipeline_name = f"{dataset.title()} to {sink}"
    pipeline = {
        "id": str(base),
        "name": pipeline_name,
        "description": None,
        "created_by": user,
        "created_time": "1762000000000",
        "modified_by": user_full,
        "modtime": "1766100000000",
        "status": 1,
        "is_ready": True,
        "depends_on_past": False,
        "project": project,
    }
    return _ZohoPipeline(
        str(base), pipeline_name, project, user, user_full, pipeline, source, dataset, sink, base
    )


_ZOHO_STAGES: Final = (
    (5, "ZSOrchExtractOperator"),
    (7, "ZSOrchParseRawDataOperator"),
    (10, "ZSOrchTransformOperator"),
    (20, "ZSOrchLoadOperator"),
)
_ZOHO_FAILURES: Final = {
    5: "Connection refused by crm-postgres:5432",
    7: "Unable to parse row 1042: unterminated quoted field",
    10: "Rule 7 (split column) failed: column 'full_name' not found",
    20: "Box API returned 403: insufficient folder permissions",
}


@dataclass(slots=True)
class _ZohoRun:
    pipeline: _ZohoPipeline
    id: str
    serial: int
    created_ms: int
    rows: int
    invalid: int


def _zoho_stage(
    run: _ZohoRun, index: int, status: int, start_ms: int, end_ms: int | None
) -> dict[str, Any]:
    p = run.pipeline
    stage_type, operator = _ZOHO_STAGES[index]
    stage_id = str(run.serial + 131 + 4 * index)
    name = p.source if stage_type in (5, 7) else p.dataset
    meta = json.dumps({"top": 235, "left": 80 + 200 * index, "version": 1}, separators=(",", ":"))
    stage: dict[str, Any] = {
        "id": stage_id,
        "pipelinerun": {"id": run.id},
        "pipelinetask": {
            "id": str(p.serial_base + 20 + index),
            "name": name,
            "type": stage_type,
            "pipeline": {"id": p.id},
            "created_by": {"id": p.user["id"]},
            "created_time": 1762000000000 + index,
            "modified_by": {"id": p.user["id"]},
            "modified_time": 1766100000000 + index,
            "status": 1,
            "latest_only": False,
            "depends_on_past": False,
            "trigger_rule": "ALL_SUCCESS",
            "client_meta": meta,
            "weight": 1,
        },
        "execution_status": status,
        "index": index,
        "created_time": str(start_ms - 1000),
        "client_meta": meta,
        "message": None,
        "operator_id": f"com.zoho.dataprep.operator.{operator}",
        "retry_count": 0,
        "status": 1,
        "time_to_live": str(run.created_ms + 2_592_000_000),
        "start_time": str(start_ms),
    }
    if end_ms is not None:
        stage["completion_time"] = str(end_ms)
        stage["storage_used"] = str(172 if stage_type != 20 else run.rows * 231)
        stage["row_count"] = str(run.rows)
    failure = _ZOHO_FAILURES[stage_type] if status == -1 else None
    serial = run.serial
    if stage_type == 5:
        stage["rawdatasetaudit"] = {
            "id": str(serial + 232),
            "audit_time": str(start_ms + 1000),
            "is_referred": False,
            "datasourceaudit": {"id": str(serial + 332)},
            "rawdatasetconfigaudit": {"id": str(serial + 432)},
            "rawdataset": {
                "id": str(p.serial_base + 2006),
                "name": p.source,
                "replication_frequency": None,
                "created_by": {"id": p.user["id"]},
                "created_time": 1762000600000,
                "modtime": None,
                "status": 1,
                "pipelinedatasource": {
                    "id": str(p.serial_base + 998),
                    "name": "crm-postgres",
                    "replication_type": "FULL",
                    "status": 1,
                    "project": {"id": p.project["id"]},
                    "connection": {"id": str(p.serial_base - 117002)},
                },
            },
            "status": 1,
            "error_message": None,
        }
        progress = 100 if status == 1 else 40
        state = {1: "SUCCESS", 0: "RUNNING", -1: "FAILED"}[status]
        streams = {
            str(p.serial_base + 3000): {
                "size": 0,
                "catalog_stream_id": str(p.serial_base + 3000),
                "execution_status": state,
                "progress": progress,
            }
        }
        audit: dict[str, Any] = {
            "id": str(serial + 332),
            "execution_status": status,
            "streams_info": json.dumps(streams, separators=(",", ":")),
            "killed_batch_catalog_ids": None,
            "status": 1,
            "type": 1,
            "pipelinedatasource": {
                "id": str(p.serial_base + 998),
                "name": "crm-postgres",
                "replication_type": "FULL",
                "created_by": {"id": p.user["id"]},
                "project": {"id": p.project["id"]},
                "connection": {"id": str(p.serial_base - 117002)},
            },
            "error_message": failure,
            "logs": [],
        }
        if end_ms is not None:
            audit["completed_time"] = str(end_ms - 1000)
        stage["datasourceaudit"] = audit
    elif stage_type == 7 and failure:
        stage["message"] = failure
    elif stage_type == 10:
        stage["datasetaudit"] = {
            "id": str(serial + 534),
            "created_time": str(start_ms + 500),
            "created_by": {"id": p.user["id"]},
            "audit_time": str(start_ms + 500),
            "execution_status": status,
            "description": None,
            "dataset": {
                "id": str(p.serial_base + 4000),
                "name": p.dataset,
                "description": None,
                "status": 1,
                "is_ready": True,
                "is_pii_marked": True,
                "project": {"id": p.project["id"]},
                "selected_sample": {"id": str(p.serial_base + 5000)},
            },
            "exportcatalogaudit": None,
            "rulesetaudit": {
                "id": str(serial + 634),
                "audit_time": str(start_ms + 500),
                "is_committed": "1",
                "ruleset": {"id": str(p.serial_base + 6000)},
                "status": 1,
                "rules_count": 12,
            },
            "modtime": str(end_ms or start_ms),
            "status": 1,
            "type": 1,
            "error_message": failure,
            "datasetstate": {
                "id": str(serial + 734),
                "datasetaudit": {"id": str(serial + 534)},
                "execution_status": status,
                "is_error": status == -1,
                "error_message": failure,
            },
            "rules_count": 12,
        }
    elif stage_type == 20:
        export: dict[str, Any] = {
            "id": str(serial + 835),
            "dsauditstatefile": {"id": str(serial + 845)},
            "datasinkaudit": {"id": str(serial + 855)},
            "datasetexport": {
                "id": str(p.serial_base + 7000),
                "dataset": {"id": str(p.serial_base + 4000), "name": p.dataset},
                "datasink": {
                    "id": str(p.serial_base + 8000),
                    "status": 1,
                    "project": {"id": p.project["id"]},
                    "connection": {
                        "id": str(p.serial_base - 117000),
                        "name": f"{p.user['email_id']} - {p.sink}",
                        "connection_json": json.dumps(
                            {
                                "servicename": p.sink,
                                "accountId": f"{p.sink}-44120",
                                "display_email": p.user["email_id"],
                                "display_name": p.user["username"],
                                "is_authorised": True,
                            },
                            separators=(",", ":"),
                        ),
                        "type": "0",
                        "created_by": {"id": p.user["id"]},
                        "owner": {"id": p.user["id"]},
                        "created_time": "1762000500000",
                        "modified_by": {"id": p.user["id"]},
                        "modtime": "1762000500000",
                        "status": 1,
                        "category": None,
                        "base_type": p.sink,
                        "sub_type": None,
                    },
                },
                "created_by": {"id": p.user["id"]},
                "created_time": "1762000700000",
                "modified_by": None,
                "modtime": None,
                "status": 1,
                "datasetexportaudit": {"id": str(serial + 835)},
            },
            "datasetexportconfigaudit": {"id": str(serial + 865)},
            "created_time": str(start_ms + 200),
            "error_message": failure,
            "info": '{"currentRetry":0}',
            "execution_status": status,
            "progress": 100 if status == 1 else 60,
            "status": 1,
            "type": 1,
        }
        if status == 1:
            valid = max(run.rows * 14 - run.invalid - 151, 0)
            quality = {"valid": valid, "invalid": run.invalid, "missing": 151}
            export["datasetexportauditmetric"] = {
                "id": str(serial + 935),
                "row_count": str(run.rows),
                "col_count": "14",
                "size": str(run.rows * 231),
                "status": 1,
                "datasetexportaudit": {"id": str(serial + 835)},
                "quality": json.dumps(quality, separators=(",", ":")),
            }
        stage["datasetexportaudit"] = export
    return stage


def _zoho_document(
    run: _ZohoRun,
    status: int,
    stages: Sequence[int],
    now_ms: int,
    *,
    rerun: int,
    rerun_key: str,
) -> dict[str, Any]:
    """A Job Summary response; ``stages`` holds each started stage's execution status."""
    p = run.pipeline
    terminal = status not in (0, 2)
    stage_ms = 21_000
    instances = []
    for index, stage_status in enumerate(stages):
        start = run.created_ms + 1000 + index * stage_ms
        end = start + stage_ms - 2000 if stage_status != 0 else None
        instances.append(_zoho_stage(run, index, stage_status, start, end))
    mappers = {
        stage["id"]: ([instances[i - 1]["id"]] if i else []) for i, stage in enumerate(instances)
    }
    pipelinerun: dict[str, Any] = {
        "id": run.id,
        "execution_status": status,
        "type": 5 if rerun == 0 else 2,
        "created_time": run.created_ms,
    }
    if status != 2:
        pipelinerun["modified_time"] = now_ms
    if terminal and status in (1, -1):
        pipelinerun["completion_time"] = now_ms
    pipelinerun |= {
        "data_interval_start_time": run.created_ms - 86_400_000,
        "data_interval_end_time": run.created_ms,
        "profile_output": False,
        "skip_export_invalid_data": False,
        "status": 1,
    }
    if status == 1:
        pipelinerun["storage_used"] = run.rows * 2318
        pipelinerun["row_count"] = run.rows
    if rerun:
        pipelinerun[rerun_key] = rerun
    config_audit = {
        "id": str(p.serial_base + 196),
        "status": 1,
        "skip_export_invalid_data": False,
        "type": 5,
        "pipeline": {"id": p.id},
        "pipelinefile": {"id": str(p.serial_base + 296)},
    }
    if status != 2:
        pipelinerun["pipelineaudit"] = {
            "id": str(p.serial_base + 96),
            "is_committed": "1",
            "pipeline": {"id": p.id},
            "status": 1,
        }
    pipelinerun["pipelinerunconfigaudit"] = config_audit
    pipelinerun["created_by"] = p.user
    pipelinerun["modified_by"] = p.user_full
    pipelinerun["pipelinetaskinstancemappers"] = mappers
    pipelinerun["pipelinetaskinstances"] = instances
    if status != 2:
        audit: dict[str, Any] = {
            "id": str(int(run.id) + 1),
            "created_time": str(run.created_ms),
            "modtime": str(now_ms),
            "pipelinerun": {"id": run.id},
            "status": 1,
            "execution_policy": 0,
            "execution_status": status,
            "created_by": {"id": p.user["id"]},
            "modified_by": {"id": p.user["id"]},
            "pipeline": {"id": p.id},
        }
        if terminal:
            audit["completion_time"] = str(now_ms)
        if status == 1:
            audit["storage_used"] = run.rows * 2318
            audit["row_count"] = str(run.rows)
        pipelinerun["pipelinerunaudit"] = audit
        pipelinerun["pipeline"] = p.pipeline
    return {
        "pipelinerun": pipelinerun,
        "response_status": {
            "status": "success",
            "status_code": 2000,
            "messages": [{"type": "success", "status_code": 2000}],
        },
    }


_ZOHO_STATE: Final = {
    2: "queued",
    0: "running",
    1: "succeeded",
    -1: "failed",
    -2: "cancelled",
    -3: "failed",
}


def _zoho_attempt(
    rng: _Rand,
    run: _ZohoRun,
    start_ms: int,
    *,
    rerun: int,
    outcome: int,
) -> tuple[list[_Event], int]:
    """One attempt's reports; returns them and the time of the last."""
    rerun_key = rng.pick(("rerun_count", "re_run_count"))
    attempt = 1 + rerun
    run.created_ms = start_ms
    events: list[_Event] = []
    poll = 21_000

    def report(status: int, stages: list[int], at: int) -> None:
        document = _zoho_document(run, status, stages, at, rerun=rerun, rerun_key=rerun_key)
        state = _ZOHO_STATE[status]
        events.append(
            _Event(at, Provider.zoho_dataprep, run.id, document, ((run.id, state, attempt),))
        )

    if rerun == 0 and rng.chance(0.7):
        report(2, [], start_ms)
    # The stage the run ends in: the last one, where it fails, or where it is stopped.
    last = 3 if outcome == 1 else rng.r.randrange(4)
    for index in range(last + 1):
        if rng.chance(0.8):  # the poller misses some stages
            report(0, [1] * index + [0], start_ms + 2000 + index * poll)
    end = start_ms + 2000 + (last + 1) * poll
    if outcome == 1:
        stages = [1, 1, 1, 1]
    elif outcome == -1:
        stages = [1] * last + [-1]
    else:  # stopped or killed: the stages before the running one had completed
        stages = [1] * last
    report(outcome, stages, end)
    return events, end


def _zoho_life(rng: _Rand, world: _World, start_ms: int) -> list[_Event]:
    pipeline = rng.pick(world.zoho)
    serial = rng.next_serial()
    base = 2650000001230000 + serial * 1000
    run = _ZohoRun(
        pipeline,
        str(base + 31),
        base,
        start_ms,
        rows=rng.r.randrange(50, 5000),
        invalid=rng.r.randrange(1, 40) if rng.chance(0.2) else 0,
    )
    outcome = rng.weighted(((1, 0.72), (-1, 0.15), (-2, 0.06), (-3, 0.07)))
    events, end = _zoho_attempt(rng, run, start_ms, rerun=0, outcome=outcome)
    if outcome in (-1, -3) and rng.chance(0.5):
        rerun_start = end + rng.r.randrange(60_000, 900_000)
        rerun_outcome = rng.weighted(((1, 0.85), (-1, 0.15)))
        more, _ = _zoho_attempt(rng, run, rerun_start, rerun=1, outcome=rerun_outcome)
        events.extend(more)
    return events


_KRENALIS_ERRORS: Final = (
    ("organization has been disabled", "cancelled", 0.25),
    ("pipeline has been terminated because the node became unresponsive", "failed", 0.25),
    ("an internal error has occurred", "failed", 0.2),
    (
        "transformation function raised an error: TypeError: cannot read property 'email' of null",
        "failed",
        0.3,
    ),
)


def _krenalis_life(rng: _Rand, world: _World, start_ms: int) -> list[_Event]:
    integer_ids = rng.chance(0.2)
    run_id: str | int = 609_000_000 + rng.next_serial() if integer_ids else rng.base62(12)
    which = rng.r.randrange(len(world.krenalis))
    pipeline: str | int = 705_981_207 + which if integer_ids else world.krenalis[which]
    steps = 7 if rng.chance(0.4) else 6
    events: list[_Event] = []
    key = str(run_id)
    if rng.chance(0.9):
        running: dict[str, Any] = {
            "id": run_id,
            "pipeline": pipeline,
            "startTime": _rfc3339(start_ms),
            "endTime": None,
            "passed": [0] * steps,
            "failed": [0] * steps,
        }
        if rng.chance(0.7):
            running["error"] = ""
        events.append(_Event(start_ms, Provider.krenalis, key, running, ((key, "running", 1),)))
    end_ms = start_ms + rng.r.randrange(3_000, 1_800_000)
    received = rng.r.randrange(100, 5000)
    passed, failed = _krenalis_counts(rng, received, steps)
    error, state = "", "succeeded"
    if rng.chance(0.12):
        choices = [((text, result), weight) for text, result, weight in _KRENALIS_ERRORS]
        error, state = rng.weighted(choices)
    ended = {
        "id": run_id,
        "pipeline": pipeline,
        "startTime": _rfc3339(start_ms),
        "endTime": _rfc3339(end_ms),
        "passed": passed,
        "failed": failed,
        "error": error,
    }
    events.append(_Event(end_ms, Provider.krenalis, key, ended, ((key, state, 1),)))
    return events


def _krenalis_counts(rng: _Rand, received: int, steps: int) -> tuple[list[int], list[int]]:
    passed, failed = [], []
    remaining = received
    for _ in range(steps):
        lost = rng.r.randrange(0, max(remaining // 20, 1)) if rng.chance(0.25) else 0
        failed.append(lost)
        remaining -= lost
        passed.append(remaining)
    return passed, failed


_CODAT_TYPES: Final = (
    "invoices",
    "bills",
    "customers",
    "suppliers",
    "chartOfAccounts",
    "journalEntries",
    "payments",
    "banking-accounts",
    "balanceSheet",
    "profitAndLoss",
)
_CODAT_QUEUED: Final = ("Initial", "Queued")
_CODAT_RUNNING: Final = (
    "Fetching",
    "MapQueued",
    "Mapping",
    "ValidationQueued",
    "Validating",
    "ProcessingQueued",
    "Processing",
)
#: Terminal status → (state, how many running phases come before it, weight).
_CODAT_TERMINAL: Final = {
    "Complete": ("succeeded", 7, 0.74),
    "NotSupported": ("skipped", 0, 0.06),
    "Cancelled": ("cancelled", 1, 0.02),
    "FetchError": ("failed", 1, 0.06),
    "AuthError": ("failed", 1, 0.03),
    "RateLimitError": ("failed", 1, 0.02),
    "PermissionsError": ("failed", 1, 0.01),
    "MapError": ("failed", 3, 0.02),
    "InternalError": ("failed", 3, 0.02),
    "ValidationError": ("failed", 5, 0.01),
    "ProcessingError": ("failed", 7, 0.01),
}


def _codat_pull_life(rng: _Rand, world: _World, start_ms: int) -> list[_Event]:
    company = rng.pick(world.codat)
    connection = rng.pick(company.connections)
    data_type = rng.pick(_CODAT_TYPES)
    run_id = rng.uuid()
    requested = _rfc3339_7(start_ms, rng)
    final = rng.weighted([(name, weight) for name, (_, _, weight) in _CODAT_TERMINAL.items()])
    final_state, phases, _ = _CODAT_TERMINAL[final]
    seen = [s for s in _CODAT_QUEUED if rng.chance(0.5)]
    seen += [s for s in _CODAT_RUNNING[:phases] if rng.chance(0.55)]
    events: list[_Event] = []
    at = start_ms
    for index, status in enumerate(seen):
        at += rng.r.randrange(2_000, 40_000)
        document = {
            "id": run_id,
            "companyId": company.id,
            "connectionId": connection,
            "dataType": data_type,
            "status": status,
            "statusDescription": None,
            "requested": requested,
            "progress": 10 + 10 * index,
            "isCompleted": False,
            "isErrored": False,
        }
        state = "queued" if status in _CODAT_QUEUED else "running"
        events.append(_Event(at, Provider.codat, run_id, document, ((run_id, state, 1),)))
    at += rng.r.randrange(2_000, 40_000)
    failed = final_state == "failed"
    done = {
        "id": run_id,
        "companyId": company.id,
        "connectionId": connection,
        "dataType": data_type,
        "status": final,
        "statusDescription": None,
        "errorMessage": f"{final} while reading {data_type}" if failed else None,
        "requested": requested,
        "completed": _rfc3339_7(at, rng),
        "progress": 100,
        "isCompleted": True,
        "isErrored": failed,
    }
    events.append(_Event(at, Provider.codat, run_id, done, ((run_id, final_state, 1),)))
    legacy = final == "Complete" or failed
    if legacy and rng.chance(0.12):
        at += rng.r.randrange(500, 5_000)
        dataset_id = run_id.upper() if rng.chance(0.3) else run_id
        webhook: dict[str, Any] = {
            "ClientId": "3c9e1f70-2a4b-4d8e-b6f1-0a7c5e9d2b44",
            "ClientName": "Example Lender",
            "CompanyId": company.id,
            "DataConnectionId": connection,
            "RuleId": "8f2d4a61-0c3b-4e7f-9a15-d6b8e2c0f973",
            "AlertId": rng.uuid(),
        }
        if failed:
            webhook |= {
                "RuleType": "Data Sync Status Changed To Error",
                "Message": f"ERROR: syncing {data_type} triggered a {final} notification.",
                "Data": {"dataType": data_type, "datasetStatus": final, "datasetId": dataset_id},
            }
        else:
            webhook |= {
                "RuleType": "Data sync completed",
                "Message": f"Data sync of type {data_type} completed for company {company.id}",
                "Data": {"dataType": data_type, "datasetId": dataset_id},
            }
        events.append(
            _Event(
                at,
                Provider.codat,
                run_id,
                webhook,
                ((run_id, final_state, 1),),
                _webhook_headers(rng, at),
            )
        )
    return events


_CODAT_READ_STATUS: Final = (
    ("Complete", 0.8),
    ("NotSupported", 0.08),
    ("FetchError", 0.06),
    ("AuthError", 0.06),
)
_CODAT_READ_STATE: Final = {
    "Complete": "succeeded",
    "NotSupported": "skipped",
    "FetchError": "failed",
    "AuthError": "failed",
}


def _codat_read_life(rng: _Rand, world: _World, start_ms: int) -> list[_Event]:
    """One ``read.completed`` webhook: one event, one run per data type read."""
    company = rng.pick(world.codat)
    event_id = rng.uuid()
    entries: list[dict[str, Any]] = []
    runs: list[tuple[str, str, int]] = []
    used: list[tuple[str, str]] = []
    for _ in range(1 + rng.r.randrange(5)):
        connection, data_type = rng.pick(company.connections), rng.pick(_CODAT_TYPES)
        if (connection, data_type) in used:
            continue
        used.append((connection, data_type))
        status = rng.weighted(_CODAT_READ_STATUS)
        issues: list[dict[str, Any]] | None = []
        if status == "Complete" and rng.chance(0.2):
            issues = [
                {
                    "type": "warning.validation",
                    "message": f"{rng.r.randrange(1, 9)} {data_type} records have no reference.",
                }
            ]
        elif status != "Complete":
            issues = None
        entries.append(
            {
                "connectionId": connection,
                "dataType": data_type,
                "recordsModified": status == "Complete",
                "status": status,
                "issues": issues,
            }
        )
        runs.append((f"{event_id}:{connection}:{data_type}", _CODAT_READ_STATE[status], 1))
    initial = rng.chance(0.1)
    document = {
        "id": event_id,
        "eventType": "read.completed.initial" if initial else "read.completed",
        "generatedDate": _rfc3339_7(start_ms, rng),
        "payload": {
            "referenceCompany": {
                "id": company.id,
                "name": company.name,
                "links": {"portal": f"https://app.codat.io/companies/{company.id}/summary"},
            },
            "modifiedFromDate": None if initial else _rfc3339(start_ms - 3_600_000),
            "dataTypes": entries,
        },
    }
    headers = _webhook_headers(rng, start_ms)
    return [_Event(start_ms, Provider.codat, company.id, document, tuple(runs), headers)]


_NUVO_ERRORS: Final = (
    ("SOURCE_UNRESPONSIVE", "The connection to the SFTP server could not be established."),
    ("SOURCE_DATA_EMPTY", "The source file has no rows."),
    ("PARSING_FAILURE", "Row 12 has 15 columns, the header has 14."),
    ("DESTINATION_UNRESPONSIVE", "The destination API did not answer within 30 s."),
    ("DESTINATION_SIZE_LIMIT", "The output exceeds the destination's 50 MB limit."),
    ("WRITE_FILE_FAILURE", "Could not write the output file."),
    ("ERROR_THRESHOLD_EXCEEDED", "14.2% of cells contain errors; the pipeline allows 10%."),
)


def _nuvo_life(rng: _Rand, world: _World, start_ms: int) -> list[_Event]:
    pipeline, configuration = rng.pick(world.nuvo)
    execution_id = rng.hexid(24)
    trigger = rng.pick(("MANUAL", "SCHEDULED", "EVENT"))
    actor = {
        "id": rng.hexid(24),
        "name": "Operations",
        "identifier": "ops@example.com",
        "type": "USER",
    }
    created = _nuvo_time(start_ms)
    wrap = rng.chance(0.3)
    events: list[_Event] = []

    def report(document: dict[str, Any], at: int, state: str, attempt: int) -> None:
        body = {"data": document} if wrap else document
        run = ((execution_id, state, attempt),)
        events.append(_Event(at, Provider.nuvo, execution_id, body, run))

    base = {"id": execution_id, "pipeline": pipeline}
    if rng.chance(0.3):
        created_entry = base | {"status": "PROCESSING", "trigger_type": trigger}
        run = ((execution_id, "running", 1),)
        events.append(_Event(start_ms, Provider.nuvo, execution_id, {"data": [created_entry]}, run))
    if rng.chance(0.7):
        processing = base | {
            "status": "PROCESSING",
            "trigger_type": trigger,
            "configuration": configuration,
            "created_at": created,
            "created_by": actor,
            "updated_at": _nuvo_time(start_ms + 137),
            "updated_by": actor,
        }
        report(processing, start_ms + 137, "running", 1)
    rows = rng.r.randrange(10, 5000)
    cells = rows * 12
    first_ms = start_ms + rng.r.randrange(2_000, 60_000)
    failed = rng.chance(0.25)
    error_cells = rng.r.randrange(1, max(cells // 50, 2)) if rng.chance(0.2) else 0
    first_log = {
        "type": rng.pick(("CREATE", "CREATED")),
        "status": "FAILED" if failed else "SUCCESSFUL",
        "started_at": _rfc3339(start_ms + 200),
        "duration": first_ms - start_ms - 200,
        "data": {
            "total_rows": rows,
            "total_cells": cells,
            "total_error_cells": cells // 7 if failed else error_cells,
            "total_error_rows": rows // 5 if failed else min(error_cells, rows),
        },
    }
    finished = base | {
        "status": "FAILED" if failed else "SUCCESSFUL",
        "trigger_type": trigger,
        "configuration": configuration,
        "logs": [first_log],
        "created_at": created,
        "created_by": actor,
        "updated_at": _nuvo_time(first_ms),
        "updated_by": actor,
    }
    if failed:
        error_type, message = rng.pick(_NUVO_ERRORS)
        finished["error"] = {"type": error_type, "message": message}
    report(finished, first_ms, "failed" if failed else "succeeded", 1)
    if failed and rng.chance(0.5):
        fix_ms = first_ms + rng.r.randrange(600_000, 7_200_000)
        fix_log: dict[str, Any] = {
            "type": "FIX",
            "status": "PROCESSING",
            "started_on": _rfc3339(fix_ms),
        }
        fixing = base | {
            "status": "PROCESSING",
            "trigger_type": trigger,
            "logs": [first_log, fix_log],
            "created_at": created,
            "updated_at": _nuvo_time(fix_ms + 50),
        }
        if rng.chance(0.6):
            report(fixing, fix_ms + 50, "running", 2)
        done_ms = fix_ms + rng.r.randrange(2_000, 30_000)
        fixed_log = fix_log | {
            "status": "SUCCESSFUL",
            "duration": done_ms - fix_ms,
            "data": {
                "total_rows": rows,
                "total_cells": cells,
                "total_error_cells": 0,
                "total_error_rows": 0,
            },
        }
        fixed = fixing | {
            "status": "SUCCESSFUL",
            "logs": [first_log, fixed_log],
            "updated_at": _nuvo_time(done_ms),
        }
        report(fixed, done_ms, "succeeded", 2)
    return events


# --------------------------------------------------------------------------- invalid


def _invalid(rng: _Rand) -> BenchRecord:
    """One record the worker must dead-letter, with the reason it must give."""
    kind = rng.pick(
        (
            "truncated",
            "empty",
            "unmapped_codat",
            "unmapped_nuvo",
            "bad_uuid",
            "bad_steps",
            "bad_time",
            "connection_event",
            "zoho_api_error",
        )
    )
    world = _InvalidWorld(rng)
    provider, reason, value = world.build(kind)
    key = f"invalid-{rng.hexid(12)}".encode()
    return BenchRecord(provider, key, value, (), "invalid", expected_reason=reason)


@dataclass
class _InvalidWorld:
    rng: _Rand

    def _pull(self, status: str = "Fetching") -> dict[str, Any]:
        rng = self.rng
        return {
            "id": rng.uuid(),
            "companyId": rng.uuid(),
            "connectionId": rng.uuid(),
            "dataType": rng.pick(_CODAT_TYPES),
            "status": status,
            "requested": _rfc3339_7(_T0_MS, rng),
            "progress": 20,
            "isCompleted": False,
            "isErrored": False,
        }

    def _krenalis(self) -> dict[str, Any]:
        return {
            "id": self.rng.base62(12),
            "pipeline": self.rng.base62(12),
            "startTime": _rfc3339(_T0_MS),
            "endTime": _rfc3339(_T0_MS + 60_000),
            "passed": [10, 10, 10, 10, 10, 10],
            "failed": [0, 0, 0, 0, 0, 0],
            "error": "",
        }

    def build(self, kind: str) -> tuple[Provider, str, bytes]:
        rng = self.rng
        if kind == "truncated":
            value = _json(self._pull())
            return Provider.codat, "not_json", value[: len(value) // 2]
        if kind == "empty":
            return rng.pick(tuple(Provider)), "not_json", b""
        if kind == "unmapped_codat":
            return Provider.codat, "unmapped_status", _json(self._pull("Paused"))
        if kind == "unmapped_nuvo":
            document: dict[str, Any] = {
                "id": rng.hexid(24),
                "pipeline": rng.hexid(24),
                "status": "QUEUED",
            }
            return Provider.nuvo, "unmapped_status", _json(document)
        if kind == "bad_uuid":
            document = self._pull() | {"companyId": "company-42"}
            return Provider.codat, "invalid_payload", _json(document)
        if kind == "bad_steps":
            document = self._krenalis() | {"failed": [0, 0, 0, 0, 0]}
            return Provider.krenalis, "invalid_payload", _json(document)
        if kind == "bad_time":
            document = self._krenalis() | {"startTime": "2301-01-01T00:00:00Z"}
            return Provider.krenalis, "invalid_payload", _json(document)
        if kind == "connection_event":
            document = {
                "id": rng.uuid(),
                "eventType": "connection.disconnected",
                "generatedDate": _rfc3339(_T0_MS),
                "payload": {
                    "referenceCompany": {"id": rng.uuid(), "name": "Harbour Bikes Ltd"},
                    "connection": {"id": rng.uuid(), "status": "Deauthorized"},
                },
            }
            return Provider.codat, "unknown_payload_kind", _json(document)
        report: dict[str, Any] = {  # a Zoho API error report
            "response_status": {
                "status": "failure",
                "status_code": 4004,
                "messages": [
                    {
                        "type": "error",
                        "status_code": 4004,
                        "message": f"Job {2650000001239999 - rng.r.randrange(1000)} not found",
                    }
                ],
            }
        }
        return Provider.zoho_dataprep, "provider_api_error", _json(report)
