-- Indexes that let `pipestatus prune` find old rows without scanning whole tables
-- (docs/runbook.md, "Retention"). Forward-only: later changes go in new files.

CREATE INDEX run_transitions_recorded_idx ON run_transitions (recorded_at);
CREATE INDEX dead_letters_replayed_idx ON dead_letters (replayed_at)
    WHERE replayed_at IS NOT NULL;
CREATE INDEX alert_outbox_done_idx ON alert_outbox ((COALESCE(delivered_at, gave_up_at)))
    WHERE delivered_at IS NOT NULL OR gave_up_at IS NOT NULL;
