"""Process configuration read from the environment (`STRATUS_*`, `NATS_URL`); documented in the README."""

from __future__ import annotations

import os
from pathlib import Path


def nats_url() -> str:
    return os.environ.get("NATS_URL", "nats://127.0.0.1:4222")


def data_dir() -> Path:
    return Path(os.environ.get("STRATUS_DATA_DIR", ".stratus")).resolve()


def request_timeout() -> float:
    return float(os.environ.get("STRATUS_REQUEST_TIMEOUT", "5"))


def relay_enabled() -> bool:
    """`STRATUS_RELAY_ENABLED=0` commits events without publishing them (used to test recovery)."""
    return os.environ.get("STRATUS_RELAY_ENABLED", "1").lower() not in {"0", "false", "no", "off"}


def stream_replicas() -> int:
    """Copies JetStream keeps of every stream and KV bucket Stratus creates (`STRATUS_STREAM_REPLICAS`):
    1 on one server, 3 on a production cluster. Applied when a stream or bucket is created."""
    value = int(os.environ.get("STRATUS_STREAM_REPLICAS", "1"))
    if not 1 <= value <= 5:
        raise ValueError(f"STRATUS_STREAM_REPLICAS must be 1 to 5 (JetStream's limit), got {value}")
    return value
