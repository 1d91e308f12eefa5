"""Configuration from the environment: ``PIPESTATUS_`` prefix, ``__`` between sections.

Built once, in the CLI, and passed down. Secrets are ``SecretStr`` so ``repr`` and the
``pipestatus config`` output never show them.
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from pipestatus.domain.states import Provider
from pipestatus.edge.signatures import signing_key
from pipestatus.errors import ConfigError

DEFAULT_TOPICS: dict[str, Provider] = {
    "runs.zoho-dataprep": Provider.zoho_dataprep,
    "runs.krenalis": Provider.krenalis,
    "runs.codat": Provider.codat,
    "runs.nuvo": Provider.nuvo,
}

DEFAULT_CLOUDEVENTS_TYPES: dict[str, Provider] = {
    "com.zoho.dataprep.": Provider.zoho_dataprep,
    "com.krenalis.": Provider.krenalis,
    "io.codat.": Provider.codat,
    "com.getnuvo.": Provider.nuvo,
}


class KafkaSettings(BaseModel):
    """Where events come from and how they are fetched."""

    bootstrap_servers: str = Field("127.0.0.1:9092", description="Kafka bootstrap servers")
    group_id: str = Field("pipestatus", description="consumer group of all workers")
    client_id: str = Field("pipestatus", description="Kafka client id")
    topics: dict[str, Provider] = Field(
        default_factory=lambda: dict(DEFAULT_TOPICS),
        description="JSON map topic → provider",
    )
    shared_topics: list[str] = Field(
        default_factory=list,
        description="JSON list of shared topics: provider named by CloudEvents type",
    )
    cloudevents_type_prefixes: dict[str, Provider] = Field(
        default_factory=lambda: dict(DEFAULT_CLOUDEVENTS_TYPES),
        description="JSON map CloudEvents `type` prefix → provider (wins over the topic)",
    )
    auto_offset_reset: Literal["earliest", "latest"] = Field(
        "earliest", description="where a group with no stored offsets starts"
    )
    max_batch_records: int = Field(2000, ge=1, description="records per batch at most")
    max_batch_bytes: int = Field(
        16 * 1024 * 1024, ge=1024, description="bytes fetched per batch at most"
    )
    max_batch_wait_ms: int = Field(200, ge=0, description="how long a fetch waits for records")
    fetch_max_wait_ms: int = Field(
        50,
        ge=1,
        description="how long the broker may hold a fetch request open while it has no records",
    )
    dead_letter_topic: str | None = Field(
        None, description="also mirror dead letters to this topic (Kafka Connect headers)"
    )
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None


class DatabaseSettings(BaseModel):
    """Where runs are stored."""

    url: SecretStr = Field(
        SecretStr("postgresql://127.0.0.1:5432/postgres"),
        description="PostgreSQL URL (secret: may carry a password)",
    )
    pool_max_size: int = Field(4, ge=1, description="connections per worker at most")
    connect_timeout_s: float = Field(10.0, gt=0, description="connect timeout")
    idle_in_transaction_timeout_s: float = Field(
        30.0,
        ge=0,
        description="a worker frozen inside a batch transaction (paused VM, SIGSTOP) loses it"
        " after this long, releasing the locks other workers wait on (0: never)",
    )


class WorkerSettings(BaseModel):
    """How the worker behaves."""

    max_payload_bytes: int = Field(
        1024 * 1024, ge=256, description="larger record values are dead-lettered unparsed"
    )
    shutdown_timeout_s: float = Field(20.0, gt=0, description="drain time after SIGTERM")
    retry_initial_s: float = Field(0.5, gt=0, description="first backoff after a DB/broker error")
    retry_max_s: float = Field(30.0, gt=0, description="longest backoff")
    idle_polls: int = Field(
        3, ge=1, description="`--until-idle`: empty fetches in a row, caught up, before exit"
    )


class ReceiverSettings(BaseModel):
    """One alert receiver."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,62}$", description="label value in metrics")
    type: Literal["alertmanager", "webhook", "pagerduty"]
    url: str = Field(description="Alertmanager base URL, webhook URL, or PagerDuty events URL")
    #: Standard Webhooks signing secret (``whsec_…``) for ``webhook`` receivers.
    secret: SecretStr | None = None
    #: PagerDuty integration (routing) key for ``pagerduty`` receivers.
    routing_key: SecretStr | None = None
    timeout_s: float = Field(5.0, gt=0)


class AlertSettings(BaseModel):
    """Alert rules and delivery."""

    receivers: list[ReceiverSettings] = Field(
        default_factory=list, description="JSON list of receivers (see README)"
    )
    stuck_after_s: dict[Provider, float] = Field(
        default_factory=lambda: {
            Provider.zoho_dataprep: 3600.0,
            Provider.krenalis: 3600.0,
            Provider.codat: 7200.0,
            Provider.nuvo: 3600.0,
        },
        description="per-provider seconds without progress before PipelineRunStuck",
    )
    stuck_overrides_s: dict[str, float] = Field(
        default_factory=dict,
        description='per-pipeline override, JSON map "provider/pipeline_id" → seconds',
    )
    quality_ratio: float = Field(
        0.05, ge=0, le=1, description="PipelineRunDataQuality: bad/total records above this"
    )
    sweep_interval_s: float = Field(30.0, gt=0, description="how often the stuck sweep runs")
    resend_interval_s: float = Field(
        60.0, gt=0, description="Alertmanager: firing alerts are re-sent this often"
    )
    retry_initial_s: float = Field(1.0, gt=0, description="first delivery retry delay")
    retry_max_s: float = Field(300.0, gt=0, description="longest delivery retry delay")
    give_up_after_s: float = Field(
        86400.0, gt=0, description="undelivered outbox rows older than this are given up"
    )


class HttpSettings(BaseModel):
    """The metrics and health endpoints."""

    host: str = Field("127.0.0.1", description="bind address of /metrics, /healthz, /readyz")
    port: int = Field(9108, ge=0, le=65535, description="port (0 picks a free one)")
    enabled: bool = Field(True, description="serve the endpoints")


class SourceSettings(BaseModel):
    """One sender of webhooks, served at ``POST /webhooks/{name}``."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,62}$", description="path segment, label")
    provider: Provider
    verify: Literal["standard-webhooks", "token", "none"] = Field(
        description="Standard Webhooks signatures, a shared token header, or nothing (explicit)"
    )
    #: ``whsec_…`` signing secrets (``standard-webhooks``; several while rotating) or
    #: accepted tokens (``token``).
    secrets: list[SecretStr] = Field(default_factory=list)
    token_header: str = Field("x-pipestatus-token", description="header holding the token")
    topic: str | None = Field(None, description="default: the provider's topic")

    @model_validator(mode="after")
    def _secrets_fit_the_scheme(self) -> SourceSettings:
        if self.verify != "none" and not self.secrets:
            raise ValueError(f"source {self.name!r}: verify={self.verify} needs secrets")
        if self.verify == "standard-webhooks":
            for secret in self.secrets:
                try:
                    signing_key(secret.get_secret_value())
                except ConfigError as exc:
                    raise ValueError(f"source {self.name!r}: {exc}") from None
        return self


class IngressSettings(BaseModel):
    """The webhook ingress (``pipestatus ingress``)."""

    host: str = Field("127.0.0.1", description="bind address (`0.0.0.0` in containers)")
    port: int = Field(8088, ge=0, le=65535, description="port (0 picks a free one)")
    max_body_bytes: int = Field(
        1024 * 1024, ge=256, description="larger requests get 413 before they are read whole"
    )
    tolerance_s: float = Field(
        300.0, gt=0, description="Standard Webhooks: accepted clock skew of webhook-timestamp"
    )
    produce_timeout_s: float = Field(
        10.0, gt=0, description="broker acknowledgement wait before answering 503"
    )
    retry_after_s: int = Field(30, ge=1, description="`Retry-After` of a 503")
    sources: list[SourceSettings] = Field(
        default_factory=list, description="JSON list of sources (see README)"
    )

    @model_validator(mode="after")
    def _names_are_unique(self) -> IngressSettings:
        names = [source.name for source in self.sources]
        if len(set(names)) != len(names):
            raise ValueError("source names must be unique")
        return self


class PollSourceSettings(BaseModel):
    """One provider API that ``pipestatus poll`` reads (README, "Pollers")."""

    name: str = Field(
        pattern=r"^[a-z0-9][a-z0-9_.-]{0,62}$", description="label, lock and state key"
    )
    provider: Literal[Provider.krenalis, Provider.nuvo, Provider.codat, Provider.zoho_dataprep] = (
        Field(description="which API the source speaks")
    )
    base_url: str = Field(
        description="API root, e.g. `https://krenalis.example.com` or "
        "`https://api-gateway.getnuvo.com/dp/api/v1`"
    )
    interval_s: float = Field(60.0, gt=0, description="seconds between two polls")
    topic: str | None = Field(None, description="default: the provider's topic")
    api_key: SecretStr | None = Field(
        None,
        description="Krenalis: the `api_…` key sent as `Authorization: Bearer`; Codat: the API"
        " key, sent base64-encoded as `Authorization: Basic` (secret)",
    )
    workspace: str | None = Field(
        None, description="Krenalis: the `Krenalis-Workspace` header (unset: key is scoped)"
    )
    license_key: SecretStr | None = Field(
        None, description="nuvo: the license key exchanged for an access token (secret)"
    )
    auth_identifier: str | None = Field(
        None, description="nuvo: `auth.identifier` of the token request (user or sub-org)"
    )
    auth_type: Literal["USER", "SUB_ORG"] = Field(
        "USER", description="nuvo: `auth.type` of the token request"
    )
    page_size: int = Field(
        100, ge=1, le=1000, description="nuvo: executions per page; Codat: `pageSize`"
    )
    max_pages: int = Field(
        20, ge=1, description="nuvo, Codat (per company and list): pages read per poll at most"
    )
    company_ids: list[str] = Field(
        default_factory=list, description="Codat: the companies polled (empty: every company)"
    )
    query: str | None = Field(
        None, description="Codat: the pull-operation `query`, e.g. `dataType=invoices`"
    )
    quota_reserve: int = Field(
        50, ge=0, description="Codat: stop a round when the daily quota left falls to this"
    )
    accounts_url: str | None = Field(
        None, description="Zoho: the data centre's accounts server, e.g. `https://accounts.zoho.eu`"
    )
    client_id: str | None = Field(None, description="Zoho: the OAuth client id")
    client_secret: SecretStr | None = Field(None, description="Zoho: the OAuth client secret")
    refresh_token: SecretStr | None = Field(
        None, description="Zoho: the OAuth refresh token (secret)"
    )
    job_url: str | None = Field(
        None,
        description="Zoho: URL template of one job's Job Summary, with `{job_id}`; Zoho publishes"
        " no path, copy it from its Postman collection",
    )
    jobs_url: str | None = Field(
        None,
        description="Zoho: URL template of a pipeline's job list, with `{pipeline_id}` (optional;"
        " needs `jobs_field`)",
    )
    jobs_field: str | None = Field(
        None, description="Zoho: the field of the job list response holding the jobs (each `id`)"
    )
    pipeline_ids: list[str] = Field(
        default_factory=list, description="Zoho: pipelines whose jobs `jobs_url` lists"
    )
    job_ids: list[str] = Field(default_factory=list, description="Zoho: jobs always watched")
    timeout_s: float = Field(10.0, gt=0, description="seconds one HTTP request may take")

    @model_validator(mode="after")
    def _credentials_fit_the_provider(self) -> PollSourceSettings:
        needed = {
            Provider.krenalis: ("api_key",),
            Provider.nuvo: ("license_key",),
            Provider.codat: ("api_key",),
            Provider.zoho_dataprep: (
                "accounts_url", "client_id", "client_secret", "refresh_token", "job_url",
            ),
        }  # fmt: skip
        missing = [name for name in needed[self.provider] if getattr(self, name) is None]
        if missing:
            raise ValueError(f"poll source {self.name!r} ({self.provider.value}) needs {missing}")
        if self.provider is Provider.zoho_dataprep:
            self._zoho_templates()
        return self

    def _zoho_templates(self) -> None:
        """Zoho's paths are the user's, never guessed: the templates must fit."""
        if "{job_id}" not in (self.job_url or ""):
            raise ValueError(f"poll source {self.name!r}: job_url needs {{job_id}}")
        if self.jobs_url is not None and (
            "{pipeline_id}" not in self.jobs_url or not self.jobs_field or not self.pipeline_ids
        ):
            raise ValueError(
                f"poll source {self.name!r}: jobs_url needs {{pipeline_id}}, jobs_field and"
                " pipeline_ids"
            )
        if self.jobs_url is None and not self.job_ids:
            raise ValueError(f"poll source {self.name!r}: watch job_ids or list them (jobs_url)")


class PollSettings(BaseModel):
    """The pollers (``pipestatus poll``)."""

    sources: list[PollSourceSettings] = Field(
        default_factory=list, description="JSON list of poll sources (see README)"
    )
    grace_s: float = Field(
        86400.0, ge=0, description="a run ended this long ago is no longer read by id"
    )
    retry_initial_s: float = Field(1.0, gt=0, description="first backoff after a failed poll")
    retry_max_s: float = Field(300.0, gt=0, description="longest backoff (jitter included)")
    produce_timeout_s: float = Field(10.0, gt=0, description="broker acknowledgement wait")

    @model_validator(mode="after")
    def _names_are_unique(self) -> PollSettings:
        names = [source.name for source in self.sources]
        if len(set(names)) != len(names):
            raise ValueError("poll source names must be unique")
        return self


class ApiSettings(BaseModel):
    """The read API and web page (``pipestatus serve``)."""

    host: str = Field("127.0.0.1", description="bind address (`0.0.0.0` in containers)")
    port: int = Field(8089, ge=0, le=65535, description="port (0 picks a free one)")
    write_token: SecretStr | None = Field(
        None, description="bearer token for `POST /api/v1/dead-letters/replay`; unset: replay off"
    )


class Settings(BaseSettings):
    """All of pipestatus's configuration."""

    model_config = SettingsConfigDict(
        env_prefix="PIPESTATUS_", env_nested_delimiter="__", frozen=True, extra="ignore"
    )

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    worker: WorkerSettings = Field(default_factory=WorkerSettings)
    alerts: AlertSettings = Field(default_factory=AlertSettings)
    http: HttpSettings = Field(default_factory=HttpSettings)
    ingress: IngressSettings = Field(default_factory=IngressSettings)
    poll: PollSettings = Field(default_factory=PollSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["text", "json"] = "text"


def load_settings(**overrides: object) -> Settings:
    """Reads the environment; a bad value becomes one readable ``ConfigError``."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]  # keyword overrides are validated
    except ValidationError as exc:
        lines = [
            f"  PIPESTATUS_{'__'.join(str(p).upper() for p in err['loc'])}: {err['msg']}"
            for err in exc.errors(include_url=False, include_input=False)
        ]
        raise ConfigError("invalid configuration:\n" + "\n".join(lines)) from exc


def redact_url(url: str) -> str:
    """The URL with any password replaced, safe to print."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[-1]}"))
