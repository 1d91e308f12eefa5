"""nuvo lives: an execution created, then successful or failed, and a failed one often fixed.

The creation is a create response or a bare ``PROCESSING`` execution, sometimes wrapped as
``{"data": {...}}``. Fixing a failed execution appends a ``FIX`` log: attempt 2, processing
again, then successful.
"""

from __future__ import annotations

from typing import Any, Final

from pipestatus.domain.states import Provider
from pipestatus_dev.world.event import Event
from pipestatus_dev.world.formats import nuvo_time, rfc3339
from pipestatus_dev.world.rand import Rand
from pipestatus_dev.world.world import World

_NUVO_ERRORS: Final = (
    ("SOURCE_UNRESPONSIVE", "The connection to the SFTP server could not be established."),
    ("SOURCE_DATA_EMPTY", "The source file has no rows."),
    ("PARSING_FAILURE", "Row 12 has 15 columns, the header has 14."),
    ("DESTINATION_UNRESPONSIVE", "The destination API did not answer within 30 s."),
    ("DESTINATION_SIZE_LIMIT", "The output exceeds the destination's 50 MB limit."),
    ("WRITE_FILE_FAILURE", "Could not write the output file."),
    ("ERROR_THRESHOLD_EXCEEDED", "14.2% of cells contain errors; the pipeline allows 10%."),
)


def nuvo_life(rng: Rand, world: World, start_ms: int) -> list[Event]:
    pipeline, configuration = rng.pick(world.nuvo)
    execution_id = rng.hexid(24)
    trigger = rng.pick(("MANUAL", "SCHEDULED", "EVENT"))
    actor = {
        "id": rng.hexid(24),
        "name": "Operations",
        "identifier": "ops@example.com",
        "type": "USER",
    }
    created = nuvo_time(start_ms)
    wrap = rng.chance(0.3)
    events: list[Event] = []

    def report(document: dict[str, Any], at: int, state: str, attempt: int) -> None:
        body = {"data": document} if wrap else document
        run = ((execution_id, state, attempt),)
        events.append(Event(at, Provider.nuvo, execution_id, body, run))

    base = {"id": execution_id, "pipeline": pipeline}
    if rng.chance(0.3):
        created_entry = base | {"status": "PROCESSING", "trigger_type": trigger}
        run = ((execution_id, "running", 1),)
        events.append(Event(start_ms, Provider.nuvo, execution_id, {"data": [created_entry]}, run))
    if rng.chance(0.7):
        processing = base | {
            "status": "PROCESSING",
            "trigger_type": trigger,
            "configuration": configuration,
            "created_at": created,
            "created_by": actor,
            "updated_at": nuvo_time(start_ms + 137),
            "updated_by": actor,
        }
        report(processing, start_ms + 137, "running", 1)
    rows = rng.r.randrange(10, 5000)
    cells = rows * 12
    first_ms = start_ms + rng.r.randrange(2_000, 60_000)
    failed = rng.chance(0.25)
    error_cells = rng.r.randrange(1, max(cells // 50, 2)) if rng.chance(0.2) else 0
    first_log = {
        "type": rng.pick(("CREATE", "CREATED")),
        "status": "FAILED" if failed else "SUCCESSFUL",
        "started_at": rfc3339(start_ms + 200),
        "duration": first_ms - start_ms - 200,
        "data": {
            "total_rows": rows,
            "total_cells": cells,
            "total_error_cells": cells // 7 if failed else error_cells,
            "total_error_rows": rows // 5 if failed else min(error_cells, rows),
        },
    }
    finished = base | {
        "status": "FAILED" if failed else "SUCCESSFUL",
        "trigger_type": trigger,
        "configuration": configuration,
        "logs": [first_log],
        "created_at": created,
        "created_by": actor,
        "updated_at": nuvo_time(first_ms),
        "updated_by": actor,
    }
    if failed:
        error_type, message = rng.pick(_NUVO_ERRORS)
        finished["error"] = {"type": error_type, "message": message}
    report(finished, first_ms, "failed" if failed else "succeeded", 1)
    if failed and rng.chance(0.5):
        fix_ms = first_ms + rng.r.randrange(600_000, 7_200_000)
        fix_log: dict[str, Any] = {
            "type": "FIX",
            "status": "PROCESSING",
            "started_on": rfc3339(fix_ms),
        }
        fixing = base | {
            "status": "PROCESSING",
            "trigger_type": trigger,
            "logs": [first_log, fix_log],
            "created_at": created,
            "updated_at": nuvo_time(fix_ms + 50),
        }
        if rng.chance(0.6):
            report(fixing, fix_ms + 50, "running", 2)
        done_ms = fix_ms + rng.r.randrange(2_000, 30_000)
        fixed_log = fix_log | {
            "status": "SUCCESSFUL",
            "duration": done_ms - fix_ms,
            "data": {
                "total_rows": rows,
                "total_cells": cells,
                "total_error_cells": 0,
                "total_error_rows": 0,
            },
        }
        fixed = fixing | {
            "status": "SUCCESSFUL",
            "logs": [first_log, fixed_log],
            "updated_at": nuvo_time(done_ms),
        }
        report(fixed, done_ms, "succeeded", 2)
    return events
