"""Generates the committed ``schemas/`` directory from the models (one file per kind),
and the read API's OpenAPI document (``openapi.json``) from ``pipestatus serve``'s app."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pipestatus.providers import PROVIDERS
from pipestatus.views import common_schemas


def all_schemas() -> dict[str, dict[str, Any]]:
    """File stem → JSON Schema, for every payload kind plus the common shapes; and OpenAPI."""
    found: dict[str, dict[str, Any]] = {}
    for spec in PROVIDERS.values():
        for kind in spec.kinds:
            schema = kind.model.model_json_schema(mode="validation")
            schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
            schema["$id"] = f"{kind.name}.json"
            if kind.description:
                schema.setdefault("description", kind.description)
            found[kind.name] = schema
    for name, schema in common_schemas().items():
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        schema["$id"] = f"{name}.json"
        found[name] = schema
    from pipestatus.serve import openapi_document  # the HTTP stack, only when exporting

    found["openapi"] = openapi_document()
    return found


def render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def export(directory: Path) -> list[Path]:
    """Writes every schema file (existing files of the same names are replaced)."""
    directory.mkdir(parents=True, exist_ok=True)
    wanted = {f"{name}.json": render(schema) for name, schema in all_schemas().items()}
    written = []
    for filename, text in sorted(wanted.items()):
        path = directory / filename
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written
