"""The configuration reference, rendered from the settings model (docs/configuration.md).

Walks ``Settings``: every leaf field of a nested section becomes one environment variable
(``PIPESTATUS_`` + section + ``__`` + key), with its type, default and description. Secret
fields (``SecretStr``) show ``secret`` as their default, never the value. A test keeps the
generated block in docs/configuration.md and the README's table equal to the model.

    python -m pipestatus_dev.configdoc             # the environment-variable table
    python -m pipestatus_dev.configdoc receivers   # the receiver-object table
    python -m pipestatus_dev.configdoc sources     # the ingress source-object table
    python -m pipestatus_dev.configdoc poll-sources  # the poll source-object table
"""

from __future__ import annotations

import enum
import json
import sys
import types
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Union, get_args, get_origin

import annotated_types
import pydantic_core
from pydantic import BaseModel, SecretBytes, SecretStr
from pydantic.fields import FieldInfo

from pipestatus.settings import PollSourceSettings, ReceiverSettings, Settings, SourceSettings

#: Descriptions of fields the model leaves undescribed (keys: dotted field paths).
#: A test fails when a field has neither, or when a key here names no field.
EXTRA_DESCRIPTIONS: dict[str, str] = {
    "kafka.security_protocol": "how the worker connects to the brokers",
    "kafka.sasl_mechanism": "SASL mechanism (with `SASL_PLAINTEXT` or `SASL_SSL`)",
    "kafka.sasl_username": "SASL user name",
    "kafka.sasl_password": "SASL password (secret, never printed)",
    "kafka.ssl_cafile": "CA bundle (PEM) that verifies the brokers; unset uses the system store",
    "kafka.ssl_certfile": "client certificate (PEM) for mutual TLS",
    "kafka.ssl_keyfile": "private key (PEM) of the client certificate",
    "log_level": "lowest level logged",
    "log_format": "`text` or `json` (one object per line)",
    "receiver.type": "which protocol the receiver speaks",
    "receiver.secret": "required by `webhook`: Standard Webhooks signing secret `whsec_<base64>`",
    "receiver.routing_key": "required by `pagerduty`: the integration (routing) key",
    "receiver.timeout_s": "seconds one delivery may take",
    "source.provider": "whose payloads the source delivers (routes the record)",
    "source.secrets": "`standard-webhooks`: `whsec_<base64>` signing secrets, several while "
    "rotating; `token`: the accepted tokens",
}

_SECRET_TYPES = (SecretStr, SecretBytes)
_SCALARS: dict[type, str] = {str: "string", int: "integer", float: "number", bool: "boolean"}


@dataclass(frozen=True, slots=True)
class Variable:
    """One environment variable (or, for object tables, one JSON field)."""

    name: str
    path: str
    type: str
    default: str
    description: str
    secret: bool


def variables() -> list[Variable]:
    """Every environment variable the settings model reads, in declaration order."""
    config = Settings.model_config
    prefix = str(config.get("env_prefix") or "")
    delimiter = str(config.get("env_nested_delimiter") or "__")
    return list(_walk(Settings, prefix, delimiter, ()))


def configuration_table() -> str:
    """The Markdown table of every ``PIPESTATUS_*`` variable (no trailing newline)."""
    rows = [(f"`{v.name}`", v.type, v.default, v.description) for v in variables()]
    return _table(("variable", "type", "default", "description"), rows)


def receiver_table() -> str:
    """The Markdown table of the fields of one ``PIPESTATUS_ALERTS__RECEIVERS`` object."""
    rows = [
        (f"`{field.name}`", field.type, field.default, field.description)
        for field in object_fields(ReceiverSettings, "receiver")
    ]
    return _table(("field", "type", "default", "description"), rows)


def source_table() -> str:
    """The Markdown table of the fields of one ``PIPESTATUS_INGRESS__SOURCES`` object."""
    rows = [
        (f"`{field.name}`", field.type, field.default, field.description)
        for field in object_fields(SourceSettings, "source")
    ]
    return _table(("field", "type", "default", "description"), rows)


def poll_source_table() -> str:
    """The Markdown table of the fields of one ``PIPESTATUS_POLL__SOURCES`` object."""
    rows = [
        (f"`{field.name}`", field.type, field.default, field.description)
        for field in object_fields(PollSourceSettings, "poll_source")
    ]
    return _table(("field", "type", "default", "description"), rows)


def object_fields(model: type[BaseModel], path: str) -> list[Variable]:
    """The fields of a model carried as a JSON object (e.g. one alert receiver)."""
    return [_variable(name, f"{path}.{name}", info) for name, info in model.model_fields.items()]


def _walk(
    model: type[BaseModel], prefix: str, delimiter: str, path: tuple[str, ...]
) -> Iterator[Variable]:
    for name, info in model.model_fields.items():
        section = _section_model(info.annotation)
        if section is not None:
            section_prefix = f"{prefix}{name.upper()}{delimiter}"
            yield from _walk(section, section_prefix, delimiter, (*path, name))
            continue
        yield _variable(f"{prefix}{name.upper()}", ".".join((*path, name)), info)


def _section_model(annotation: Any) -> type[BaseModel] | None:
    """The model of a nested settings section, ``None`` for a leaf field."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def _variable(name: str, path: str, info: FieldInfo) -> Variable:
    secret = _is_secret(info.annotation)
    description = info.description or EXTRA_DESCRIPTIONS.get(path, "")
    return Variable(
        name=name,
        path=path,
        type=_type(info.annotation, info.metadata),
        default=_default(info, secret),
        description=description,
        secret=secret,
    )


def _is_secret(annotation: Any) -> bool:
    if isinstance(annotation, type) and issubclass(annotation, _SECRET_TYPES):
        return True
    return any(_is_secret(arg) for arg in get_args(annotation))


def _type(annotation: Any, metadata: list[Any]) -> str:
    inner, optional = _strip_none(annotation)
    text = _describe(inner) + _bounds(metadata)
    return f"{text}, optional" if optional else text


def _strip_none(annotation: Any) -> tuple[Any, bool]:
    if get_origin(annotation) in (Union, types.UnionType):
        args = [arg for arg in get_args(annotation) if arg is not type(None)]
        optional = len(args) < len(get_args(annotation))
        if len(args) == 1:
            return args[0], optional
        return Union[tuple(args)], optional  # noqa: UP007  # rebuilt from parts
    return annotation, False


def _describe(annotation: Any) -> str:
    origin = get_origin(annotation)
    if origin is Literal:
        return " \\| ".join(f"`{value}`" for value in get_args(annotation))
    if origin is dict:
        key, value = get_args(annotation)
        return f"JSON object: {_noun(key)} → {_noun(value)}"
    if origin is list:
        (item,) = get_args(annotation)
        return f"JSON list of {_plural(item)}"
    if isinstance(annotation, type):
        if issubclass(annotation, _SECRET_TYPES):
            return "string, secret"
        if issubclass(annotation, enum.Enum):
            return _enum_name(annotation)
        if annotation in _SCALARS:
            return _SCALARS[annotation]
    raise TypeError(f"configdoc cannot describe the type {annotation!r}")


def _noun(annotation: Any) -> str:
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return _enum_name(annotation)
    return _describe(annotation)


def _plural(annotation: Any) -> str:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        name = annotation.__name__.removesuffix("Settings").lower()
        secrets = [n for n, f in annotation.model_fields.items() if _is_secret(f.annotation)]
        held = f" (secret fields: {', '.join(f'`{n}`' for n in secrets)})" if secrets else ""
        return f"{name} objects{held}"
    return f"{_noun(annotation)}s"


def _enum_name(annotation: type[enum.Enum]) -> str:
    return annotation.__name__.lower()


def _bounds(metadata: list[Any]) -> str:
    low = high = pattern = ""
    for item in metadata:
        if getattr(item, "pattern", None):
            pattern = f" matching `{item.pattern}`"
        elif isinstance(item, annotated_types.Ge):
            low = f"≥ {_number(item.ge)}"
        elif isinstance(item, annotated_types.Gt):
            low = f"> {_number(item.gt)}"
        elif isinstance(item, annotated_types.Le):
            high = f"≤ {_number(item.le)}"
        elif isinstance(item, annotated_types.Lt):
            high = f"< {_number(item.lt)}"
    parts = [part for part in (low, high) if part]
    return (" " + ", ".join(parts) if parts else "") + pattern


def _default(info: FieldInfo, secret: bool) -> str:
    if info.is_required():
        return "required"
    value = info.get_default(call_default_factory=True)
    if value is None:
        return "unset"
    if secret:
        return "secret"
    return f"`{_json_text(value)}`"


def _json_text(value: Any) -> str:
    """A default as it would be written in the environment (JSON for maps and lists)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, enum.Enum):
        return str(value.value)
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return _number(value)
    plain = _integral_floats(pydantic_core.to_jsonable_python(value))
    return json.dumps(plain, ensure_ascii=False)


def _integral_floats(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {key: _integral_floats(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_integral_floats(item) for item in value]
    return value


def _number(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _table(header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> str:
    lines = [_row(header), "|" + "---|" * len(header)]
    lines.extend(_row(row) for row in rows)
    return "\n".join(lines)


def _row(cells: tuple[str, ...]) -> str:
    return "| " + " | ".join(_cell(cell) for cell in cells) + " |"


def _cell(text: str) -> str:
    """Escapes pipes (unless already escaped) and flattens newlines."""
    flat = " ".join(text.split())
    out = []
    for index, char in enumerate(flat):
        if char == "|" and (index == 0 or flat[index - 1] != "\\"):
            out.append("\\|")
        else:
            out.append(char)
    return "".join(out)


if __name__ == "__main__":
    which = sys.argv[1] if len(sys.argv) > 1 else "variables"
    tables = {
        "receivers": receiver_table,
        "sources": source_table,
        "poll-sources": poll_source_table,
    }
    print(tables.get(which, configuration_table)())
