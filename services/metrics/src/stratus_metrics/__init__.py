"""The metrics service: request telemetry, custom events and build records in ClickHouse."""
