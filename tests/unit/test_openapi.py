"""The read API's contract: ``schemas/openapi.json`` is the app's own document (drift test)
and says what the API promises: problem documents, keyset paging, a guarded write."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pipestatus.schemas import render
from pipestatus.serve import openapi_document

COMMITTED = Path(__file__).resolve().parents[2] / "schemas" / "openapi.json"
LISTS = ("/api/v1/runs", "/api/v1/pipelines", "/api/v1/dead-letters")


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
    ]


def test_committed_openapi_is_the_apps_document() -> None:
    assert COMMITTED.read_text(encoding="utf-8") == render(openapi_document()), (
        "schemas/openapi.json drifted: run `pipestatus schemas export schemas`"
    )


def test_every_error_is_documented_as_a_problem_document() -> None:
    document = json.loads(COMMITTED.read_text(encoding="utf-8"))
    problem = {"$ref": "#/components/schemas/Problem"}
    for path, method, operation in _operations(document):
        statuses = set(operation["responses"])
        assert {"200", "422", "503"} <= statuses, (path, method)
        for status, response in operation["responses"].items():
            if status.startswith(("4", "5")):
                assert response["content"] == {"application/problem+json": {"schema": problem}}
            else:
                assert set(response["content"]) == {"application/json"}
    assert set(document["components"]["schemas"]["Problem"]["required"]) == {"title", "status"}


def test_lists_page_by_cursor_never_by_offset() -> None:
    document = json.loads(COMMITTED.read_text(encoding="utf-8"))
    for path in LISTS:
        names = {p["name"] for p in document["paths"][path]["get"]["parameters"]}
        assert {"cursor", "limit"} <= names, path
        assert not names & {"offset", "page", "skip"}, path
        page = document["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]
        ref = page["schema"]["$ref"].rsplit("/", 1)[1]
        assert "next_cursor" in document["components"]["schemas"][ref]["properties"]


def test_only_replay_writes_and_it_needs_a_bearer_token() -> None:
    document = json.loads(COMMITTED.read_text(encoding="utf-8"))
    writes = [(path, method) for path, method, _ in _operations(document) if method != "get"]
    assert writes == [("/api/v1/dead-letters/replay", "post")]
    replay = document["paths"]["/api/v1/dead-letters/replay"]["post"]
    assert replay["security"] == [{"HTTPBearer": []}]
    assert {"401", "403"} <= set(replay["responses"])
    assert document["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"


def test_provider_names_accept_the_topic_spelling() -> None:
    document = json.loads(COMMITTED.read_text(encoding="utf-8"))
    [provider] = [
        p
        for p in document["paths"]["/api/v1/runs/{provider}/{run_id}"]["get"]["parameters"]
        if p["name"] == "provider"
    ]
    assert {"zoho_dataprep", "zoho-dataprep"} <= set(provider["schema"]["enum"])
