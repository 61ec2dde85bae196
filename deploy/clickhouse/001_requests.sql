-- Request telemetry: one row per HTTP request the gateway answered (fed by `tel.requests`).
-- Partitioned by mode and day: the sandbox reset drops the `test` partitions and retention drops
-- whole days, neither deletes rows. (account, ts, request_id) orders a tenant's rows by time, and
-- a ReplacingMergeTree collapses a row inserted twice when parts merge (the consumer's
-- redelivery check keeps counts exact before that).
CREATE TABLE IF NOT EXISTS requests (
    ts DateTime64(3, 'UTC'),
    account String,
    mode LowCardinality(String),
    project String,
    env String,
    route LowCardinality(String),
    method LowCardinality(String),
    status UInt16,
    latency_ms Float64,
    key_id String,
    request_id String
) ENGINE = ReplacingMergeTree
PARTITION BY (mode, toYYYYMMDD(ts))
ORDER BY (account, ts, request_id);
