"""Zoho DataPrep Job Summary response: the envelope, the run and its stages (pydantic v2).

Only what the product cannot do without is required: ``pipelinerun.id``,
``pipelinerun.execution_status`` and a pipeline id (found on the run's ``pipeline``, else on
one of its audits). ``execution_status`` is a plain integer so that a value the documentation
does not list reaches the status table and is dead-lettered as ``unmapped_status``. A
``response_status`` of failure is an API error report, not a run: it is rejected as
``provider_api_error`` before the run is required at all.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Final, Protocol, Self

from pydantic import AliasChoices, Field, field_validator, model_validator

from pipestatus.domain.observation import MAX_ATTEMPT
from pipestatus.errors import ProviderApiError
from pipestatus.providers.base import ProviderModel, check_id, json_in_string
from pipestatus.providers.timestamps import EpochMillis, FlexibleTimestamp
from pipestatus.providers.zoho_objects import (
    STAGE_STATUS_ENUM,
    Code,
    Count,
    DatasetAudit,
    DatasetExportAudit,
    DatasourceAudit,
    ExportMetric,
    ObjectRef,
    Pipeline,
    RawDatasetAudit,
    User,
    ZohoId,
    documented,
)

#: ``pipelinerun.execution_status`` values the documentation lists, with their labels.
RUN_EXECUTION_STATUSES: Final = {
    2: "Created",
    0: "Running",
    1: "Success",
    -1: "Failure",
    -2: "Stopped",
    -3: "System killed",
}
_RUN_TYPES: Final = (
    "Type of run: 0 manual, 1 schedule, 2 reload, 3 backfill, 4 sectional, 5 webhook, "
    "6 Zoho Flow, 8 manual with data refresh from source (other values are accepted)."
)
_CLIENT_META = json_in_string('{"top":235,"left":80,"version":1}')
_MAX_API_MESSAGES: Final = 5


class ClientMeta(ProviderModel):
    """``client_meta``, decoded: where the stage sits in the pipeline builder."""

    top: float | None = documented("Vertical position.")
    left: float | None = documented("Horizontal position.")
    version: int | None = documented("Layout version.")


class PipelineTask(ProviderModel):
    """The stage definition a task instance is based on."""

    id: ZohoId | None = documented("Unique ID of the pipeline stage.")
    name: str | None = documented("Stage name, e.g. 'public.contactnew'.")
    type: int | None = documented(
        "Stage type: 5 extract (import), 7 raw parse, 10 transform, 15 stages extract, "
        "20 load (export).",
        json_schema_extra={"enum": [5, 7, 10, 15, 20]},
    )
    pipeline: Pipeline | None = documented("The pipeline this stage belongs to.")
    created_by: User | None = documented("User who created the stage.")
    created_time: EpochMillis | None = documented("Creation time (epoch ms).")
    modified_by: User | None = documented("User who last modified the stage.")
    modified_time: EpochMillis | None = documented("Modification time (epoch ms).")
    status: int | None = documented("Whether the stage is active: 1.")
    latest_only: bool | None = documented("Whether only the latest run is considered.")
    depends_on_past: bool | None = documented("Runs only if its previous instance succeeded.")
    trigger_rule: str | None = documented("Execution rule, e.g. 'ALL_SUCCESS'.")
    client_meta: Annotated[ClientMeta, *_CLIENT_META] | None = documented(
        "UI placement in the pipeline builder (JSON in a string)."
    )
    weight: float | None = documented("Priority weight for scheduling.")


class RunReference(ProviderModel):
    """The run a stage or audit belongs to ("same structure as pipelinerun"), all optional."""

    id: ZohoId | None = documented("Pipeline run ID.")
    execution_status: int | None = documented("Pipeline run execution status.")
    created_time: EpochMillis | None = documented("Pipeline run start time (epoch ms).")
    modified_time: EpochMillis | None = documented("Pipeline run kill or stop time (epoch ms).")
    completion_time: EpochMillis | None = documented("Pipeline run end time (epoch ms).")


class _Erroneous(Protocol):
    @property
    def error_message(self) -> str | None: ...


class TaskInstance(ProviderModel):
    """One stage (import, parse, transform, export …) of the run."""

    id: ZohoId | None = documented("Unique ID of the pipeline stage instance.")
    pipelinerun: RunReference | None = documented("The run this stage instance belongs to.")
    pipelinetask: PipelineTask | None = documented("The stage definition of this instance.")
    type: int | None = documented(
        "Stage type when the stage definition is not nested (same codes as pipelinetask.type)."
    )
    execution_status: int | None = documented(
        "Execution status of the stage: 1 success, 0 running, -1 failure.",
        json_schema_extra=STAGE_STATUS_ENUM,
    )
    index: int | None = documented("Internal.")
    created_time: FlexibleTimestamp | None = documented("When the stage instance was created.")
    start_time: FlexibleTimestamp | None = documented("When execution started.")
    completion_time: FlexibleTimestamp | None = documented("When execution finished.")
    client_meta: Annotated[ClientMeta, *_CLIENT_META] | None = documented(
        "UI placement in the pipeline builder (JSON in a string)."
    )
    message: str | None = documented("System or log messages.")
    operator_id: str | None = documented("Operator that executed this stage.")
    retry_count: int | None = documented("Number of retries attempted.", ge=0)
    storage_used: Count | None = documented("Storage consumed in bytes, e.g. '172'.")
    row_count: Count | None = documented("Rows processed, e.g. '3'.")
    status: int | None = documented("Active status: 1 alive, 0 trash.")
    time_to_live: str | int | None = documented("Expiry time for this instance.")
    rawdatasetaudit: RawDatasetAudit | None = documented("Audit of the dataset this stage used.")
    datasourceaudit: DatasourceAudit | None = documented("Audit of the source of this stage.")
    datasetaudit: DatasetAudit | None = documented("Audit of the processed dataset.")
    datasetexportaudit: DatasetExportAudit | None = documented("Audit of this stage's export.")
    datasetexportauditmetric: ExportMetric | None = documented(
        "Output metrics when given on the stage rather than inside its export audit."
    )
    error_message: str | None = documented("Error details when the stage failed.")

    @property
    def stage_type(self) -> int | None:
        """The stage type from the nested definition, else from the instance itself."""
        if self.pipelinetask is not None and self.pipelinetask.type is not None:
            return self.pipelinetask.type
        return self.type

    @property
    def export_metric(self) -> ExportMetric | None:
        """This stage's export metrics, wherever the payload nests them."""
        audit = self.datasetexportaudit
        if audit is not None and audit.datasetexportauditmetric is not None:
            return audit.datasetexportauditmetric
        return self.datasetexportauditmetric

    @property
    def error_details(self) -> str | None:
        """The most specific error text this stage carries, if any."""
        state = self.datasetaudit.datasetstate if self.datasetaudit is not None else None
        sources: tuple[_Erroneous | None, ...] = (
            self,
            self.datasourceaudit,
            self.rawdatasetaudit,
            self.datasetaudit,
            state,
            self.datasetexportaudit,
        )
        texts = [source.error_message for source in sources if source is not None]
        texts.append(self.message)
        return next((text.strip() for text in texts if text and text.strip()), None)


class PipelineAudit(ProviderModel):
    id: ZohoId | None = documented("Unique ID of the pipeline audit.")
    is_committed: Code | None = documented("Published version of the pipeline: 1, draft: 0.")
    pipeline: Pipeline | None = documented("The audited pipeline.")
    status: int | None = documented("Pipeline audit alive status: 1 active, 0 inactive.")


class PipelineRunConfigAudit(ProviderModel):
    """The settings used for the run (run type, stop export on invalid data)."""

    id: ZohoId | None = documented("Unique ID of the pipeline run configuration audit.")
    status: int | None = documented("Status of the configuration audit: 1 alive, 0 trash.")
    skip_export_invalid_data: bool | None = documented(
        "Stop the export if data quality drops below 100%."
    )
    type: int | None = documented(_RUN_TYPES)
    pipeline: Pipeline | None = documented("Parent pipeline of this configuration audit.")
    pipelinefile: ObjectRef | None = documented("File downloaded from the job summary Output tab.")


class PipelineRunAudit(ProviderModel):
    """Settings, status, usage, pipeline and workspace of the run."""

    id: ZohoId | None = documented("Unique ID of the pipeline run audit.")
    created_time: FlexibleTimestamp | None = documented("When the run audit was created.")
    modtime: FlexibleTimestamp | None = documented("Last modified time of the run audit.")
    pipelinerun: RunReference | None = documented("The pipeline run.")
    status: int | None = documented("Pipeline run alive status: 1 active/completed, 0 inactive.")
    execution_policy: int | None = documented("Execution policy (internal).")
    execution_status: int | None = documented("Pipeline run execution status.")
    created_by: User | None = documented("User who created the run audit.")
    modified_by: User | None = documented("User who last modified the run audit.")
    completion_time: FlexibleTimestamp | None = documented("When the run audit completed.")
    storage_used: Count | None = documented("Storage consumed during this run in bytes.")
    row_count: Count | None = documented("Number of rows processed in this run.")
    pipeline: Pipeline | None = documented("The pipeline of the run.")


_PIPELINE_ID_PLACES: Final = (
    "pipelinerun.pipeline.id, pipelineaudit.pipeline.id, "
    "pipelinerunconfigaudit.pipeline.id or pipelinerunaudit.pipeline.id"
)


class _LinksPipeline(Protocol):
    @property
    def pipeline(self) -> Pipeline | None: ...


class PipelineRun(ProviderModel):
    """One execution of a pipeline (a "job")."""

    id: ZohoId = Field(description="Pipeline run ID.")
    execution_status: int = Field(
        description="2 created, 0 running, 1 success, -1 failure, -2 stopped, -3 system killed.",
        json_schema_extra={"enum": list(RUN_EXECUTION_STATUSES)},
    )
    type: int | None = documented(_RUN_TYPES)
    created_time: EpochMillis | None = documented("Pipeline run start time.")
    modified_time: EpochMillis | None = documented("Pipeline run modified time (kill or stop).")
    completion_time: EpochMillis | None = documented("Pipeline run completion (end) time.")
    data_interval_start_time: EpochMillis | None = documented("Data interval start time.")
    data_interval_end_time: EpochMillis | None = documented("Data interval end time.")
    rerun_count: int | None = documented(
        "Number of times re-run (documented as 'Re-run count'; key rerun_count or re_run_count).",
        ge=0,
        le=MAX_ATTEMPT - 1,  # the attempt, 1 + rerun_count, is an ``integer`` column
        validation_alias=AliasChoices("rerun_count", "re_run_count"),
    )
    profile_output: bool | None = documented("Internal usage key for output profiling.")
    skip_export_invalid_data: bool | None = documented(
        "Stop the export if data quality drops below 100%."
    )
    status: int | None = documented("Pipeline run alive status: 1 alive, 0 trash.")
    storage_used: Count | None = documented("Total storage used in bytes.")
    row_count: Count | None = documented("Total number of rows processed.")
    pipelineaudit: PipelineAudit | None = documented("Audit of the pipeline version that ran.")
    pipelinerunconfigaudit: PipelineRunConfigAudit | None = documented("Settings of the run.")
    created_by: User | None = documented("User who created the run.")
    modified_by: User | None = documented("User who last modified the run.")
    pipelinetaskinstancemappers: dict[str, list[ZohoId]] | None = documented(
        "Child task instance id to the ids of its parent task instances."
    )
    pipelinetaskinstances: tuple[TaskInstance, ...] = Field(
        default=(), description="The stages of the run (import, transform, export …)."
    )
    pipelinerunaudit: PipelineRunAudit | None = documented("Audit of the run.")
    pipeline: Pipeline | None = documented("The pipeline that was executed.")

    @field_validator("id")
    @classmethod
    def _id_keys_a_run(cls, value: str) -> str:
        return check_id(value, what="pipelinerun.id")

    @model_validator(mode="after")
    def _pipeline_is_known(self) -> Self:
        found = self.find_pipeline_id()
        if found is None:
            raise ValueError(f"no pipeline id: expected one of {_PIPELINE_ID_PLACES}")
        check_id(found, what="pipeline id")
        return self

    def find_pipeline_id(self) -> str | None:
        """The run's pipeline id, from the run itself first, then from its audits."""
        audits: tuple[_LinksPipeline | None, ...] = (
            self.pipelineaudit,
            self.pipelinerunconfigaudit,
            self.pipelinerunaudit,
        )
        pipelines = [self.pipeline, *(audit.pipeline for audit in audits if audit is not None)]
        return next((p.id for p in pipelines if p is not None and p.id is not None), None)

    @property
    def pipeline_id(self) -> str:
        found = self.find_pipeline_id()
        if found is None:  # pragma: no cover - rejected during validation
            raise ValueError(f"no pipeline id: expected one of {_PIPELINE_ID_PLACES}")
        return found


class ResponseMessage(ProviderModel):
    type: str | None = documented("Message type, e.g. 'success' or 'error'.")
    status_code: int | None = documented("2000 success; 4000 and above error.")


class ResponseStatus(ProviderModel):
    """The result of the API call (not of the run)."""

    status: str = Field(description="Response type: 'success' or 'failure'.")
    status_code: int = Field(description="2000 success; 4000 and above error.")
    messages: tuple[ResponseMessage, ...] = Field(
        default=(), description="Messages about the API call."
    )


class JobSummaryResponse(ProviderModel):
    """The Job Summary API response describing one pipeline run."""

    pipelinerun: PipelineRun = Field(description="The pipeline run.")
    response_status: ResponseStatus = Field(description="Result of the API call.")

    @model_validator(mode="before")
    @classmethod
    def _api_errors_are_not_runs(cls, data: Any) -> Any:
        if isinstance(data, Mapping):
            detail = api_error_detail(data.get("response_status"))
            if detail is not None:
                raise ProviderApiError(detail, path="response_status")
        return data


def api_error_detail(response_status: Any) -> str | None:
    """What an API error report says; ``None`` when ``response_status`` is no failure."""
    if not isinstance(response_status, Mapping):
        return None
    status = response_status.get("status")
    code = _whole_number(response_status.get("status_code"))
    failed = (isinstance(status, str) and status.strip().lower() == "failure") or (
        code is not None and code >= 4000
    )
    if not failed:
        return None
    messages = response_status.get("messages")
    described = [
        _describe_message(message)
        for message in (messages if isinstance(messages, list) else [])[:_MAX_API_MESSAGES]
        if isinstance(message, Mapping)
    ]
    said = "; ".join(described) or "no messages"
    return f"Zoho DataPrep API call failed (status {status!r}, status_code {code}): {said}"


def _describe_message(message: Mapping[str, Any]) -> str:
    head = " ".join(
        str(message[key]) for key in ("type", "status_code") if message.get(key) is not None
    )
    text = next(
        (
            str(message[key])[:200]
            for key in ("message", "description", "error")
            if message.get(key)
        ),
        "",
    )
    return f"{head}: {text}" if head and text else head or text or "message without text"


def _whole_number(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return None
