"""The documentation agrees with the code: it cannot drift silently.

- ``schemas/asyncapi.yaml``: every ``$ref`` resolves (files in ``schemas/`` and JSON
  pointers), every payload kind has a message on its provider's channel, and every message
  example is accepted by the real intake code as the kind it documents.
- ``docs/configuration.md``: the generated tables equal ``pipestatus_dev.configdoc`` output;
  every documented variable name is read by the settings model (checked by setting it);
  the README's configuration table names exactly the settings' variables.
- ``docs/event-contract.md``: every ``kcat`` example and CloudEvent example is accepted by
  the intake code; every payload kind and dead-letter reason is documented.
- ``docs/architecture.md``: the module map names real paths and every package.
- Relative links and anchors in these documents resolve.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin
from urllib.parse import unquote

import pytest
import yaml  # type: ignore[import-untyped]  # PyYAML ships no type information
from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo

import pipestatus
from pipestatus import errors
from pipestatus.app import routing_from
from pipestatus.domain.states import Provider
from pipestatus.intake import Accepted, InboundRecord, Routing, prepare
from pipestatus.providers import PROVIDERS
from pipestatus.settings import (
    DEFAULT_TOPICS,
    PollSourceSettings,
    ReceiverSettings,
    Settings,
    SourceSettings,
)
from pipestatus_dev.configdoc import (
    EXTRA_DESCRIPTIONS,
    Variable,
    configuration_table,
    object_fields,
    poll_source_table,
    receiver_table,
    source_table,
    variables,
)

REPO = Path(__file__).resolve().parents[2]
SCHEMAS = REPO / "schemas"
ASYNCAPI = SCHEMAS / "asyncapi.yaml"
README = REPO / "README.md"
DOCS = REPO / "docs"
CONFIGURATION = DOCS / "configuration.md"
EVENT_CONTRACT = DOCS / "event-contract.md"
ARCHITECTURE = DOCS / "architecture.md"
PACKAGE = REPO / "src" / "pipestatus"

#: Record headers pipestatus reads, as the AsyncAPI headers schema must list them.
HEADERS = {
    "ce_specversion", "ce_id", "ce_source", "ce_type", "ce_time", "content-type", "webhook-id",
}  # fmt: skip
KINDS = {kind.name: spec.provider for spec in PROVIDERS.values() for kind in spec.kinds}


def _routing() -> Routing:
    return routing_from(Settings())


@pytest.fixture(autouse=True)
def _no_pipestatus_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Defaults are read from the model, not from whatever this shell exports."""
    for key in [k for k in os.environ if k.upper().startswith("PIPESTATUS_")]:
        monkeypatch.delenv(key)


# ---------------------------------------------------------------------------- AsyncAPI


def _asyncapi() -> dict[str, Any]:
    document = yaml.safe_load(ASYNCAPI.read_text(encoding="utf-8"))
    assert isinstance(document, dict)
    return document


def _refs(node: Any, where: str = "#") -> Iterator[tuple[str, str]]:
    """Every ``$ref`` value in a YAML/JSON tree, with where it was found."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                assert isinstance(value, str), f"{where}: $ref is not a string"
                yield where, value
            else:
                yield from _refs(value, f"{where}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _refs(value, f"{where}/{index}")


def _pointer(document: Any, pointer: str) -> Any:
    """Resolves a JSON pointer (RFC 6901) in ``document``; raises ``KeyError`` if absent."""
    if pointer in ("", "/"):
        return document
    node = document
    for raw in pointer.lstrip("/").split("/"):
        part = unquote(raw).replace("~1", "/").replace("~0", "~")
        if isinstance(node, list):
            node = node[int(part)]
        elif isinstance(node, dict) and part in node:
            node = node[part]
        else:
            raise KeyError(f"{pointer!r}: no {part!r}")
    return node


def _resolve(base: Path, document: Any, ref: str) -> tuple[Path, Any, Any]:
    """(file, file's document, target) of ``ref`` as seen from ``base``'s ``document``."""
    target_file, _, fragment = ref.partition("#")
    if target_file:
        assert "://" not in target_file, f"{ref}: only files beside {base.name} are allowed"
        path = (base.parent / target_file).resolve()
        assert path.is_file(), f"{ref}: {path} does not exist"
        assert path.parent == SCHEMAS.resolve(), f"{ref}: not a file in schemas/"
        document = json.loads(path.read_text(encoding="utf-8"))
        base = path
    return base, document, _pointer(document, fragment)


def test_asyncapi_is_a_3_0_document_of_this_version() -> None:
    document = _asyncapi()
    assert document["asyncapi"] == "3.0.0"
    assert document["info"]["version"] == pipestatus.__version__
    assert document["servers"], "at least one server"
    assert all(server["protocol"] == "kafka" for server in document["servers"].values())
    assert all(server["host"] for server in document["servers"].values())


def test_every_asyncapi_ref_resolves() -> None:
    """Internal pointers, schema files in schemas/, and pointers into those files."""
    document = _asyncapi()
    refs = list(_refs(document))
    assert len(refs) > 40
    files = set()
    for where, ref in refs:
        try:
            path, file_document, _target = _resolve(ASYNCAPI, document, ref)
        except (KeyError, IndexError, ValueError) as exc:
            pytest.fail(f"{where}: $ref {ref!r} does not resolve: {exc}")
        if path != ASYNCAPI:
            files.add(path)
            # The schema file's own refs (e.g. "#/$defs/...") resolve inside it.
            for inner_where, inner in _refs(file_document):
                try:
                    _resolve(path, file_document, inner)
                except (KeyError, IndexError, ValueError) as exc:
                    pytest.fail(f"{path.name}{inner_where[1:]}: $ref {inner!r}: {exc}")
    assert {path.stem for path in files} == set(KINDS)


def test_pointer_resolution_rejects_missing_targets() -> None:
    """The resolver the ref test relies on does fail on a dangling pointer or file."""
    document = _asyncapi()
    with pytest.raises(KeyError):
        _resolve(ASYNCAPI, document, "#/components/messages/noSuchMessage")
    with pytest.raises(KeyError):
        _resolve(ASYNCAPI, document, "./codat.read_completed.json#/$defs/NoSuchDefinition")
    with pytest.raises(AssertionError):
        _resolve(ASYNCAPI, document, "./no_such_kind.json")


def _message(document: dict[str, Any], ref: dict[str, Any]) -> dict[str, Any]:
    _path, _doc, target = _resolve(ASYNCAPI, document, ref["$ref"])
    assert isinstance(target, dict)
    return target


def _channels_by_topic(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {channel["address"]: channel for channel in document["channels"].values()}


def test_asyncapi_has_a_channel_per_default_topic_with_its_kinds() -> None:
    """Each default topic is a channel whose messages are exactly its provider's kinds."""
    document = _asyncapi()
    channels = _channels_by_topic(document)
    assert set(DEFAULT_TOPICS) <= set(channels)
    for topic, provider in DEFAULT_TOPICS.items():
        channel = channels[topic]
        assert channel["bindings"]["kafka"]["topic"] == topic
        payloads = set()
        for ref in channel["messages"].values():
            message = _message(document, ref)
            if message["contentType"] == "application/json":
                assert message["payload"] == {"$ref": f"./{message['name']}.json"}
                payloads.add(message["name"])
        expected = {kind for kind, owner in KINDS.items() if owner is provider}
        assert payloads == expected, topic


def test_asyncapi_shared_topics_channel_carries_every_kind() -> None:
    document = _asyncapi()
    shared = [c for c in document["channels"].values() if c["address"] not in DEFAULT_TOPICS]
    assert len(shared) == 1
    names = {_message(document, ref)["name"] for ref in shared[0]["messages"].values()}
    assert set(KINDS) <= names
    assert "SHARED_TOPICS" in shared[0]["description"]


def test_asyncapi_operations_receive_their_own_channels_messages() -> None:
    document = _asyncapi()
    operations = document["operations"]
    assert {op["channel"]["$ref"] for op in operations.values()} == {
        f"#/channels/{name}" for name in document["channels"]
    }
    for name, operation in operations.items():
        assert operation["action"] == "receive", name
        channel = operation["channel"]["$ref"]
        for ref in operation["messages"]:
            assert ref["$ref"].startswith(f"{channel}/messages/"), (name, ref)


def test_asyncapi_messages_document_headers_and_key() -> None:
    """Headers schema: the headers intake reads, all strings; Kafka key: a string."""
    document = _asyncapi()
    messages = document["components"]["messages"]
    assert messages
    for name, message in messages.items():
        headers = _message(document, {"$ref": message["headers"]["$ref"]})
        parts = headers.get("allOf", [headers])
        base = _message(document, parts[0]) if "$ref" in parts[0] else parts[0]
        assert set(base["properties"]) == HEADERS, name
        assert all(p["type"] == "string" for p in base["properties"].values()), name
        bindings = _message(document, message["bindings"])
        assert bindings["kafka"]["key"]["type"] == "string", name
        assert "run id" in bindings["kafka"]["key"]["description"]


def _example_records() -> Iterator[tuple[str, str, dict[str, Any], InboundRecord]]:
    """(message id, topic, message, record) for every message example on every channel."""
    document = _asyncapi()
    for channel in document["channels"].values():
        address = channel["address"]
        topic = "runs.all" if address.startswith("{") else address
        for ref in channel["messages"].values():
            message = _message(document, ref)
            for example in message["examples"]:
                headers = tuple(
                    (name, str(value).encode()) for name, value in example["headers"].items()
                )
                value = json.dumps(example["payload"]).encode()
                record = InboundRecord(topic, 0, 0, None, value, headers)
                yield ref["$ref"].rsplit("/", 1)[-1], topic, message, record


def test_every_asyncapi_message_has_an_example() -> None:
    document = _asyncapi()
    assert all(m.get("examples") for m in document["components"]["messages"].values())


@pytest.mark.parametrize(
    ("message_id", "topic", "message", "record"),
    [pytest.param(*example, id=f"{example[1]}:{example[0]}") for example in _example_records()],
)
def test_asyncapi_example_is_accepted_by_the_intake(
    message_id: str, topic: str, message: dict[str, Any], record: InboundRecord
) -> None:
    """The examples are real: the worker's intake accepts each as the documented kind."""
    result = prepare(record, _routing())
    assert isinstance(result, Accepted), f"{message_id} on {topic}: {result}"
    if message["contentType"] == "application/json":
        assert result.parsed.kind == message["name"]
    else:
        assert message["contentType"] == "application/cloudevents+json"
        assert message["name"] == f"{result.parsed.provider.value}.cloudevent"
    assert result.event_id.startswith("ce:"), "examples carry CloudEvents identities"


# ----------------------------------------------------------------------- configuration


def _block(text: str, name: str) -> str:
    match = re.search(rf"<!-- {name}:start -->\n(.*?)\n<!-- {name}:end -->", text, re.S)
    assert match, f"markers <!-- {name}:start --> / <!-- {name}:end --> not found"
    return match.group(1)


def test_configuration_md_table_is_generated_from_the_settings() -> None:
    """Regenerate with ``python -m pipestatus_dev.configdoc``."""
    text = CONFIGURATION.read_text(encoding="utf-8")
    assert _block(text, "config-table") == configuration_table()
    assert _block(text, "receiver-table") == receiver_table()
    assert _block(text, "source-table") == source_table()
    assert _block(text, "poll-source-table") == poll_source_table()


def test_every_setting_is_described() -> None:
    described = [
        *variables(),
        *object_fields(ReceiverSettings, "receiver"),
        *object_fields(SourceSettings, "source"),
        *object_fields(PollSourceSettings, "poll_source"),
    ]
    missing = [v.path for v in described if not v.description]
    assert not missing, f"add a Field description (or configdoc.EXTRA_DESCRIPTIONS): {missing}"
    unused = set(EXTRA_DESCRIPTIONS) - {v.path for v in described}
    assert not unused, f"EXTRA_DESCRIPTIONS names no field: {sorted(unused)}"


def test_configuration_table_never_shows_a_secret_value() -> None:
    secrets = [v for v in variables() if v.secret]
    assert {v.path for v in secrets} >= {"database.url", "kafka.sasl_password"}
    assert all(v.default in ("secret", "unset") for v in secrets)
    assert "postgresql://" not in configuration_table()
    receivers = {f.name: f for f in object_fields(ReceiverSettings, "receiver")}
    assert receivers["secret"].secret
    assert receivers["routing_key"].secret


def test_variable_names_follow_prefix_and_nesting() -> None:
    names = [v.name for v in variables()]
    assert len(names) == len(set(names))
    assert "PIPESTATUS_KAFKA__BOOTSTRAP_SERVERS" in names
    assert "PIPESTATUS_ALERTS__RECEIVERS" in names
    assert "PIPESTATUS_LOG_LEVEL" in names
    for variable in variables():
        expected = "PIPESTATUS_" + variable.path.upper().replace(".", "__")
        assert variable.name == expected


def _field(path: str) -> FieldInfo:
    model: type[BaseModel] = Settings
    *sections, leaf = path.split(".")
    for section in sections:
        annotation = model.model_fields[section].annotation
        assert isinstance(annotation, type)
        assert issubclass(annotation, BaseModel)
        model = annotation
    return model.model_fields[leaf]


def _read(settings: Settings, path: str) -> Any:
    value: Any = settings
    for part in path.split("."):
        value = getattr(value, part)
    return value.get_secret_value() if isinstance(value, SecretStr) else value


def _sample(annotation: Any) -> Any:
    """A JSON value of ``annotation`` for map and list elements."""
    if isinstance(annotation, type) and issubclass(annotation, Provider):
        return Provider.codat.value
    if annotation is ReceiverSettings:
        return {"name": "docs", "type": "alertmanager", "url": "http://alertmanager:9093"}
    if annotation is SourceSettings:
        return {"name": "docs", "provider": "codat", "verify": "none"}
    if annotation is PollSourceSettings:
        return {"name": "docs", "provider": "krenalis", "base_url": "http://k", "api_key": "k"}
    return {str: "docs-sample", int: 7, float: 7.5}[annotation]


def _other_value(variable: Variable, default: Any) -> str:
    """An environment value for ``variable`` that differs from its default."""
    annotation = _field(variable.path).annotation
    if get_origin(annotation) in (Union, types.UnionType):  # Optional[X] -> X
        (annotation,) = [a for a in get_args(annotation) if a is not type(None)]
    origin = get_origin(annotation)
    if origin is Literal:
        return str(next(a for a in get_args(annotation) if a != default))
    if origin is dict:
        key, value = get_args(annotation)
        return json.dumps({_sample(key): _sample(value)})
    if origin is list:
        (item,) = get_args(annotation)
        return json.dumps([_sample(item)])
    if annotation is bool:
        return "false" if default else "true"
    if annotation is int:
        return str(default + 1)
    if annotation is float:
        return str(default / 2)
    assert annotation in (str, SecretStr), f"{variable.name}: add a sample for {annotation!r}"
    return "docs-sample"


def test_every_documented_variable_is_read_by_the_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Setting each variable to another value changes exactly the field it documents."""
    defaults = Settings()
    for variable in variables():
        before = _read(defaults, variable.path)
        value = _other_value(variable, before)
        with monkeypatch.context() as env:
            env.setenv(variable.name, value)
            after = _read(Settings(), variable.path)
        assert after != before, f"{variable.name}={value} did not change {variable.path}"


def test_documented_defaults_are_valid_environment_values(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every default as the table writes it, set in the environment, gives the defaults."""
    for variable in variables():
        if variable.default.startswith("`"):
            monkeypatch.setenv(variable.name, variable.default.strip("`"))
    assert Settings() == Settings.model_construct()


def _readme_variables() -> list[str]:
    """Variable names of the README's configuration table, shorthand expanded.

    A first cell like ```PIPESTATUS_KAFKA__SASL_USERNAME` / `…__SASL_PASSWORD``` names
    two variables: ``…__X`` is relative to the previous full name's section.
    """
    names: list[str] = []
    previous = ""
    for line in README.read_text(encoding="utf-8").splitlines():
        if not line.startswith("| `PIPESTATUS_"):
            continue
        cell = line.split("|")[1]
        for token in (part.strip().strip("`") for part in cell.split("/")):
            if token.startswith("PIPESTATUS_"):
                previous = token
                names.append(token)
            elif token.startswith(("…__", "...__")):
                assert previous, f"shorthand {token!r} before any full name"
                section = previous.rsplit("__", 1)[0]
                names.append(section + "__" + token.split("__", 1)[1])
            else:
                pytest.fail(f"README configuration row has an unreadable name {token!r}")
    return names


def test_readme_configuration_table_names_exactly_the_settings() -> None:
    """README and code cannot drift: no stale row, no undocumented setting."""
    readme = _readme_variables()
    assert len(readme) == len(set(readme)), "a variable appears twice in the README table"
    settings = {v.name for v in variables()}
    unknown = sorted(set(readme) - settings)
    assert not unknown, f"README documents variables the settings do not read: {unknown}"
    missing = sorted(settings - set(readme))
    assert not missing, f"settings missing from the README configuration table: {missing}"


def test_readme_shorthand_is_expanded() -> None:
    names = _readme_variables()
    assert "PIPESTATUS_KAFKA__SASL_PASSWORD" in names
    assert "PIPESTATUS_KAFKA__SSL_KEYFILE" in names
    assert "PIPESTATUS_ALERTS__RETRY_MAX_S" in names


def test_configuration_md_names_the_providers() -> None:
    text = CONFIGURATION.read_text(encoding="utf-8")
    assert all(f"`{provider.value}`" in text for provider in Provider)


# ---------------------------------------------------------------------- event contract


def _fenced(text: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", text, re.S)


def _kcat_commands(text: str) -> list[list[str]]:
    commands = []
    for block in _fenced(text, "sh"):
        joined = block.replace("\\\n", " ")
        for line in joined.splitlines():
            if "kcat " in line:
                words = shlex.split(line.split("|")[-1])
                commands.append(words[words.index("kcat") :])
    return commands


def _kcat_record(words: list[str]) -> tuple[InboundRecord, list[Path]]:
    """The record a ``kcat -P`` command produces (without the value) and its files."""
    topic, key, headers, files = "", None, [], []
    options = iter(words[1:])
    for word in options:
        if word == "-P":
            continue
        if word in ("-b", "-p"):
            next(options)
        elif word == "-t":
            topic = next(options)
        elif word == "-k":
            key = next(options).encode()
        elif word == "-H":
            name, _, value = next(options).partition("=")
            headers.append((name, value.encode()))
        else:
            assert not word.startswith("-"), f"unexpected kcat option {word}"
            files.append(REPO / word)
    assert topic, words
    return InboundRecord(topic, 0, 0, key, None, tuple(headers)), files


def test_event_contract_kcat_examples_are_accepted() -> None:
    """Each ``kcat`` example sends what the intake accepts, on a documented topic."""
    text = EVENT_CONTRACT.read_text(encoding="utf-8")
    commands = _kcat_commands(text)
    assert len(commands) >= 4
    assert any("ce_specversion=1.0" in words for words in commands)
    sent = 0
    for words in commands:
        record, files = _kcat_record(words)
        assert record.topic in DEFAULT_TOPICS or record.topic == "runs.all", words
        assert {name for name, _ in record.headers} <= HEADERS, words
        for path in files:
            assert path.is_file(), f"{path} does not exist"
            value = path.read_bytes()
            result = prepare(
                InboundRecord(record.topic, 0, 0, record.key, value, record.headers), _routing()
            )
            assert isinstance(result, Accepted), f"{' '.join(words)}: {result}"
            sent += 1
    assert sent >= 4


def test_event_contract_cloudevent_examples_are_accepted() -> None:
    """Each structured CloudEvent shown is accepted on a shared topic."""
    examples = [
        json.loads(block)
        for block in _fenced(EVENT_CONTRACT.read_text(encoding="utf-8"), "json")
        if '"specversion"' in block
    ]
    assert examples
    for event in examples:
        headers = (("content-type", b"application/cloudevents+json"),)
        record = InboundRecord("runs.all", 0, 0, None, json.dumps(event).encode(), headers)
        result = prepare(record, _routing())
        assert isinstance(result, Accepted), result
        assert result.event_id == f"ce:{event['source']}#{event['id']}"


def _reasons() -> set[str]:
    found: set[str] = set()
    pending: list[type[errors.EventError]] = [errors.EventError]
    while pending:
        cls = pending.pop()
        found.add(cls.reason)
        pending.extend(cls.__subclasses__())
    return found


def test_event_contract_documents_every_kind_and_dead_letter_reason() -> None:
    text = EVENT_CONTRACT.read_text(encoding="utf-8")
    for kind in KINDS:
        assert f"](../schemas/{kind}.json)" in text, f"no schema link for {kind}"
    reasons = _reasons()
    assert len(reasons) >= 9
    for reason in reasons:
        assert f"| `{reason}` |" in text, f"dead-letter reason {reason} is not in the table"
    for topic in DEFAULT_TOPICS:
        assert f"`{topic}`" in text
    for header in HEADERS:
        assert f"`{header}`" in text


# ------------------------------------------------------------------------ architecture


def test_architecture_module_map_names_real_paths() -> None:
    """Every path in the module map exists; every package and key module is in it."""
    text = ARCHITECTURE.read_text(encoding="utf-8")
    section = text.split("## Module map", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    named = set()
    for row in rows:
        for cell_path in re.findall(r"`([\w./]+(?:/|\.py))`", row.split("|")[1]):
            assert (PACKAGE / cell_path).exists(), f"module map names {cell_path}"
            named.add(cell_path)
        # Files named in the role column of a package row live in that package.
        package = re.match(r"\| `(\w+)/`", row)
        if package:
            for file in re.findall(r"`(\w+\.py)`", row.split("|")[2]):
                assert (PACKAGE / package.group(1) / file).exists(), f"{package.group(1)}/{file}"
    packages = {
        f"{p.name}/" for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()
    }
    assert packages <= named, f"packages missing from the module map: {packages - named}"
    key_modules = {"intake.py", "service.py", "app.py", "settings.py", "errors.py"}
    assert key_modules <= named


def test_architecture_names_every_table_of_the_batch_transaction() -> None:
    text = ARCHITECTURE.read_text(encoding="utf-8")
    migrations = "\n".join(
        p.read_text(encoding="utf-8") for p in (PACKAGE / "migrations").glob("*.sql")
    )
    tables = set(re.findall(r"CREATE TABLE (?:IF NOT EXISTS )?(\w+)", migrations))
    assert {"runs", "run_transitions", "processed_events", "dead_letters"} <= tables
    for table in tables - {"schema_migrations"}:
        assert f"`{table}`" in text or table in text, f"architecture.md never names {table}"


# ----------------------------------------------------------------------- links, anchors


def _slug(heading: str) -> str:
    """GitHub's heading anchor: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    text = path.read_text(encoding="utf-8")
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    return {_slug(m) for m in re.findall(r"^#{1,6} (.+)$", text, re.M)}


@pytest.mark.parametrize(
    "document", [ARCHITECTURE, CONFIGURATION, EVENT_CONTRACT], ids=lambda p: p.name
)
def test_relative_links_resolve(document: Path) -> None:
    text = re.sub(r"```.*?```", "", document.read_text(encoding="utf-8"), flags=re.S)
    links = re.findall(r"\]\(([^)\s]+)\)", text)
    assert links
    for link in links:
        if "://" in link:
            continue
        target, _, anchor = link.partition("#")
        path = (document.parent / target).resolve() if target else document
        assert path.exists(), f"{document.name}: link {link} points nowhere"
        if anchor and path.suffix == ".md":
            assert anchor in _anchors(path), f"{document.name}: no heading for #{anchor}"
