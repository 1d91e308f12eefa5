-- Runs, their append-only transitions, processed event identities, dead letters and
-- consumed offsets (docs/architecture.md). Forward-only: later changes go in new files.

CREATE TABLE runs (
    provider        text        NOT NULL,
    run_id          text        NOT NULL,
    pipeline_id     text        NOT NULL,
    attempt         integer     NOT NULL,
    state           text        NOT NULL,
    phase           text,
    phase_rank      integer     NOT NULL DEFAULT 0,
    provider_status text,
    occurred_at     timestamptz,
    error_category  text,
    error_message   text,
    retryable       boolean,
    warnings        jsonb       NOT NULL DEFAULT '[]',
    counters        jsonb       NOT NULL DEFAULT '{}',
    kind            text        NOT NULL,
    event_id        text        NOT NULL,
    started_at      timestamptz,
    ended_at        timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    -- when the visible state last changed: the stuck-run sweep looks at this
    progressed_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (provider, run_id)
);
CREATE INDEX runs_pipeline_idx ON runs (provider, pipeline_id, updated_at DESC);
CREATE INDEX runs_state_idx ON runs (state, updated_at DESC);
CREATE INDEX runs_open_idx ON runs (progressed_at) WHERE state IN ('queued', 'running');

CREATE TABLE run_transitions (
    id               bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    provider         text        NOT NULL,
    run_id           text        NOT NULL,
    pipeline_id      text        NOT NULL,
    from_state       text,
    to_state         text        NOT NULL,
    from_phase       text,
    to_phase         text,
    from_attempt     integer,
    attempt          integer     NOT NULL,
    provider_status  text,
    error_category   text,
    error_message    text,
    retryable        boolean,
    event_id         text        NOT NULL,
    occurred_at      timestamptz,
    recorded_at      timestamptz NOT NULL DEFAULT now(),
    source_topic     text,
    source_partition integer,
    source_offset    bigint,
    -- one event moves one run at most once
    UNIQUE (provider, run_id, event_id)
);
CREATE INDEX run_transitions_run_idx ON run_transitions (provider, run_id, id);

CREATE TABLE processed_events (
    event_id         text        PRIMARY KEY,
    provider         text        NOT NULL,
    source_topic     text,
    source_partition integer,
    source_offset    bigint,
    first_seen_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX processed_events_seen_idx ON processed_events (first_seen_at);

CREATE TABLE dead_letters (
    id               bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    provider         text,
    source_topic     text        NOT NULL,
    source_partition integer     NOT NULL,
    source_offset    bigint      NOT NULL,
    record_key       bytea,
    raw_value        bytea,
    value_size       integer     NOT NULL,
    value_sha256     text        NOT NULL,
    value_truncated  boolean     NOT NULL DEFAULT false,
    headers          jsonb       NOT NULL DEFAULT '[]',
    stage            text        NOT NULL,
    reason           text        NOT NULL,
    field_path       text        NOT NULL DEFAULT '',
    message          text        NOT NULL,
    first_seen_at    timestamptz NOT NULL DEFAULT now(),
    replayed_at      timestamptz,
    replay_result    text,
    UNIQUE (source_topic, source_partition, source_offset)
);
CREATE INDEX dead_letters_reason_idx ON dead_letters (reason, first_seen_at DESC);
CREATE INDEX dead_letters_open_idx ON dead_letters (id) WHERE replayed_at IS NULL;

CREATE TABLE consumer_offsets (
    group_id    text        NOT NULL,
    topic       text        NOT NULL,
    partition   integer     NOT NULL,
    next_offset bigint      NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (group_id, topic, partition)
);
