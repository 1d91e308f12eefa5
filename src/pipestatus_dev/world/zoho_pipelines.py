"""Zoho DataPrep's pipelines (with their project and users), and one run of a pipeline."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from pipestatus_dev.world.rand import Rand

_USERS: Final = (
    ("Asha Raman", "asha.raman"),
    ("Dana Ortiz", "dana.ortiz"),
    ("Lee Park", "lee.park"),
    ("Mo Haddad", "mo.haddad"),
)


@dataclass(slots=True)
class ZohoPipeline:
    id: str
    name: str
    project: dict[str, Any]
    user: dict[str, Any]
    user_full: dict[str, Any]
    pipeline: dict[str, Any]
    source: str
    dataset: str
    sink: str
    serial_base: int


@dataclass(slots=True)
class ZohoRun:
    pipeline: ZohoPipeline
    id: str
    serial: int
    created_ms: int
    rows: int
    invalid: int


def zoho_pipeline(rng: Rand, index: int) -> ZohoPipeline:
    base = 2650000000418005 + 1000 * index
    name, login = rng.pick(_USERS)
    zuid = str(80012345 + index)
    user_id = str(2650000000012003 + index)
    profile = {"id": "2650000000010011"}
    user = {
        "id": user_id,
        "zuid": zuid,
        "username": name,
        "email_id": f"{login}@example.com",
        "invited_time": "1761800000000",
        "profile": profile,
        "status": 1,
        "zsoid": "70054321",
        "profilelink": f"https://accounts.zoho.com/u/{zuid}",
    }
    user_full = {
        **user,
        "invited_by": None,
        "profile": {
            "id": "2650000000010011",
            "name": "Org Admin",
            "is_default": True,
            "zuid": None,
            "permission": "7FFFFFFF",
        },
        "has_more_rows": [False],
    }
    project = {
        "id": str(base - 1004),
        "name": rng.pick(("Sales sync", "Finance", "Marketing ops", "Warehouse")),
        "description": None,
        "status": 1,
        "migration_status": 3,
        "is_locked": False,
        "created_time": "1761900000000",
        "modtime": "1766000000000",
        "created_by": user,
        "modified_by": user_full,
    }
    source = rng.pick(("public.contactnew", "public.orders", "sales.deals", "crm.accounts"))
    dataset = source.split(".")[-1]
    sink = rng.pick(("box", "zoho_analytics", "s3", "bigquery"))
    pipeline_name = f"{dataset.title()} to {sink}"
    pipeline = {
        "id": str(base),
        "name": pipeline_name,
        "description": None,
        "created_by": user,
        "created_time": "1762000000000",
        "modified_by": user_full,
        "modtime": "1766100000000",
        "status": 1,
        "is_ready": True,
        "depends_on_past": False,
        "project": project,
    }
    return ZohoPipeline(
        str(base), pipeline_name, project, user, user_full, pipeline, source, dataset, sink, base
    )
