"""Zoho DataPrep Job Summary: the objects a run and its stages link to (users, pipeline, audits).

Field names and types follow the Job Summary API documentation (seeds ``000_…``/``001_…``).
The documentation describes these objects loosely and does not confirm how task-level objects
nest in the real JSON, so every field here is optional: a present field must have its
documented type, an absent one is no error. The run itself is in ``zoho_models``.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Final

from pydantic import BeforeValidator, Field, WithJsonSchema

from pipestatus.providers.base import ProviderModel, RunId, json_in_string
from pipestatus.providers.timestamps import EpochMillis, FlexibleTimestamp

_WHOLE_NUMBER: Final = re.compile(r"\d{1,19}")


def documented(description: str, **kwargs: Any) -> Any:
    """An optional field carrying its documentation (it ends up in the JSON Schema)."""
    return Field(default=None, description=description, **kwargs)


def _count_from_number_or_string(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("expected a whole number, not a boolean")
    if isinstance(value, str):
        if not _WHOLE_NUMBER.fullmatch(value.strip()):
            raise ValueError(f"expected a whole number as a string, got {value[:40]!r}")
        return int(value)
    return value


def _number_to_text(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


#: Ids are documented as strings; integer ids are accepted and become decimal strings.
ZohoId = RunId

#: A count or size documented as a number, or as "String (number as string)": either is accepted.
Count = Annotated[
    int,
    BeforeValidator(_count_from_number_or_string),
    Field(ge=0),
    WithJsonSchema(
        {"anyOf": [{"type": "integer", "minimum": 0}, {"type": "string", "pattern": r"^\d+$"}]}
    ),
]

#: A code documented as a string whose values are digits (``is_committed``, ``zuid`` …).
Code = Annotated[
    str,
    BeforeValidator(_number_to_text),
    WithJsonSchema({"anyOf": [{"type": "string"}, {"type": "integer"}]}),
]

_CONNECTION_JSON = json_in_string('{"servicename":"box","accountId":"…","is_authorised":false}')
_STREAMS_INFO = json_in_string(
    '{"14057000007554785":{"size":0,"catalog_stream_id":"14057000007554785",'
    '"execution_status":"SUCCESS","progress":100}}'
)
_EXPORT_INFO = json_in_string('{"currentRetry":0}')
_QUALITY = json_in_string('{"valid":57,"invalid":0,"missing":151}')

#: Stage, audit and export ``execution_status`` values the documentation lists.
STAGE_EXECUTION_STATUSES: Final = {1: "Success", 0: "Running", -1: "Failure"}
STAGE_STATUS_ENUM: Final = {"enum": list(STAGE_EXECUTION_STATUSES)}


class ObjectRef(ProviderModel):
    """A linked object the documentation gives only as an id (``ruleset``, ``pipelinefile`` …)."""

    id: ZohoId | None = documented("Unique ID of the linked object.")


class Profile(ProviderModel):
    id: ZohoId | None = documented("Unique ID of the user profile.")
    name: str | None = documented("The user's role, e.g. 'Org Admin'.")
    is_default: bool | None = documented("Whether this is the default profile for the user.")
    zuid: Code | None = documented("Zoho User ID mapped to this profile.")
    permission: str | None = documented("Permission code for the profile, e.g. '7FFFFFFF'.")


class User(ProviderModel):
    """``created_by`` / ``modified_by``: the same structure wherever a user appears."""

    id: ZohoId | None = documented("Unique ID of the user.")
    zuid: Code | None = documented("Zoho User ID.")
    username: str | None = documented("Display name of the user.")
    email_id: str | None = documented("Email address of the user.")
    invited_by: str | None = documented("User ID of the inviter, null when none.")
    invited_time: EpochMillis | None = documented("When the user was invited (epoch ms).")
    profile: Profile | None = documented("Profile details of the user.")
    status: int | None = documented("Status of the user: 1 active, 0 inactive.")
    zsoid: Code | None = documented("Zoho Organization ID associated with the user.")
    profilelink: str | None = documented("URL to the user's Zoho profile.")
    has_more_rows: bool | list[bool] | None = documented("Internal flag for pagination.")


class Project(ProviderModel):
    """The workspace containing the pipeline."""

    id: ZohoId | None = documented("Unique id of the workspace.")
    name: str | None = documented("Name of the workspace, e.g. 'RestAPI test'.")
    description: str | None = documented("Not in use.")
    created_by: User | None = documented("User who created the workspace.")
    created_time: EpochMillis | None = documented("When the workspace was created (epoch ms).")
    modified_by: User | None = documented("User who last modified the workspace.")
    modtime: EpochMillis | None = documented("When the workspace was last modified (epoch ms).")
    status: int | None = documented("Status of the workspace: 1 active, 0 inactive.")
    migration_status: int | None = documented(
        "0 created in DataPrep 1.0, 1 migrated from 1.0 to 2.0, 3 created in DataPrep 2.0."
    )
    is_locked: bool | None = documented("No longer in use.")


class Pipeline(ProviderModel):
    """The pipeline that was executed in the run."""

    id: ZohoId | None = documented("Unique id of the pipeline.")
    name: str | None = documented("Name of the pipeline, e.g. 'My pipeline-1'.")
    description: str | None = documented("Description of the pipeline.")
    created_by: User | None = documented("User who created the pipeline.")
    created_time: EpochMillis | None = documented("When the pipeline was created (epoch ms).")
    modified_by: User | None = documented("User who last modified the pipeline.")
    modtime: EpochMillis | None = documented("When the pipeline was last modified (epoch ms).")
    status: int | None = documented("Status of the pipeline: 1 alive, 0 trash.")
    is_ready: bool | None = documented("Whether the pipeline is ready to run.")
    depends_on_past: bool | None = documented("Whether the pipeline run depends on past runs.")
    project: Project | None = documented("The workspace this pipeline belongs to.")


class ConnectionSettings(ProviderModel):
    """``connection.connection_json``, decoded."""

    servicename: str | None = documented("Connected service, e.g. 'box'.")
    account_id: str | None = documented("Account at the service.", alias="accountId")
    display_email: str | None = documented("Email shown for the connection.")
    display_name: str | None = documented("Name shown for the connection.")
    is_authorised: bool | None = documented("Whether the connection is authorised.")


class Connection(ProviderModel):
    id: ZohoId | None = documented("Connection identifier.")
    name: str | None = documented("Display name, e.g. 'teststream@gmail.com - box'.")
    connection_json: Annotated[ConnectionSettings, *_CONNECTION_JSON] | None = documented(
        "Connection-specific info (JSON in a string)."
    )
    type: Code | None = documented(
        "Connection type code: 0 cloud storage, 1 local file, 2 URL, 3 local database, 4 FTP, "
        "5 cloud database, 10 Zoho CRM, 11 Zoho Analytics, 15 Amazon S3, 19 local FTP, "
        "20 Databridge local file, 21 Zoho Creator, 22 Zoho Directory."
    )
    created_by: User | None = documented("User who created the connection.")
    owner: User | None = documented("Owner of the connection.")
    created_time: FlexibleTimestamp | None = documented("When the connection was created.")
    modified_by: User | None = documented("Last user who modified the connection.")
    modtime: FlexibleTimestamp | None = documented("Last modified time.")
    status: int | None = documented("Status of the connection: 1 active.")
    category: str | None = documented("Category of the connection.")
    base_type: str | None = documented("Base service type, e.g. 'box'.")
    sub_type: str | None = documented("Subtype of the connection, if any.")


class PipelineDatasource(ProviderModel):
    """The source connection a dataset is fetched from."""

    id: ZohoId | None = documented("Unique ID of the datasource.")
    name: str | None = documented("Datasource name or identifier.")
    replication_type: str | None = documented("Replication strategy used.")
    status: int | None = documented("Status of the datasource: 1 alive, 0 trash.")
    project: Project | None = documented("Workspace that owns this datasource.")
    connection: Connection | None = documented("Connection used to access the datasource.")
    created_by: User | None = documented("User who created the datasource.")


class RawDataset(ProviderModel):
    id: ZohoId | None = documented("Unique ID of the dataset.")
    name: str | None = documented("Dataset name, e.g. 'public.contactnew'.")
    replication_frequency: str | None = documented("How often it replicates.")
    created_by: User | None = documented("User who imported the dataset.")
    created_time: EpochMillis | None = documented("When the dataset was imported (epoch ms).")
    modtime: FlexibleTimestamp | None = documented("Last modified time.")
    status: int | None = documented("Status of the dataset.")
    pipelinedatasource: PipelineDatasource | None = documented("The datasource of this dataset.")


class StreamInfo(ProviderModel):
    """One entry of ``datasourceaudit.streams_info``, keyed by catalog stream id."""

    size: Count | None = documented("Size imported from the stream.")
    catalog_stream_id: ZohoId | None = documented("Catalog stream id.")
    execution_status: str | None = documented("Stream import status, e.g. 'SUCCESS'.")
    progress: float | None = documented("Progress percentage.")


class DatasourceAudit(ProviderModel):
    """Details about the source of an imported dataset."""

    id: ZohoId | None = documented("Unique ID of this datasource audit.")
    execution_status: int | None = documented(
        "1 success, 0 running, -1 failure.", json_schema_extra=STAGE_STATUS_ENUM
    )
    streams_info: Annotated[dict[str, StreamInfo], *_STREAMS_INFO] | None = documented(
        "Import notes per catalog stream (JSON in a string)."
    )
    killed_batch_catalog_ids: str | None = documented("Batch catalogs terminated during the run.")
    completed_time: FlexibleTimestamp | None = documented("Audit completion time.")
    status: int | None = documented("Status of the audit: 1 active.")
    type: int | None = documented("Type of audit: 1 datasource.")
    pipelinedatasource: PipelineDatasource | None = documented("The datasource used.")
    error_message: str | None = documented("Error details if execution failed.")
    logs: list[Any] | None = documented("Internal notes.")


class RawDatasetAudit(ProviderModel):
    """Audit of the dataset imported by a stage."""

    id: ZohoId | None = documented("Unique id for the dataset audit.")
    audit_time: FlexibleTimestamp | None = documented("When the dataset import was audited.")
    is_referred: bool | None = documented("Whether the dataset was reused from an earlier import.")
    datasourceaudit: DatasourceAudit | None = documented("Datasource audit of the source.")
    rawdatasetconfigaudit: ObjectRef | None = documented("Dataset config audit.")
    rawdataset: RawDataset | None = documented("The dataset being audited.")
    status: int | None = documented("Audit status.")
    error_message: str | None = documented("Error message.")


class Dataset(ProviderModel):
    id: ZohoId | None = documented("Unique dataset ID.")
    name: str | None = documented("Name of the dataset, e.g. 'contact'.")
    description: str | None = documented("Optional description of the dataset.")
    status: int | None = documented("Status of the dataset: 1 alive, 0 trash.")
    is_ready: bool | None = documented("Whether the dataset is ready for use.")
    is_pii_marked: bool | None = documented("Whether the dataset is flagged as containing PII.")
    project: Project | None = documented("Workspace this dataset belongs to.")
    selected_sample: ObjectRef | None = documented("Sample selected for a quick preview.")


class RulesetAudit(ProviderModel):
    id: ZohoId | None = documented("Unique id of this ruleset audit.")
    audit_time: FlexibleTimestamp | None = documented("When the ruleset audit was executed.")
    is_committed: Code | None = documented("Whether the ruleset has been committed: 1 committed.")
    ruleset: ObjectRef | None = documented("The applied ruleset.")
    status: int | None = documented("Status of the ruleset audit.")
    rules_count: Count | None = documented("Number of rules applied in this audit.")


class DatasetState(ProviderModel):
    """Valid, invalid and missing data details of a dataset after its audit."""

    id: ZohoId | None = documented("Unique id for this dataset state.")
    datasetaudit: ObjectRef | None = documented("Links back to the dataset audit.")
    execution_status: int | None = documented(
        "1 success, 0 running, -1 failure.", json_schema_extra=STAGE_STATUS_ENUM
    )
    is_error: bool | None = documented("Whether the state contains an error.")
    error_message: str | None = documented("Error details if is_error is true.")


class DatasetAudit(ProviderModel):
    """The processed dataset before export."""

    id: ZohoId | None = documented("Unique id for this dataset audit.")
    created_time: FlexibleTimestamp | None = documented("When the dataset audit was created.")
    created_by: User | None = documented("User who triggered the audit.")
    audit_time: FlexibleTimestamp | None = documented("When the dataset audit started.")
    completion_time: FlexibleTimestamp | None = documented("When the dataset audit finished.")
    execution_status: int | None = documented(
        "1 success, 0 running, -1 failure.", json_schema_extra=STAGE_STATUS_ENUM
    )
    description: str | None = documented("Optional description.")
    dataset: Dataset | None = documented("Dataset linked to this audit.")
    exportcatalogaudit: ObjectRef | None = documented("Target matching.")
    rulesetaudit: RulesetAudit | None = documented("The applied ruleset.")
    modtime: FlexibleTimestamp | None = documented("Last modified time for this audit.")
    status: int | None = documented("Status of the audit: 1 alive, 0 trash.")
    type: int | None = documented("Internal.")
    error_message: str | None = documented("Error details if the audit failed.")
    datasetstate: DatasetState | None = documented("State of the dataset after the audit.")
    rules_count: Count | None = documented("Number of rules applied in this dataset audit.")


class QualityCounts(ProviderModel):
    """``datasetexportauditmetric.quality``, decoded: cell counts of the exported data."""

    valid: Count = Field(description="Valid values.")
    invalid: Count = Field(description="Invalid values.")
    missing: Count = Field(description="Missing values.")


class ExportInfo(ProviderModel):
    """``datasetexportaudit.info``, decoded."""

    current_retry: int | None = documented("Current export retry.", alias="currentRetry")


class ExportMetric(ProviderModel):
    """``datasetexportauditmetric``: the output metrics of one export."""

    id: ZohoId | None = documented("Id of this metrics record.")
    row_count: Count | None = documented("Number of rows exported.")
    col_count: Count | None = documented("Number of columns exported.")
    size: Count | None = documented("Data size in bytes.")
    status: int | None = documented("Status of the metrics record.")
    datasetexportaudit: ObjectRef | None = documented("Links back to the export audit.")
    quality: Annotated[QualityCounts, *_QUALITY] | None = documented(
        "Quality of the exported dataset (JSON in a string)."
    )


class Datasink(ProviderModel):
    """The destination the dataset is exported to."""

    id: ZohoId | None = documented("Unique id of the datasink.")
    status: int | None = documented("Status of the datasink: 1 active.")
    project: Project | None = documented("Workspace this datasink belongs to.")
    connection: Connection | None = documented("Connection used for the export.")


class DatasetExport(ProviderModel):
    id: ZohoId | None = documented("Unique id of the dataset export.")
    dataset: Dataset | None = documented("Dataset being exported.")
    datasink: Datasink | None = documented("Where the dataset is exported.")
    created_by: User | None = documented("User who created the export.")
    created_time: FlexibleTimestamp | None = documented("When the export was created.")
    modified_by: User | None = documented("Last user who modified the export.")
    modtime: FlexibleTimestamp | None = documented("Last modified time.")
    status: int | None = documented("Status of the export.")
    datasetexportaudit: ObjectRef | None = documented("Nested audit of this export.")


class DatasetExportAudit(ProviderModel):
    """The dataset exported to the destination."""

    id: ZohoId | None = documented("Unique id of the export audit.")
    dsauditstatefile: ObjectRef | None = documented("Dataset state file used in this export.")
    datasinkaudit: ObjectRef | None = documented("The datasink audit record.")
    datasetexport: DatasetExport | None = documented("Export configuration and dataset.")
    datasetexportconfigaudit: ObjectRef | None = documented("Export configuration audit.")
    created_time: FlexibleTimestamp | None = documented("When this export audit was created.")
    error_message: str | None = documented("Error details if the export failed.")
    info: Annotated[ExportInfo, *_EXPORT_INFO] | None = documented(
        "Extra info about the export (JSON in a string)."
    )
    execution_status: int | None = documented(
        "1 success, 0 running, -1 failure.", json_schema_extra=STAGE_STATUS_ENUM
    )
    progress: float | None = documented("Progress percentage, e.g. 100.")
    status: int | None = documented("Status of the audit record.")
    type: int | None = documented("Internal.")
    datasetexportauditmetric: ExportMetric | None = documented("Output metrics of this export.")
