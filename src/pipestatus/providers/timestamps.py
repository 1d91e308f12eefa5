"""Provider timestamps to aware UTC datetimes (docs/event-contract.md).

Accepted: epoch milliseconds (number or numeric string), RFC 3339 with up to 7 fractional
digits (Codat sends 7; the 7th is truncated), and ``YYYY-MM-DD HH:MM:SS[.fff]`` without a
zone (nuvo), read as UTC.
"""

from __future__ import annotations

import functools
import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Final

from pydantic import BeforeValidator, WithJsonSchema

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
#: Moments outside this window are input errors, not runs (garbage or unit mix-ups).
EARLIEST: Final = _EPOCH
LATEST: Final = datetime(2200, 1, 1, tzinfo=UTC)

_RFC3339: Final = re.compile(
    r"(?P<date>\d{4}-\d{2}-\d{2})[Tt ](?P<time>\d{2}:\d{2}:\d{2})"
    r"(?:\.(?P<frac>\d{1,9}))?(?P<zone>[Zz]|[+-]\d{2}:\d{2})?"
)
_NUMERIC: Final = re.compile(r"-?\d{1,16}(?:\.\d+)?")


def parse_timestamp(value: Any) -> datetime:
    """Parses one provider timestamp; raises ``ValueError`` with what was wrong."""
    kind = type(value)
    if kind is int or kind is str:
        # A payload repeats its moments (a run's and its stages' times, a pipeline's
        # creation in every report), so most parses are cache hits; datetimes are immutable.
        return _parse_cached(value)
    return _parse(value)


@functools.lru_cache(maxsize=16384, typed=True)
def _parse_cached(value: int | str) -> datetime:
    return _parse(value)


def _parse(value: Any) -> datetime:
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
    elif isinstance(value, bool):
        raise ValueError("timestamp must be a number or a string, not a boolean")
    elif isinstance(value, int | float):
        moment = _from_epoch_millis(value)
    elif isinstance(value, str):
        moment = _from_string(value.strip())
    else:
        raise ValueError(f"timestamp must be a number or a string, not {type(value).__name__}")
    moment = moment.astimezone(UTC)
    if not EARLIEST <= moment < LATEST:
        raise ValueError(f"timestamp {moment.isoformat()} is outside 1970..2200")
    return moment


def millis_between(start: datetime | None, end: datetime | None) -> int | None:
    """Whole milliseconds from ``start`` to ``end``; ``None`` when unknown or negative."""
    if start is None or end is None or end < start:
        return None
    return (end - start) // timedelta(milliseconds=1)


def _from_epoch_millis(millis: float) -> datetime:
    try:
        if not -1e16 < millis < 1e16:
            raise OverflowError
        return _EPOCH + timedelta(milliseconds=millis)
    except OverflowError:  # also past year 9999, where datetime ends
        raise ValueError(f"epoch milliseconds {millis!r} out of range") from None


def _from_string(text: str) -> datetime:
    if _NUMERIC.fullmatch(text):
        return _from_epoch_millis(float(text) if "." in text else int(text))
    match = _RFC3339.fullmatch(text)
    if match is None:
        raise ValueError(
            f"unrecognised timestamp {text[:40]!r}: expected epoch milliseconds, "
            "RFC 3339 or 'YYYY-MM-DD HH:MM:SS.mmm'"
        )
    frac = (match["frac"] or "")[:6]
    zone = match["zone"] or "+00:00"
    if zone in ("Z", "z"):
        zone = "+00:00"
    iso = f"{match['date']}T{match['time']}{'.' + frac.ljust(6, '0') if frac else ''}{zone}"
    try:
        return datetime.fromisoformat(iso)
    except ValueError as exc:
        raise ValueError(f"invalid timestamp {text[:40]!r}: {exc}") from exc


EpochMillis = Annotated[
    datetime,
    BeforeValidator(parse_timestamp),
    WithJsonSchema(
        {
            "anyOf": [{"type": "integer"}, {"type": "string", "pattern": r"^-?\d+$"}],
            "description": "Unix time in milliseconds (number or numeric string)",
        }
    ),
]

Rfc3339 = Annotated[
    datetime,
    BeforeValidator(parse_timestamp),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]

FlexibleTimestamp = Annotated[
    datetime,
    BeforeValidator(parse_timestamp),
    WithJsonSchema(
        {
            "anyOf": [{"type": "integer"}, {"type": "string"}],
            "description": "epoch milliseconds, RFC 3339, or 'YYYY-MM-DD HH:MM:SS.mmm' (UTC)",
        }
    ),
]
