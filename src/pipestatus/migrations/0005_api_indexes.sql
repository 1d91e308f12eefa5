-- Indexes of the read API's lists (`pipestatus serve`): each list is newest first and
-- keyset-paged on its sort key, so a page is an index range scan whatever its depth.
-- Forward-only: later changes go in new files.

-- GET /runs unfiltered, and by warnings/time: (updated_at, provider, run_id) descending
CREATE INDEX runs_recent_idx ON runs (updated_at DESC, provider DESC, run_id DESC);
-- GET /runs?provider=…
CREATE INDEX runs_provider_recent_idx ON runs (provider, updated_at DESC, run_id DESC);
-- GET /runs?state=… (runs_state_idx of 0001 lacks the tie-breakers)
CREATE INDEX runs_state_recent_idx ON runs (state, updated_at DESC, provider DESC, run_id DESC);
-- GET /runs?ended_since=…&ended_until=…: finished runs by end time
CREATE INDEX runs_ended_idx ON runs (ended_at DESC) WHERE ended_at IS NOT NULL;
-- GET /dead-letters?provider=…
CREATE INDEX dead_letters_provider_idx ON dead_letters (provider, id DESC);
