"""List responses (nuvo read-all, Codat pull-operation page, Krenalis run list) fan out.

Each entry must yield exactly the observations it yields arriving alone (run id, attempt,
state and everything else but the kind), and a bad entry rejects the record with its path.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from pipestatus.domain.states import Provider
from pipestatus.errors import EventError, InvalidPayloadError, UnmappedStatusError
from pipestatus.intake import Accepted, InboundRecord, Rejected, Routing, prepare
from pipestatus.providers import parse_document

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


@dataclasses.dataclass(frozen=True)
class ListKind:
    provider: Provider
    fixture: str
    kind: str
    item_kind: str
    field: str


LISTS = [
    ListKind(
        Provider.nuvo, "read_all_response", "nuvo.read_all_response", "nuvo.execution", "data"
    ),
    ListKind(
        Provider.codat,
        "pull_operation_page",
        "codat.pull_operation_page",
        "codat.pull_operation",
        "results",
    ),
    ListKind(
        Provider.krenalis, "runs_list", "krenalis.pipeline_runs", "krenalis.pipeline_run", "runs"
    ),
]
IDS = [case.kind for case in LISTS]


def _load(case: ListKind) -> dict[str, Any]:
    path = FIXTURES / case.provider.value / f"{case.fixture}.json"
    document = json.loads(path.read_text(encoding="utf-8"))
    assert isinstance(document, dict)
    return document


@pytest.mark.parametrize("case", LISTS, ids=IDS)
def test_each_entry_yields_what_it_yields_alone(case: ListKind) -> None:
    document = _load(case)
    entries = document[case.field]
    assert len(entries) >= 2, "the fixture must hold several entries"
    parsed = parse_document(document, case.provider)
    assert parsed.kind == case.kind
    alone = [parse_document(entry, case.provider) for entry in entries]
    assert all(single.kind == case.item_kind for single in alone)
    expected = [
        dataclasses.replace(o, kind=case.kind) for single in alone for o in single.observations
    ]
    assert list(parsed.observations) == expected
    assert [o.run_id for o in parsed.observations] == [
        single.observations[0].run_id for single in alone
    ]


@pytest.mark.parametrize("case", LISTS, ids=IDS)
def test_the_shape_alone_finds_the_list_kind(case: ListKind) -> None:
    """Without a provider (shared topics) the shape is unambiguous."""
    parsed = parse_document(_load(case))
    assert (parsed.provider, parsed.kind) == (case.provider, case.kind)


@pytest.mark.parametrize("case", LISTS, ids=IDS)
def test_an_empty_list_reports_nothing(case: ListKind) -> None:
    document = _load(case)
    document[case.field] = []
    assert parse_document(document, case.provider).observations == ()


#: (case, entry index, change to that entry, expected error type, expected path).
BAD_ENTRIES = [
    (LISTS[0], 3, {"status": "PAUSED"}, UnmappedStatusError, "data.3.status"),
    (LISTS[0], 1, {"pipeline": 7}, InvalidPayloadError, "data.1.pipeline"),
    (
        LISTS[0],
        2,
        {"status": "FAILED", "error": {"type": "NEW_KIND"}},
        UnmappedStatusError,
        "data.2.error.type",
    ),
    (LISTS[1], 1, {"status": "Thinking"}, UnmappedStatusError, "results.1.status"),
    (LISTS[1], 0, {"companyId": "not-a-uuid"}, InvalidPayloadError, "results.0.companyId"),
    (LISTS[2], 2, {"startTime": "yesterday"}, InvalidPayloadError, "runs.2.startTime"),
    (LISTS[2], 3, {"failed": [0] * 7}, InvalidPayloadError, "runs.3.failed"),
]


@pytest.mark.parametrize(
    ("case", "index", "change", "error", "path"),
    BAD_ENTRIES,
    ids=[f"{case.kind}:{path}" for case, _i, _c, _e, path in BAD_ENTRIES],
)
def test_a_bad_entry_rejects_the_record_with_its_path(
    case: ListKind, index: int, change: dict[str, Any], error: type[EventError], path: str
) -> None:
    document = _load(case)
    document[case.field][index].update(change)
    with pytest.raises(error) as caught:
        parse_document(document, case.provider)
    assert caught.value.path == path
    assert f"at {path}:" in str(caught.value)


@pytest.mark.parametrize("case", LISTS, ids=IDS)
def test_a_bad_entry_dead_letters_the_whole_record(case: ListKind) -> None:
    """The worker's intake rejects the record: no entry of it is applied."""
    document = _load(case)
    broken = copy.deepcopy(document)
    del broken[case.field][-1]["id"]
    routing = Routing(
        topics={f"runs.{case.provider.value}": case.provider}, cloudevents_type_prefixes={}
    )
    topic = f"runs.{case.provider.value}"
    good = prepare(InboundRecord(topic, 0, 0, None, json.dumps(document).encode()), routing)
    bad = prepare(InboundRecord(topic, 0, 1, None, json.dumps(broken).encode()), routing)
    assert isinstance(good, Accepted)
    assert len(good.parsed.observations) == len(document[case.field])
    assert {o.event_id for o in good.parsed.observations} == {good.event_id}
    assert isinstance(bad, Rejected)
    assert bad.error.reason == "invalid_payload"
    assert bad.error.path == f"{case.field}.{len(document[case.field]) - 1}.id"


def test_pagination_tells_the_read_all_page_from_the_create_response() -> None:
    """Create entries require ``trigger_type``; read-all entries do not."""
    document = _load(LISTS[0])
    del document["data"][0]["trigger_type"]
    assert parse_document(document, Provider.nuvo).kind == "nuvo.read_all_response"
    del document["pagination"]
    with pytest.raises(InvalidPayloadError) as caught:
        parse_document(document, Provider.nuvo)
    assert caught.value.path == "data.0.trigger_type"
