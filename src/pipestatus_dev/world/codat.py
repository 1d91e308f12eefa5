"""Codat lives: pull operations polled through their statuses, and read webhooks.

A pull operation goes Initial/Queued → Fetching → … → Processing → Complete or an error,
sometimes followed by the legacy ``Data sync completed`` / ``Data Sync Status Changed To
Error`` rule webhook for the same dataset. A ``read.completed[.initial]`` webhook fans out
per data type. Webhooks carry Standard Webhooks headers (``webhook-id`` …), as Svix
delivers them.
"""

from __future__ import annotations

from typing import Any, Final

from pipestatus.domain.states import Provider
from pipestatus_dev.world.event import Event
from pipestatus_dev.world.formats import rfc3339, rfc3339_7, webhook_headers
from pipestatus_dev.world.rand import Rand
from pipestatus_dev.world.world import World

CODAT_TYPES: Final = (
    "invoices",
    "bills",
    "customers",
    "suppliers",
    "chartOfAccounts",
    "journalEntries",
    "payments",
    "banking-accounts",
    "balanceSheet",
    "profitAndLoss",
)
_CODAT_QUEUED: Final = ("Initial", "Queued")
_CODAT_RUNNING: Final = (
    "Fetching",
    "MapQueued",
    "Mapping",
    "ValidationQueued",
    "Validating",
    "ProcessingQueued",
    "Processing",
)
#: Terminal status → (state, how many running phases come before it, weight).
_CODAT_TERMINAL: Final = {
    "Complete": ("succeeded", 7, 0.74),
    "NotSupported": ("skipped", 0, 0.06),
    "Cancelled": ("cancelled", 1, 0.02),
    "FetchError": ("failed", 1, 0.06),
    "AuthError": ("failed", 1, 0.03),
    "RateLimitError": ("failed", 1, 0.02),
    "PermissionsError": ("failed", 1, 0.01),
    "MapError": ("failed", 3, 0.02),
    "InternalError": ("failed", 3, 0.02),
    "ValidationError": ("failed", 5, 0.01),
    "ProcessingError": ("failed", 7, 0.01),
}


def codat_pull_life(rng: Rand, world: World, start_ms: int) -> list[Event]:
    company = rng.pick(world.codat)
    connection = rng.pick(company.connections)
    data_type = rng.pick(CODAT_TYPES)
    run_id = rng.uuid()
    requested = rfc3339_7(start_ms, rng)
    final = rng.weighted([(name, weight) for name, (_, _, weight) in _CODAT_TERMINAL.items()])
    final_state, phases, _ = _CODAT_TERMINAL[final]
    seen = [s for s in _CODAT_QUEUED if rng.chance(0.5)]
    seen += [s for s in _CODAT_RUNNING[:phases] if rng.chance(0.55)]
    events: list[Event] = []
    at = start_ms
    for index, status in enumerate(seen):
        at += rng.r.randrange(2_000, 40_000)
        document = {
            "id": run_id,
            "companyId": company.id,
            "connectionId": connection,
            "dataType": data_type,
            "status": status,
            "statusDescription": None,
            "requested": requested,
            "progress": 10 + 10 * index,
            "isCompleted": False,
            "isErrored": False,
        }
        state = "queued" if status in _CODAT_QUEUED else "running"
        events.append(Event(at, Provider.codat, run_id, document, ((run_id, state, 1),)))
    at += rng.r.randrange(2_000, 40_000)
    failed = final_state == "failed"
    done = {
        "id": run_id,
        "companyId": company.id,
        "connectionId": connection,
        "dataType": data_type,
        "status": final,
        "statusDescription": None,
        "errorMessage": f"{final} while reading {data_type}" if failed else None,
        "requested": requested,
        "completed": rfc3339_7(at, rng),
        "progress": 100,
        "isCompleted": True,
        "isErrored": failed,
    }
    events.append(Event(at, Provider.codat, run_id, done, ((run_id, final_state, 1),)))
    legacy = final == "Complete" or failed
    if legacy and rng.chance(0.12):
        at += rng.r.randrange(500, 5_000)
        dataset_id = run_id.upper() if rng.chance(0.3) else run_id
        webhook: dict[str, Any] = {
            "ClientId": "3c9e1f70-2a4b-4d8e-b6f1-0a7c5e9d2b44",
            "ClientName": "Example Lender",
            "CompanyId": company.id,
            "DataConnectionId": connection,
            "RuleId": "8f2d4a61-0c3b-4e7f-9a15-d6b8e2c0f973",
            "AlertId": rng.uuid(),
        }
        if failed:
            webhook |= {
                "RuleType": "Data Sync Status Changed To Error",
                "Message": f"ERROR: syncing {data_type} triggered a {final} notification.",
                "Data": {"dataType": data_type, "datasetStatus": final, "datasetId": dataset_id},
            }
        else:
            webhook |= {
                "RuleType": "Data sync completed",
                "Message": f"Data sync of type {data_type} completed for company {company.id}",
                "Data": {"dataType": data_type, "datasetId": dataset_id},
            }
        events.append(
            Event(
                at,
                Provider.codat,
                run_id,
                webhook,
                ((run_id, final_state, 1),),
                webhook_headers(rng, at),
            )
        )
    return events


_CODAT_READ_STATUS: Final = (
    ("Complete", 0.8),
    ("NotSupported", 0.08),
    ("FetchError", 0.06),
    ("AuthError", 0.06),
)
_CODAT_READ_STATE: Final = {
    "Complete": "succeeded",
    "NotSupported": "skipped",
    "FetchError": "failed",
    "AuthError": "failed",
}


def codat_read_life(rng: Rand, world: World, start_ms: int) -> list[Event]:
    """One ``read.completed`` webhook: one event, one run per data type read."""
    company = rng.pick(world.codat)
    event_id = rng.uuid()
    entries: list[dict[str, Any]] = []
    runs: list[tuple[str, str, int]] = []
    used: list[tuple[str, str]] = []
    for _ in range(1 + rng.r.randrange(5)):
        connection, data_type = rng.pick(company.connections), rng.pick(CODAT_TYPES)
        if (connection, data_type) in used:
            continue
        used.append((connection, data_type))
        status = rng.weighted(_CODAT_READ_STATUS)
        issues: list[dict[str, Any]] | None = []
        if status == "Complete" and rng.chance(0.2):
            issues = [
                {
                    "type": "warning.validation",
                    "message": f"{rng.r.randrange(1, 9)} {data_type} records have no reference.",
                }
            ]
        elif status != "Complete":
            issues = None
        entries.append(
            {
                "connectionId": connection,
                "dataType": data_type,
                "recordsModified": status == "Complete",
                "status": status,
                "issues": issues,
            }
        )
        runs.append((f"{event_id}:{connection}:{data_type}", _CODAT_READ_STATE[status], 1))
    initial = rng.chance(0.1)
    document = {
        "id": event_id,
        "eventType": "read.completed.initial" if initial else "read.completed",
        "generatedDate": rfc3339_7(start_ms, rng),
        "payload": {
            "referenceCompany": {
                "id": company.id,
                "name": company.name,
                "links": {"portal": f"https://app.codat.io/companies/{company.id}/summary"},
            },
            "modifiedFromDate": None if initial else rfc3339(start_ms - 3_600_000),
            "dataTypes": entries,
        },
    }
    headers = webhook_headers(rng, start_ms)
    return [Event(start_ms, Provider.codat, company.id, document, tuple(runs), headers)]
