"""Zoho DataPrep lives: Job Summary responses from a poller, one attempt after another.

created → running at extract / raw parse / transform / load (the poller misses some) →
succeeded, failed at a stage, stopped or system-killed. A failed or killed run is often
re-run: the same run id with ``rerun_count`` (or ``re_run_count``) 1, i.e. attempt 2.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from pipestatus.domain.states import Provider
from pipestatus_dev.world.event import Event
from pipestatus_dev.world.rand import Rand
from pipestatus_dev.world.world import World
from pipestatus_dev.world.zoho_pipelines import ZohoRun
from pipestatus_dev.world.zoho_stages import zoho_stage

_ZOHO_STATE: Final = {
    2: "queued",
    0: "running",
    1: "succeeded",
    -1: "failed",
    -2: "cancelled",
    -3: "failed",
}


def _zoho_document(
    run: ZohoRun,
    status: int,
    stages: Sequence[int],
    now_ms: int,
    *,
    rerun: int,
    rerun_key: str,
) -> dict[str, Any]:
    """A Job Summary response; ``stages`` holds each started stage's execution status."""
    p = run.pipeline
    terminal = status not in (0, 2)
    stage_ms = 21_000
    instances = []
    for index, stage_status in enumerate(stages):
        start = run.created_ms + 1000 + index * stage_ms
        end = start + stage_ms - 2000 if stage_status != 0 else None
        instances.append(zoho_stage(run, index, stage_status, start, end))
    mappers = {
        stage["id"]: ([instances[i - 1]["id"]] if i else []) for i, stage in enumerate(instances)
    }
    pipelinerun: dict[str, Any] = {
        "id": run.id,
        "execution_status": status,
        "type": 5 if rerun == 0 else 2,
        "created_time": run.created_ms,
    }
    if status != 2:
        pipelinerun["modified_time"] = now_ms
    if terminal and status in (1, -1):
        pipelinerun["completion_time"] = now_ms
    pipelinerun |= {
        "data_interval_start_time": run.created_ms - 86_400_000,
        "data_interval_end_time": run.created_ms,
        "profile_output": False,
        "skip_export_invalid_data": False,
        "status": 1,
    }
    if status == 1:
        pipelinerun["storage_used"] = run.rows * 2318
        pipelinerun["row_count"] = run.rows
    if rerun:
        pipelinerun[rerun_key] = rerun
    config_audit = {
        "id": str(p.serial_base + 196),
        "status": 1,
        "skip_export_invalid_data": False,
        "type": 5,
        "pipeline": {"id": p.id},
        "pipelinefile": {"id": str(p.serial_base + 296)},
    }
    if status != 2:
        pipelinerun["pipelineaudit"] = {
            "id": str(p.serial_base + 96),
            "is_committed": "1",
            "pipeline": {"id": p.id},
            "status": 1,
        }
    pipelinerun["pipelinerunconfigaudit"] = config_audit
    pipelinerun["created_by"] = p.user
    pipelinerun["modified_by"] = p.user_full
    pipelinerun["pipelinetaskinstancemappers"] = mappers
    pipelinerun["pipelinetaskinstances"] = instances
    if status != 2:
        audit: dict[str, Any] = {
            "id": str(int(run.id) + 1),
            "created_time": str(run.created_ms),
            "modtime": str(now_ms),
            "pipelinerun": {"id": run.id},
            "status": 1,
            "execution_policy": 0,
            "execution_status": status,
            "created_by": {"id": p.user["id"]},
            "modified_by": {"id": p.user["id"]},
            "pipeline": {"id": p.id},
        }
        if terminal:
            audit["completion_time"] = str(now_ms)
        if status == 1:
            audit["storage_used"] = run.rows * 2318
            audit["row_count"] = str(run.rows)
        pipelinerun["pipelinerunaudit"] = audit
        pipelinerun["pipeline"] = p.pipeline
    return {
        "pipelinerun": pipelinerun,
        "response_status": {
            "status": "success",
            "status_code": 2000,
            "messages": [{"type": "success", "status_code": 2000}],
        },
    }


def _zoho_attempt(
    rng: Rand,
    run: ZohoRun,
    start_ms: int,
    *,
    rerun: int,
    outcome: int,
) -> tuple[list[Event], int]:
    """One attempt's reports; returns them and the time of the last."""
    rerun_key = rng.pick(("rerun_count", "re_run_count"))
    attempt = 1 + rerun
    run.created_ms = start_ms
    events: list[Event] = []
    poll = 21_000

    def report(status: int, stages: list[int], at: int) -> None:
        document = _zoho_document(run, status, stages, at, rerun=rerun, rerun_key=rerun_key)
        state = _ZOHO_STATE[status]
        events.append(
            Event(at, Provider.zoho_dataprep, run.id, document, ((run.id, state, attempt),))
        )

    if rerun == 0 and rng.chance(0.7):
        report(2, [], start_ms)
    # The stage the run ends in: the last one, where it fails, or where it is stopped.
    last = 3 if outcome == 1 else rng.r.randrange(4)
    for index in range(last + 1):
        if rng.chance(0.8):  # the poller misses some stages
            report(0, [1] * index + [0], start_ms + 2000 + index * poll)
    end = start_ms + 2000 + (last + 1) * poll
    if outcome == 1:
        stages = [1, 1, 1, 1]
    elif outcome == -1:
        stages = [1] * last + [-1]
    else:  # stopped or killed: the stages before the running one had completed
        stages = [1] * last
    report(outcome, stages, end)
    return events, end


def zoho_life(rng: Rand, world: World, start_ms: int) -> list[Event]:
    pipeline = rng.pick(world.zoho)
    serial = rng.next_serial()
    base = 2650000001230000 + serial * 1000
    run = ZohoRun(
        pipeline,
        str(base + 31),
        base,
        start_ms,
        rows=rng.r.randrange(50, 5000),
        invalid=rng.r.randrange(1, 40) if rng.chance(0.2) else 0,
    )
    outcome = rng.weighted(((1, 0.72), (-1, 0.15), (-2, 0.06), (-3, 0.07)))
    events, end = _zoho_attempt(rng, run, start_ms, rerun=0, outcome=outcome)
    if outcome in (-1, -3) and rng.chance(0.5):
        rerun_start = end + rng.r.randrange(60_000, 900_000)
        rerun_outcome = rng.weighted(((1, 0.85), (-1, 0.15)))
        more, _ = _zoho_attempt(rng, run, rerun_start, rerun=1, outcome=rerun_outcome)
        events.extend(more)
    return events
