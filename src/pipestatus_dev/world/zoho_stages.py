"""The task instances of a Zoho DataPrep Job Summary: extract, parse, transform and load.

Each stage carries the audit objects the real API nests in it (data source, dataset and
export audits), so a Job Summary is as large and as deep as one from a real poller.
"""

from __future__ import annotations

import json
from typing import Any, Final

from pipestatus_dev.world.zoho_pipelines import ZohoRun

_ZOHO_STAGES: Final = (
    (5, "ZSOrchExtractOperator"),
    (7, "ZSOrchParseRawDataOperator"),
    (10, "ZSOrchTransformOperator"),
    (20, "ZSOrchLoadOperator"),
)
_ZOHO_FAILURES: Final = {
    5: "Connection refused by crm-postgres:5432",
    7: "Unable to parse row 1042: unterminated quoted field",
    10: "Rule 7 (split column) failed: column 'full_name' not found",
    20: "Box API returned 403: insufficient folder permissions",
}


def zoho_stage(
    run: ZohoRun, index: int, status: int, start_ms: int, end_ms: int | None
) -> dict[str, Any]:
    p = run.pipeline
    stage_type, operator = _ZOHO_STAGES[index]
    stage_id = str(run.serial + 131 + 4 * index)
    name = p.source if stage_type in (5, 7) else p.dataset
    meta = json.dumps({"top": 235, "left": 80 + 200 * index, "version": 1}, separators=(",", ":"))
    stage: dict[str, Any] = {
        "id": stage_id,
        "pipelinerun": {"id": run.id},
        "pipelinetask": {
            "id": str(p.serial_base + 20 + index),
            "name": name,
            "type": stage_type,
            "pipeline": {"id": p.id},
            "created_by": {"id": p.user["id"]},
            "created_time": 1762000000000 + index,
            "modified_by": {"id": p.user["id"]},
            "modified_time": 1766100000000 + index,
            "status": 1,
            "latest_only": False,
            "depends_on_past": False,
            "trigger_rule": "ALL_SUCCESS",
            "client_meta": meta,
            "weight": 1,
        },
        "execution_status": status,
        "index": index,
        "created_time": str(start_ms - 1000),
        "client_meta": meta,
        "message": None,
        "operator_id": f"com.zoho.dataprep.operator.{operator}",
        "retry_count": 0,
        "status": 1,
        "time_to_live": str(run.created_ms + 2_592_000_000),
        "start_time": str(start_ms),
    }
    if end_ms is not None:
        stage["completion_time"] = str(end_ms)
        stage["storage_used"] = str(172 if stage_type != 20 else run.rows * 231)
        stage["row_count"] = str(run.rows)
    failure = _ZOHO_FAILURES[stage_type] if status == -1 else None
    if stage_type == 5:
        stage["rawdatasetaudit"] = _raw_dataset_audit(run, start_ms)
        stage["datasourceaudit"] = _data_source_audit(run, status, end_ms, failure)
    elif stage_type == 7 and failure:
        stage["message"] = failure
    elif stage_type == 10:
        stage["datasetaudit"] = _dataset_audit(run, status, start_ms, end_ms, failure)
    elif stage_type == 20:
        stage["datasetexportaudit"] = _export_audit(run, status, start_ms, failure)
    return stage


def _raw_dataset_audit(run: ZohoRun, start_ms: int) -> dict[str, Any]:
    """The extract stage's raw dataset audit."""
    p = run.pipeline
    serial = run.serial
    return {
        "id": str(serial + 232),
        "audit_time": str(start_ms + 1000),
        "is_referred": False,
        "datasourceaudit": {"id": str(serial + 332)},
        "rawdatasetconfigaudit": {"id": str(serial + 432)},
        "rawdataset": {
            "id": str(p.serial_base + 2006),
            "name": p.source,
            "replication_frequency": None,
            "created_by": {"id": p.user["id"]},
            "created_time": 1762000600000,
            "modtime": None,
            "status": 1,
            "pipelinedatasource": {
                "id": str(p.serial_base + 998),
                "name": "crm-postgres",
                "replication_type": "FULL",
                "status": 1,
                "project": {"id": p.project["id"]},
                "connection": {"id": str(p.serial_base - 117002)},
            },
        },
        "status": 1,
        "error_message": None,
    }


def _data_source_audit(
    run: ZohoRun, status: int, end_ms: int | None, failure: str | None
) -> dict[str, Any]:
    """The extract stage's data source audit, with its stream progress."""
    p = run.pipeline
    serial = run.serial
    progress = 100 if status == 1 else 40
    state = {1: "SUCCESS", 0: "RUNNING", -1: "FAILED"}[status]
    streams = {
        str(p.serial_base + 3000): {
            "size": 0,
            "catalog_stream_id": str(p.serial_base + 3000),
            "execution_status": state,
            "progress": progress,
        }
    }
    audit: dict[str, Any] = {
        "id": str(serial + 332),
        "execution_status": status,
        "streams_info": json.dumps(streams, separators=(",", ":")),
        "killed_batch_catalog_ids": None,
        "status": 1,
        "type": 1,
        "pipelinedatasource": {
            "id": str(p.serial_base + 998),
            "name": "crm-postgres",
            "replication_type": "FULL",
            "created_by": {"id": p.user["id"]},
            "project": {"id": p.project["id"]},
            "connection": {"id": str(p.serial_base - 117002)},
        },
        "error_message": failure,
        "logs": [],
    }
    if end_ms is not None:
        audit["completed_time"] = str(end_ms - 1000)
    return audit


def _dataset_audit(
    run: ZohoRun, status: int, start_ms: int, end_ms: int | None, failure: str | None
) -> dict[str, Any]:
    """The transform stage's dataset audit (rule set and dataset state)."""
    p = run.pipeline
    serial = run.serial
    return {
        "id": str(serial + 534),
        "created_time": str(start_ms + 500),
        "created_by": {"id": p.user["id"]},
        "audit_time": str(start_ms + 500),
        "execution_status": status,
        "description": None,
        "dataset": {
            "id": str(p.serial_base + 4000),
            "name": p.dataset,
            "description": None,
            "status": 1,
            "is_ready": True,
            "is_pii_marked": True,
            "project": {"id": p.project["id"]},
            "selected_sample": {"id": str(p.serial_base + 5000)},
        },
        "exportcatalogaudit": None,
        "rulesetaudit": {
            "id": str(serial + 634),
            "audit_time": str(start_ms + 500),
            "is_committed": "1",
            "ruleset": {"id": str(p.serial_base + 6000)},
            "status": 1,
            "rules_count": 12,
        },
        "modtime": str(end_ms or start_ms),
        "status": 1,
        "type": 1,
        "error_message": failure,
        "datasetstate": {
            "id": str(serial + 734),
            "datasetaudit": {"id": str(serial + 534)},
            "execution_status": status,
            "is_error": status == -1,
            "error_message": failure,
        },
        "rules_count": 12,
    }


def _export_audit(run: ZohoRun, status: int, start_ms: int, failure: str | None) -> dict[str, Any]:
    """The load stage's export audit, with row and quality metrics once it succeeded."""
    p = run.pipeline
    serial = run.serial
    export: dict[str, Any] = {
        "id": str(serial + 835),
        "dsauditstatefile": {"id": str(serial + 845)},
        "datasinkaudit": {"id": str(serial + 855)},
        "datasetexport": {
            "id": str(p.serial_base + 7000),
            "dataset": {"id": str(p.serial_base + 4000), "name": p.dataset},
            "datasink": {
                "id": str(p.serial_base + 8000),
                "status": 1,
                "project": {"id": p.project["id"]},
                "connection": {
                    "id": str(p.serial_base - 117000),
                    "name": f"{p.user['email_id']} - {p.sink}",
                    "connection_json": json.dumps(
                        {
                            "servicename": p.sink,
                            "accountId": f"{p.sink}-44120",
                            "display_email": p.user["email_id"],
                            "display_name": p.user["username"],
                            "is_authorised": True,
                        },
                        separators=(",", ":"),
                    ),
                    "type": "0",
                    "created_by": {"id": p.user["id"]},
                    "owner": {"id": p.user["id"]},
                    "created_time": "1762000500000",
                    "modified_by": {"id": p.user["id"]},
                    "modtime": "1762000500000",
                    "status": 1,
                    "category": None,
                    "base_type": p.sink,
                    "sub_type": None,
                },
            },
            "created_by": {"id": p.user["id"]},
            "created_time": "1762000700000",
            "modified_by": None,
            "modtime": None,
            "status": 1,
            "datasetexportaudit": {"id": str(serial + 835)},
        },
        "datasetexportconfigaudit": {"id": str(serial + 865)},
        "created_time": str(start_ms + 200),
        "error_message": failure,
        "info": '{"currentRetry":0}',
        "execution_status": status,
        "progress": 100 if status == 1 else 60,
        "status": 1,
        "type": 1,
    }
    if status == 1:
        valid = max(run.rows * 14 - run.invalid - 151, 0)
        quality = {"valid": valid, "invalid": run.invalid, "missing": 151}
        export["datasetexportauditmetric"] = {
            "id": str(serial + 935),
            "row_count": str(run.rows),
            "col_count": "14",
            "size": str(run.rows * 231),
            "status": 1,
            "datasetexportaudit": {"id": str(serial + 835)},
            "quality": json.dumps(quality, separators=(",", ":")),
        }

    return export
