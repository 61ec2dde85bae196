"""Process configuration read from the environment (`STRATUS_*`, `NATS_URL`); documented in the README."""

from __future__ import annotations

import os
import re
from pathlib import Path

_REPLICA_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")  # usable in a file name and a consumer name


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


def replica_id() -> str | None:
    """This process's replica name (`STRATUS_REPLICA_ID`), for what a replica keeps as its own
    (the audit service's read models and durable consumer); None for the first or only one.
    `stratus up --replicas N` sets 2…N; a Kubernetes StatefulSet sets the pod's name."""
    value = os.environ.get("STRATUS_REPLICA_ID") or None
    if value is not None and not _REPLICA_ID.match(value):
        raise ValueError(f"STRATUS_REPLICA_ID must be 1 to 64 of A-Z a-z 0-9 _ -, got {value!r}")
    return value
