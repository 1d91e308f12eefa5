"""What every provider module provides, and the shared pydantic building blocks.

A provider is data: a status table (``StatusRule`` rows), and payload kinds, each a shape
predicate, a pydantic model and a normalizer that turns a validated model into
observations. Adding a provider means adding one module and one ``PROVIDERS`` entry.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any

import pydantic_core
from pydantic import BaseModel, BeforeValidator, ConfigDict, WithJsonSchema

from pipestatus.domain.observation import Observation, StatusRule
from pipestatus.domain.states import Provider
from pipestatus.errors import EventError, InvalidPayloadError, UnmappedStatusError
from pipestatus.providers.decode import find_string


class ProviderModel(BaseModel):
    """Base of every provider payload model: providers add fields, so extras are kept."""

    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=True)


def _decode_json_string(value: Any) -> Any:
    if isinstance(value, str):
        try:
            # What json.loads accepts (NaN and Infinity included), five times faster.
            decoded = pydantic_core.from_json(value, allow_inf_nan=True)
        except ValueError as exc:
            raise ValueError(f"broken JSON inside a string: {exc}") from exc
        if "\\u0000" in value and (path := find_string(decoded, _has_nul)) is not None:
            raise ValueError(f"NUL character (\\u0000) inside the JSON string at {path!r}")
        return decoded
    return value


def _has_nul(text: str) -> bool:
    return "\x00" in text


def json_in_string(example: str) -> Any:
    """Marks a field the provider sends as a JSON document encoded in a string."""
    return (
        BeforeValidator(_decode_json_string),
        WithJsonSchema(
            {
                "type": "string",
                "contentMediaType": "application/json",
                "description": f"JSON document encoded as a string, e.g. {example}",
            }
        ),
    )


def _id_to_string(value: Any) -> Any:
    kind = type(value)  # exact types first: this runs for every id of every payload
    if kind is str:
        return value
    if kind is int:
        return str(value)
    if isinstance(value, bool):
        raise ValueError("id must be a string or an integer")
    if isinstance(value, int):
        return str(value)
    return value


#: A non-empty id that may arrive as an integer (old APIs) or a string; normalized to str.
RunId = Annotated[
    str,
    BeforeValidator(_id_to_string),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "minLength": 1, "maxLength": 256},
                {"type": "integer"},
            ]
        }
    ),
]


def check_id(value: str, *, what: str) -> str:
    """Rejects ids that cannot key a run: empty or absurdly long."""
    if not value.strip():
        raise ValueError(f"{what} is empty")
    if len(value) > 256:
        raise ValueError(f"{what} is {len(value)} characters long (at most 256)")
    return value


Normalizer = Callable[[Any], tuple[Observation, ...]]


@dataclass(frozen=True, slots=True)
class PayloadKind:
    """One documented payload shape of a provider."""

    name: str
    model: type[ProviderModel]
    #: Cheap shape test on the decoded JSON object (keys present), no validation.
    matches: Callable[[Mapping[str, Any]], bool]
    normalize: Normalizer
    #: The payload's own event id (Codat envelope ``id``, legacy ``AlertId``), if any.
    native_event_id: Callable[[Any], str | None] = lambda _model: None
    description: str = ""


@dataclass(frozen=True, slots=True)
class ProviderSpec:
    """Everything pipestatus knows about one provider."""

    provider: Provider
    kinds: tuple[PayloadKind, ...]
    #: Provider status (as a string) → common meaning; the README table is rendered from it.
    status_table: Mapping[str, StatusRule]


def lookup_status(
    table: Mapping[str, StatusRule], provider: Provider, status: str, *, path: str
) -> StatusRule:
    """The mapping-table row for ``status``; an unknown value is dead-lettered, never guessed."""
    rule = table.get(status)
    if rule is None:
        known = ", ".join(table)
        raise UnmappedStatusError(
            f"{provider.value} status {status!r} has no mapping (known: {known})", path=path
        )
    return rule


def fan_out(
    item: PayloadKind, *, field: str, kind: str
) -> Callable[[Any], tuple[Observation, ...]]:
    """The normalizer of a list response whose ``field`` holds ``item`` resources.

    Each entry yields exactly the observations it would yield arriving alone (same run id,
    attempt, state), marked with the list's ``kind``. An entry the item normalizer rejects
    rejects the record, with the entry's path in front of the error's own
    (``data.3.status``; the same dotted form pydantic reports for field errors).
    """

    def normalize(model: Any) -> tuple[Observation, ...]:
        observations: list[Observation] = []
        for index, entry in enumerate(getattr(model, field)):
            prefix = f"{field}.{index}"
            try:
                found = item.normalize(entry)
            except EventError as exc:
                exc.path = f"{prefix}.{exc.path}" if exc.path else prefix
                exc.args = (str(exc),)
                raise
            except ValueError as exc:
                raise InvalidPayloadError(str(exc), path=prefix) from exc
            observations.extend(dataclasses.replace(o, kind=kind) for o in found)
        return tuple(observations)

    return normalize
