"""Invalid records, each of a kind the worker must dead-letter, with the reason it must give.

Truncated or empty values (``not_json``), broken fields (``invalid_payload``), statuses no
table maps (``unmapped_status``), events that report no run (``unknown_payload_kind``) and
Zoho API error reports (``provider_api_error``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pipestatus.domain.states import Provider
from pipestatus_dev.world.codat import CODAT_TYPES
from pipestatus_dev.world.formats import T0_MS, compact_json, rfc3339, rfc3339_7
from pipestatus_dev.world.rand import Rand
from pipestatus_dev.world.records import BenchRecord


def invalid_record(rng: Rand) -> BenchRecord:
    """One record the worker must dead-letter, with the reason it must give."""
    kind = rng.pick(
        (
            "truncated",
            "empty",
            "unmapped_codat",
            "unmapped_nuvo",
            "bad_uuid",
            "bad_steps",
            "bad_time",
            "connection_event",
            "zoho_api_error",
        )
    )
    world = _InvalidWorld(rng)
    provider, reason, value = world.build(kind)
    key = f"invalid-{rng.hexid(12)}".encode()
    return BenchRecord(provider, key, value, (), "invalid", expected_reason=reason)


@dataclass
class _InvalidWorld:
    rng: Rand

    def _pull(self, status: str = "Fetching") -> dict[str, Any]:
        rng = self.rng
        return {
            "id": rng.uuid(),
            "companyId": rng.uuid(),
            "connectionId": rng.uuid(),
            "dataType": rng.pick(CODAT_TYPES),
            "status": status,
            "requested": rfc3339_7(T0_MS, rng),
            "progress": 20,
            "isCompleted": False,
            "isErrored": False,
        }

    def _krenalis(self) -> dict[str, Any]:
        return {
            "id": self.rng.base62(12),
            "pipeline": self.rng.base62(12),
            "startTime": rfc3339(T0_MS),
            "endTime": rfc3339(T0_MS + 60_000),
            "passed": [10, 10, 10, 10, 10, 10],
            "failed": [0, 0, 0, 0, 0, 0],
            "error": "",
        }

    def build(self, kind: str) -> tuple[Provider, str, bytes]:
        rng = self.rng
        if kind == "truncated":
            value = compact_json(self._pull())
            return Provider.codat, "not_json", value[: len(value) // 2]
        if kind == "empty":
            return rng.pick(tuple(Provider)), "not_json", b""
        if kind == "unmapped_codat":
            return Provider.codat, "unmapped_status", compact_json(self._pull("Paused"))
        if kind == "unmapped_nuvo":
            document: dict[str, Any] = {
                "id": rng.hexid(24),
                "pipeline": rng.hexid(24),
                "status": "QUEUED",
            }
            return Provider.nuvo, "unmapped_status", compact_json(document)
        if kind == "bad_uuid":
            document = self._pull() | {"companyId": "company-42"}
            return Provider.codat, "invalid_payload", compact_json(document)
        if kind == "bad_steps":
            document = self._krenalis() | {"failed": [0, 0, 0, 0, 0]}
            return Provider.krenalis, "invalid_payload", compact_json(document)
        if kind == "bad_time":
            document = self._krenalis() | {"startTime": "2301-01-01T00:00:00Z"}
            return Provider.krenalis, "invalid_payload", compact_json(document)
        if kind == "connection_event":
            document = {
                "id": rng.uuid(),
                "eventType": "connection.disconnected",
                "generatedDate": rfc3339(T0_MS),
                "payload": {
                    "referenceCompany": {"id": rng.uuid(), "name": "Harbour Bikes Ltd"},
                    "connection": {"id": rng.uuid(), "status": "Deauthorized"},
                },
            }
            return Provider.codat, "unknown_payload_kind", compact_json(document)
        report: dict[str, Any] = {  # a Zoho API error report
            "response_status": {
                "status": "failure",
                "status_code": 4004,
                "messages": [
                    {
                        "type": "error",
                        "status_code": 4004,
                        "message": f"Job {2650000001239999 - rng.r.randrange(1000)} not found",
                    }
                ],
            }
        }
        return Provider.zoho_dataprep, "provider_api_error", compact_json(report)
