"""Bytes to a JSON document, with the size limit enforced before parsing."""

from __future__ import annotations

from typing import Any

import pydantic_core

from pipestatus.errors import NotJsonError, PayloadTooLargeError


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
        return pydantic_core.from_json(raw, allow_inf_nan=False)
    except ValueError as exc:
        raise NotJsonError(f"value is not JSON: {exc}") from exc
