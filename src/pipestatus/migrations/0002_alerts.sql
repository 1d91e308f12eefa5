-- Alert state (one row per alert dedup key) and the transactional outbox of deliveries
-- (docs/architecture.md, alerts). Outbox rows are written in the same transaction as the transition or
-- sweep that caused them; the dispatcher delivers them with retries.

CREATE TABLE alert_state (
    dedup_key            text        PRIMARY KEY,
    rule                 text        NOT NULL,
    provider             text        NOT NULL,
    pipeline_id          text        NOT NULL,
    run_id               text,
    status               text        NOT NULL CHECK (status IN ('firing', 'resolved')),
    consecutive_failures integer     NOT NULL DEFAULT 0,
    labels               jsonb       NOT NULL,
    annotations          jsonb       NOT NULL,
    started_at           timestamptz NOT NULL,
    updated_at           timestamptz NOT NULL DEFAULT now(),
    resolved_at          timestamptz,
    last_sent_at         timestamptz,
    -- provider times of the pipeline's latest success and failure seen, so a late,
    -- older report never fires or resolves against newer knowledge
    last_success_at      timestamptz,
    last_failure_at      timestamptz
);
CREATE INDEX alert_state_firing_idx ON alert_state (rule, updated_at) WHERE status = 'firing';

CREATE TABLE alert_outbox (
    id              bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    dedup_key       text        NOT NULL,
    receiver        text        NOT NULL,
    action          text        NOT NULL CHECK (action IN ('trigger', 'resolve')),
    payload         jsonb       NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    attempts        integer     NOT NULL DEFAULT 0,
    last_error      text,
    delivered_at    timestamptz,
    gave_up_at      timestamptz
);
CREATE INDEX alert_outbox_due_idx ON alert_outbox (next_attempt_at, id)
    WHERE delivered_at IS NULL AND gave_up_at IS NULL;
CREATE INDEX alert_outbox_key_idx ON alert_outbox (dedup_key, receiver, id);
