"""Run states, their coarse ranks, terminal precedence, and error categories."""

from __future__ import annotations

from enum import StrEnum
from typing import Final


class Provider(StrEnum):
    """The providers pipestatus understands."""

    #: Zoho DataPrep Job Summary responses.
    zoho_dataprep = "zoho_dataprep"
    #: Krenalis (formerly Meergo) pipeline runs.
    krenalis = "krenalis"
    #: Codat pull operations and read webhooks.
    codat = "codat"
    #: nuvo (Ingestro) pipeline executions.
    nuvo = "nuvo"


class RunState(StrEnum):
    """The common run state machine every provider status maps onto."""

    #: Accepted by the provider, not started yet.
    queued = "queued"
    #: Doing work (possibly in a provider-specific phase).
    running = "running"
    #: Ended well (possibly with warnings).
    succeeded = "succeeded"
    #: Ended badly.
    failed = "failed"
    #: Stopped by a person or an administrative action.
    cancelled = "cancelled"
    #: Ended without doing anything because there was nothing it could do.
    skipped = "skipped"


TERMINAL: Final = frozenset(
    {RunState.succeeded, RunState.failed, RunState.cancelled, RunState.skipped}
)

#: queued < running < terminal: the second element of the convergence order.
COARSE_RANK: Final[dict[RunState, int]] = {
    RunState.queued: 0,
    RunState.running: 1,
    RunState.succeeded: 2,
    RunState.failed: 2,
    RunState.cancelled: 2,
    RunState.skipped: 2,
}

#: failed > cancelled > succeeded > skipped: breaks ties between terminal observations.
TERMINAL_PRECEDENCE: Final[dict[RunState, int]] = {
    RunState.queued: 0,
    RunState.running: 0,
    RunState.skipped: 1,
    RunState.succeeded: 2,
    RunState.cancelled: 3,
    RunState.failed: 4,
}


class ErrorCategory(StrEnum):
    """Why a run failed, in provider-neutral words (set only on failed runs)."""

    #: The run could not read from its source.
    source = "source"
    #: The source was unreachable (usually transient).
    source_unavailable = "source_unavailable"
    #: The source had no data.
    source_empty = "source_empty"
    #: Raw input could not be parsed.
    parse = "parse"
    #: A transformation step failed.
    transform = "transform"
    #: Mapping onto the provider's model failed.
    mapping = "mapping"
    #: Post-fetch processing failed.
    processing = "processing"
    #: Validation of the data failed.
    validation = "validation"
    #: Writing to the destination failed.
    destination = "destination"
    #: The destination was unreachable (usually transient).
    destination_unavailable = "destination_unavailable"
    #: The destination refused the size of the output.
    destination_limit = "destination_limit"
    #: Writing the output file failed.
    write_failed = "write_failed"
    #: Too many erroneous values.
    quality_threshold = "quality_threshold"
    #: Credentials to a connected system expired or were revoked.
    auth = "auth"
    #: Missing permissions on a connected system.
    permission = "permission"
    #: Rate limited by a connected system.
    rate_limited = "rate_limited"
    #: A prerequisite (configuration, other data) was not met.
    prerequisite = "prerequisite"
    #: The provider killed the run (resource limits, restarts).
    killed = "killed"
    #: The provider's infrastructure failed under the run.
    infrastructure = "infrastructure"
    #: The provider reported an internal error.
    internal = "internal"
    #: The pipeline itself reported an error.
    pipeline_error = "pipeline_error"
    #: The provider gave no usable cause.
    unknown = "unknown"


def provider_named(name: str) -> Provider:
    """The provider called ``name``, in its own spelling or its topic's (``zoho-dataprep``)."""
    try:
        return Provider(name.strip().lower().replace("-", "_"))
    except ValueError:
        known = ", ".join(p.value for p in Provider)
        raise ValueError(f"unknown provider {name!r} (known: {known})") from None
