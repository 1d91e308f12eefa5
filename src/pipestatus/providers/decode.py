"""Bytes to a JSON document, with the size limit enforced before parsing.

Also refuses what decodes but PostgreSQL ``text`` and ``jsonb`` cannot hold: a NUL
character (``\\u0000``) and lone UTF-16 surrogates, with the path of the string that
holds one. Both can only come from JSON escapes, so one substring test on the raw bytes
keeps the walk off nearly every record.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pydantic_core

from pipestatus.errors import InvalidPayloadError, NotJsonError, PayloadTooLargeError


def decode_json(raw: bytes, *, max_bytes: int) -> Any:
    """Decodes one record value; rejects oversized, non-UTF-8, empty and broken input."""
    if len(raw) > max_bytes:
        raise PayloadTooLargeError(f"value is {len(raw)} bytes, the limit is {max_bytes}")
    if not raw.strip():
        raise NotJsonError("value is empty")
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise NotJsonError(f"value is not UTF-8: invalid byte at offset {exc.start}") from exc
    try:
        document = pydantic_core.from_json(raw, allow_inf_nan=False)
    except ValueError as exc:
        _refuse_lone_surrogate(raw)
        raise NotJsonError(f"value is not JSON: {exc}") from exc
    if b"\\u0000" in raw:
        refuse_nul(document, stage="decode")
    return document


def refuse_nul(document: Any, *, stage: str = "validate") -> None:
    """Raises ``InvalidPayloadError`` at the first string (key or value) holding NUL."""
    path = find_string(document, lambda text: "\x00" in text)
    if path is not None:
        raise InvalidPayloadError(
            "string contains a NUL character (\\u0000), which PostgreSQL cannot store",
            path=path,
            stage=stage,
        )


def _refuse_lone_surrogate(raw: bytes) -> None:
    if b"\\ud" not in raw and b"\\uD" not in raw:
        return
    try:  # the standard library decodes lone surrogates; it only serves to find one
        document = json.loads(raw)
    except ValueError:
        return
    path = find_string(document, _has_lone_surrogate)
    if path is not None:
        raise InvalidPayloadError(
            "string contains a lone UTF-16 surrogate, which is not Unicode text",
            path=path,
            stage="decode",
        )


def _has_lone_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def find_string(document: Any, bad: Callable[[str], bool]) -> str | None:
    """The dotted path (``a.0.b``) of the first key or string value for which ``bad``."""
    stack: list[tuple[Any, tuple[str, ...]]] = [(document, ())]
    while stack:
        value, path = stack.pop()
        if isinstance(value, str):
            if bad(value):
                return ".".join(path)
        elif isinstance(value, dict):
            for key, child in value.items():
                if bad(key):
                    return ".".join((*path, printable(key)))
                stack.append((child, (*path, printable(key))))
        elif isinstance(value, list):
            stack.extend((child, (*path, str(i))) for i, child in enumerate(value))
    return None


def printable(text: str) -> str:
    """``text`` with NUL and lone surrogates written as escapes (for paths and messages)."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")
