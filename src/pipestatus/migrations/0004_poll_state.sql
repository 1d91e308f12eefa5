-- What `pipestatus poll` has published, per source and run (README, "Pollers"). A row is
-- written only after the broker acknowledged the record it describes, so a crash between
-- produce and checkpoint republishes (the worker dedupes by the event id).

CREATE TABLE poll_runs (
    source        text        NOT NULL,
    run_id        text        NOT NULL,
    -- hash of the provider's status-relevant fields last published
    fingerprint   text        NOT NULL,
    -- what the by-id endpoint needs besides the run id (Codat: the company id), if anything
    locator       text,
    -- when the poller first saw the run ended; NULL while live (a re-run reopens it)
    ended_seen_at timestamptz,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source, run_id)
);
