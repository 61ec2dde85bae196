-- Builds: one row per deployment whose build ended (fed by deployment events on `EVENTS`), at
-- the time it ended. `duration_s` runs from `build_started_at` to `build_finished_at`; `result`
-- is `succeeded`, `failed` or `canceled`.
CREATE TABLE IF NOT EXISTS builds (
    ts DateTime64(3, 'UTC') CODEC(DoubleDelta, LZ4),
    account LowCardinality(String),
    mode LowCardinality(String),
    project String,
    env String,
    deployment_id String,
    result LowCardinality(String),
    duration_s Float64
) ENGINE = ReplacingMergeTree
PARTITION BY (mode, toYYYYMMDD(ts))
ORDER BY (account, ts, deployment_id);
