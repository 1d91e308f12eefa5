"""The one error tree of pipestatus. Each class says whether retrying can help.

```
PipestatusError
├── ConfigError                     bad settings; exit code 2
├── EventError                      retriable=False: dead-letter the record, move on
│   ├── NotJsonError                not_json
│   ├── PayloadTooLargeError        payload_too_large
│   ├── InvalidPayloadError         invalid_payload (field path kept)
│   ├── UnknownPayloadKindError     unknown_payload_kind
│   ├── AmbiguousPayloadKindError   ambiguous_payload_kind
│   ├── UnmappedStatusError         unmapped_status (a provider added a status)
│   ├── ProviderApiError            provider_api_error (an API error report, not a run)
│   ├── UnknownProviderError        unknown_provider (topic or CloudEvents type unmapped)
│   ├── InvalidCloudEventError      invalid_cloudevent
│   └── UnstorableRecordError       unstorable (PostgreSQL refused a value: SQLSTATE 22)
├── BrokerRefusedError              retriable=False: Kafka refuses for good; exit code 3
└── InfrastructureError             retriable=True: roll back, back off, retry
    ├── StoreUnavailableError       PostgreSQL unreachable or failed transiently
    ├── BrokerError                 Kafka unreachable or failed transiently
    ├── AlertDeliveryError          an alert receiver failed
    └── ProviderPollError           a provider API failed a poll (reason label)
```
"""

from __future__ import annotations

from typing import ClassVar


class PipestatusError(Exception):
    """Root of every error pipestatus raises on purpose."""

    retriable: ClassVar[bool] = False


class ConfigError(PipestatusError):
    """The configuration is invalid; the message lists what to fix."""


class EventError(PipestatusError):
    """A record cannot be applied as it is; it goes to the dead letters with ``reason``."""

    reason: ClassVar[str] = "invalid_payload"

    def __init__(self, detail: str, *, path: str = "", stage: str = "validate") -> None:
        self.detail = detail
        self.path = path
        self.stage = stage
        super().__init__(str(self))

    def __str__(self) -> str:
        where = f" at {self.path}" if self.path else ""
        return f"{self.reason}{where}: {self.detail}"


class NotJsonError(EventError):
    reason = "not_json"

    def __init__(self, detail: str, *, path: str = "", stage: str = "decode") -> None:
        super().__init__(detail, path=path, stage=stage)


class PayloadTooLargeError(EventError):
    reason = "payload_too_large"

    def __init__(self, detail: str, *, path: str = "", stage: str = "decode") -> None:
        super().__init__(detail, path=path, stage=stage)


class InvalidPayloadError(EventError):
    reason = "invalid_payload"


class UnknownPayloadKindError(EventError):
    reason = "unknown_payload_kind"

    def __init__(self, detail: str, *, path: str = "", stage: str = "identify") -> None:
        super().__init__(detail, path=path, stage=stage)


class AmbiguousPayloadKindError(UnknownPayloadKindError):
    reason = "ambiguous_payload_kind"


class UnmappedStatusError(EventError):
    reason = "unmapped_status"

    def __init__(self, detail: str, *, path: str = "", stage: str = "map") -> None:
        super().__init__(detail, path=path, stage=stage)


class ProviderApiError(EventError):
    reason = "provider_api_error"


class UnknownProviderError(EventError):
    reason = "unknown_provider"

    def __init__(self, detail: str, *, path: str = "", stage: str = "identify") -> None:
        super().__init__(detail, path=path, stage=stage)


class InvalidCloudEventError(EventError):
    reason = "invalid_cloudevent"

    def __init__(self, detail: str, *, path: str = "", stage: str = "decode") -> None:
        super().__init__(detail, path=path, stage=stage)


class UnstorableRecordError(EventError):
    """PostgreSQL refused a value of the batch (a data exception, SQLSTATE class 22).

    Raised at the database edge without knowing which record holds the value; the
    service bisects the batch to find it and dead-letters it with the database's message.
    """

    reason = "unstorable"

    def __init__(self, detail: str, *, path: str = "", stage: str = "store") -> None:
        super().__init__(detail, path=path, stage=stage)


class BrokerRefusedError(PipestatusError):
    """Kafka answered with an error no retry can fix (authorization, authentication, config).

    aiokafka says so itself (``retriable = False``); retrying would spin forever, so the
    worker stops and the operator is told what to check.
    """

    hint = (
        "Check the Kafka credentials (PIPESTATUS_KAFKA__SASL_*), the ACLs of the group and "
        "topics, and that the configured topics exist (`pipestatus config` shows the settings)."
    )


class InfrastructureError(PipestatusError):
    """A dependency failed; the batch is rolled back and retried after a backoff."""

    retriable = True


class StoreUnavailableError(InfrastructureError):
    """PostgreSQL is unreachable or failed in a way a retry can fix."""


class BrokerError(InfrastructureError):
    """Kafka is unreachable or failed in a way a retry can fix."""


class AlertDeliveryError(InfrastructureError):
    """An alert receiver refused or failed a delivery."""

    def __init__(self, receiver: str, detail: str) -> None:
        self.receiver = receiver
        self.detail = detail
        super().__init__(f"receiver {receiver}: {detail}")


class ProviderPollError(InfrastructureError):
    """A provider's API failed a poll: the round is retried after a backoff.

    ``reason`` is a bounded label (``rate_limited``, ``auth``, ``http_503``, ``timeout``,
    ``unreachable``, ``bad_response``); ``retry_after_s`` is the provider's own
    ``Retry-After`` when it sent one.
    """

    def __init__(self, source: str, reason: str, detail: str, retry_after_s: float | None = None):
        self.source = source
        self.reason = reason
        self.detail = detail
        self.retry_after_s = retry_after_s
        super().__init__(f"poll source {source}: {reason}: {detail}")
