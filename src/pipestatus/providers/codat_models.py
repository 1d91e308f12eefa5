"""Codat payload shapes: the pull operation (seed ``003_…``), the ``read.completed`` webhooks
and the two legacy rule webhooks that report data syncs (providers.md §3.3-3.6).

Ids are UUIDs per Codat's OpenAPI files; they are kept in canonical lower-case form so a
legacy ``datasetId`` and a pull operation ``id`` name the same run however they were cased.
Fields pipestatus does not read are typed loosely: a bad ``tags`` value must not dead-letter
a run status.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Final, Literal

from pydantic import AfterValidator, Field, StrictBool, StrictInt, WithJsonSchema

from pipestatus.providers.base import ProviderModel, check_id
from pipestatus.providers.timestamps import Rfc3339

#: The PullOperation ``status`` enum, in the order of Codat's schema.
PULL_OPERATION_STATUSES: Final = (
    "Initial",
    "Queued",
    "Fetching",
    "MapQueued",
    "Mapping",
    "Complete",
    "FetchError",
    "MapError",
    "InternalError",
    "ProcessingQueued",
    "Processing",
    "ProcessingError",
    "ValidationQueued",
    "Validating",
    "ValidationError",
    "AuthError",
    "Cancelled",
    "NotSupported",
    "RateLimitError",
    "PermissionsError",
    "PrerequisiteNotMet",
)

READ_EVENT_TYPES: Final = frozenset({"read.completed", "read.completed.initial"})
SYNC_ERROR_RULE: Final = "Data Sync Status Changed To Error"
SYNC_COMPLETED_RULE: Final = "Data sync completed"

_UUID: Final = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.I)


def _canonical_uuid(value: str) -> str:
    if not _UUID.fullmatch(value):
        raise ValueError(f"{value[:40]!r} is not a UUID")
    return value.lower()


def _usable_data_type(value: str) -> str:
    return check_id(value, what="dataType")


Uuid = Annotated[
    str, AfterValidator(_canonical_uuid), WithJsonSchema({"type": "string", "format": "uuid"})
]
#: Part of the pipeline id ``companyId/connectionId/dataType``; bounded so that id fits 256.
DataType = Annotated[str, Field(max_length=128), AfterValidator(_usable_data_type)]
#: Plain text, so a status Codat adds later is ``unmapped_status``, not a validation error.
PullStatus = Annotated[str, Field(json_schema_extra={"enum": list(PULL_OPERATION_STATUSES)})]


class PullOperation(ProviderModel):
    """``GET /companies/{companyId}/data/history/{datasetId}`` (formerly "dataset")."""

    id: Uuid
    company_id: Uuid = Field(alias="companyId")
    connection_id: Uuid = Field(alias="connectionId")
    data_type: DataType = Field(alias="dataType")
    status: PullStatus
    status_description: str | None = Field(default=None, alias="statusDescription")
    error_message: str | None = Field(default=None, alias="errorMessage")
    requested: Rfc3339
    completed: Rfc3339 | None = None
    progress: StrictInt
    is_completed: StrictBool = Field(alias="isCompleted")
    is_errored: StrictBool = Field(alias="isErrored")


class PullOperationPage(ProviderModel):
    """``GET /companies/{companyId}/data/history``: one page of pull operations.

    The paging fields are not status-relevant, so they are typed loosely (``_links`` holds
    ``self``/``current``/``next``/``previous`` hrefs); ``results`` are full pull operations.
    """

    results: list[PullOperation]
    page_number: int = Field(alias="pageNumber")
    page_size: int = Field(alias="pageSize")
    total_results: int = Field(alias="totalResults")
    links: dict[str, Any] | None = Field(default=None, alias="_links")


class IssueLinks(ProviderModel):
    logs: str | None = None
    portal: str | None = None
    read_more: str | None = Field(default=None, alias="readMore")


class Issue(ProviderModel):
    """A non-fatal finding on a read data type (documented type: ``warning.validation``)."""

    type: str
    message: str | None = None
    links: IssueLinks | None = None


class ReadDataType(ProviderModel):
    """One data type read for the company: one run of the pipeline company/connection/type."""

    connection_id: Uuid = Field(alias="connectionId")
    data_type: DataType = Field(alias="dataType")
    status: PullStatus
    records_modified: StrictBool | None = Field(default=None, alias="recordsModified")
    issues: list[Issue] | None = None


class CompanyLinks(ProviderModel):
    portal: str | None = None


class ReferenceCompany(ProviderModel):
    id: Uuid
    name: str | None = None
    description: str | None = None
    links: CompanyLinks | None = None
    tags: dict[str, Any] | None = None


class ReadPayload(ProviderModel):
    reference_company: ReferenceCompany = Field(alias="referenceCompany")
    modified_from_date: Rfc3339 | None = Field(default=None, alias="modifiedFromDate")
    data_types: list[ReadDataType] = Field(alias="dataTypes")


class ReadCompleted(ProviderModel):
    """The ``read.completed`` / ``read.completed.initial`` webhook (Svix-delivered)."""

    id: Uuid
    event_type: Literal["read.completed", "read.completed.initial"] = Field(alias="eventType")
    generated_date: Rfc3339 = Field(alias="generatedDate")
    payload: ReadPayload


class LegacyEnvelope(ProviderModel):
    """Fields every legacy rule webhook carries (deprecated 2025-01-10; no timestamp field)."""

    client_id: Uuid | None = Field(default=None, alias="ClientId")
    client_name: str | None = Field(default=None, alias="ClientName")
    company_id: Uuid = Field(alias="CompanyId")
    data_connection_id: Uuid = Field(alias="DataConnectionId")
    rule_id: Uuid | None = Field(default=None, alias="RuleId")
    alert_id: Uuid = Field(alias="AlertId")
    message: str | None = Field(default=None, alias="Message")


class SyncErrorData(ProviderModel):
    data_type: DataType = Field(alias="dataType")
    dataset_status: PullStatus = Field(alias="datasetStatus")
    dataset_id: Uuid = Field(alias="datasetId")


class LegacySyncError(LegacyEnvelope):
    """Legacy ``Data Sync Status Changed To Error``: a pull operation entered an error status."""

    rule_type: Literal["Data Sync Status Changed To Error"] = Field(alias="RuleType")
    data: SyncErrorData = Field(alias="Data")


class SyncCompletedData(ProviderModel):
    #: Nullable in Codat's schema; a null one cannot key a pipeline (rejected when mapping).
    data_type: DataType | None = Field(default=None, alias="dataType")
    dataset_id: Uuid = Field(alias="datasetId")


class LegacySyncCompleted(LegacyEnvelope):
    """Legacy ``Data sync completed``: no status field; the rule type is the report."""

    rule_type: Literal["Data sync completed"] = Field(alias="RuleType")
    data: SyncCompletedData = Field(alias="Data")
