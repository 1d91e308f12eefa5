"""Provider registry and the pure entry point from raw bytes to observations.

``parse_record`` is what both the worker and ``pipestatus validate`` call: decode the
bytes, find the payload kind (from the provider when known, else from the shape alone),
validate against the documented model, and normalize into observations. It returns a
``Parsed`` value or raises an ``EventError`` carrying a machine-readable reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from pydantic import ValidationError

from pipestatus.domain.observation import Observation
from pipestatus.domain.states import Provider
from pipestatus.errors import (
    AmbiguousPayloadKindError,
    EventError,
    InvalidPayloadError,
    UnknownPayloadKindError,
)
from pipestatus.providers import codat, krenalis, nuvo, zoho_dataprep
from pipestatus.providers.base import PayloadKind, ProviderSpec
from pipestatus.providers.decode import decode_json

PROVIDERS: Final[Mapping[Provider, ProviderSpec]] = {
    Provider.zoho_dataprep: zoho_dataprep.SPEC,
    Provider.krenalis: krenalis.SPEC,
    Provider.codat: codat.SPEC,
    Provider.nuvo: nuvo.SPEC,
}


@dataclass(frozen=True, slots=True)
class Parsed:
    """A validated payload and the observations it yields (event ids not yet set)."""

    provider: Provider
    kind: str
    native_event_id: str | None
    observations: tuple[Observation, ...]


def identify(document: Any, provider: Provider | None) -> tuple[ProviderSpec, PayloadKind]:
    """Finds the one payload kind ``document`` has; never guesses between several."""
    if not isinstance(document, dict):
        raise UnknownPayloadKindError(
            f"top-level JSON value is {_json_type(document)}, expected an object"
        )
    specs = [PROVIDERS[provider]] if provider is not None else list(PROVIDERS.values())
    found = [(spec, kind) for spec in specs for kind in spec.kinds if kind.matches(document)]
    if not found:
        scope = f"no {provider.value} payload kind" if provider else "no known payload kind"
        keys = ", ".join(sorted(document)[:8]) or "none"
        raise UnknownPayloadKindError(f"{scope} has this shape (top-level keys: {keys})")
    if len(found) > 1:
        names = ", ".join(kind.name for _spec, kind in found)
        raise AmbiguousPayloadKindError(f"shape matches several payload kinds: {names}")
    return found[0]


def parse_document(document: Any, provider: Provider | None = None) -> Parsed:
    """Validates and normalizes an already-decoded JSON document."""
    spec, kind = identify(document, provider)
    try:
        model = kind.model.model_validate(document)
    except ValidationError as exc:
        raise _invalid(exc) from exc
    try:
        observations = kind.normalize(model)
    except (ValueError, ValidationError) as exc:
        # Checks that span several fields (e.g. count arrays of equal length) raise here.
        raise InvalidPayloadError(str(exc)) from exc
    return Parsed(spec.provider, kind.name, kind.native_event_id(model), observations)


def parse_record(
    raw: bytes, provider: Provider | None = None, *, max_bytes: int = 1 << 20
) -> Parsed:
    """Decodes and parses one record's value (the whole pure pipeline)."""
    return parse_document(decode_json(raw, max_bytes=max_bytes), provider)


def _invalid(exc: ValidationError) -> EventError:
    errors = exc.errors(include_url=False)
    first = errors[0]
    path = ".".join(str(part) for part in first["loc"])
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    value = first.get("input")
    shown = repr(value)[:60] if not isinstance(value, dict | list) else _json_type(value)
    return InvalidPayloadError(f"{first['msg']}; got {shown}{more}", path=path)


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}
    if value is None:
        return "null"
    return names.get(type(value), "a number")
