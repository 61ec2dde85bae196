-- Custom events (`POST /v1/metrics/events`, fed by `tel.events`): a named value with labels.
-- `id` (mev_…) is unique per event; partitions and ordering as for requests.
CREATE TABLE IF NOT EXISTS events (
    ts DateTime64(3, 'UTC') CODEC(DoubleDelta, LZ4),
    account LowCardinality(String),
    mode LowCardinality(String),
    name LowCardinality(String),
    value Float64,
    labels Map(String, String),
    id String
) ENGINE = ReplacingMergeTree
PARTITION BY (mode, toYYYYMMDD(ts))
ORDER BY (account, name, ts, id);
