"""A deterministic, realistic workload for ``pipestatus bench`` (issue #6).

``generate(events, seed)`` returns exactly ``events`` Kafka records, always the same ones
for the same arguments. The payloads are built like the fixtures in ``tests/fixtures``
(same shapes, same nesting, fresh ids and times), one *life* per run:

- **Zoho DataPrep** (Job Summary responses from a poller): created → running at
  extract / raw parse / transform / load (the poller misses some) → succeeded, failed at
  a stage, stopped or system-killed. A failed or killed run is often re-run: the same
  run id with ``rerun_count`` (or ``re_run_count``) 1, i.e. attempt 2.
- **Krenalis** (pipeline-run resources from a poller): running → ended (succeeded, with
  warnings when records failed, or one of the termination errors, or a pipeline error);
  6- or 7-step count arrays, string or integer ids.
- **Codat**: pull operations polled through their statuses (Initial/Queued → Fetching →
  … → Processing → Complete or an error), sometimes followed by the legacy
  ``Data sync completed`` / ``Data Sync Status Changed To Error`` rule webhook for the same
  dataset; and ``read.completed[.initial]`` webhooks that fan out per data type. Webhooks
  carry Standard Webhooks headers (``webhook-id`` …), as Svix delivers them.
- **nuvo**: an execution created (create response or bare ``PROCESSING``, sometimes as
  ``{"data": {...}}``) → ``SUCCESSFUL`` or ``FAILED``; a failed execution is often fixed,
  which appends a ``FIX`` log: attempt 2, processing again, then successful.

Lives start every 1.5 s of simulated time (2026-07-01 onwards) and overlap; records are
delivered in event-time order, keyed by run id (so one run stays in one partition). Then:

- ``REORDERED_SHARE`` (10 %) of the records are delivered late: two consecutive events
  of one life swap places, so the earlier one arrives after its successor;
- ``DUPLICATE_SHARE`` (15 %) of the records are exact re-deliveries (same key, value and
  headers) of an earlier valid record, 1 to ~2000 records after it;
- ``INVALID_SHARE`` (1 %) of the records are invalid, each of a kind the worker must
  dead-letter: truncated or empty values (``not_json``), broken fields
  (``invalid_payload``), statuses no table maps (``unmapped_status``), events that report
  no run (``unknown_payload_kind``) and Zoho API error reports (``provider_api_error``).

``Workload.expected`` is each run's final (state, attempt) by construction — what the
``runs`` table must show once everything is consumed, in any delivery order.

The modules: ``records`` (what the workload is), ``lives`` (which lives, in which mix),
one module per provider (``zoho``, ``krenalis``, ``codat``, ``nuvo``), ``invalid``,
``delivery`` (order, late deliveries, duplicates), and the helpers ``rand``, ``formats``,
``event``, ``world``.
"""

from __future__ import annotations

from typing import Final

from pipestatus_dev.world.delivery import deliver
from pipestatus_dev.world.lives import LIFE_WEIGHTS, build_lives, expected_runs
from pipestatus_dev.world.rand import Rand
from pipestatus_dev.world.records import BenchRecord, ExpectedRun, Role, Workload

__all__ = [
    "DUPLICATE_SHARE",
    "INVALID_SHARE",
    "LIFE_WEIGHTS",
    "REORDERED_SHARE",
    "BenchRecord",
    "ExpectedRun",
    "Role",
    "Workload",
    "generate",
]

DUPLICATE_SHARE: Final = 0.15
REORDERED_SHARE: Final = 0.10
INVALID_SHARE: Final = 0.01


def generate(events: int, seed: int = 1) -> Workload:
    """Exactly ``events`` records, deterministic for ``(events, seed)``."""
    if events < 1:
        raise ValueError("events must be at least 1")
    rng = Rand(seed)
    n_invalid = round(events * INVALID_SHARE)
    n_duplicate = round(events * DUPLICATE_SHARE)
    n_original = events - n_invalid - n_duplicate

    lives = build_lives(rng, n_original)
    records = deliver(
        rng,
        lives,
        late=round(events * REORDERED_SHARE),
        duplicates=n_duplicate,
        invalid=n_invalid,
    )
    return Workload(seed, records, expected_runs(lives), len(lives))
