"""Settings of the `stratus` command, read once from the environment (documented in the README)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_DATA_DIR = ".stratus"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080


@dataclass(frozen=True, kw_only=True)
class Settings:
    data_dir: Path  # absolute, so children agree whatever their working directory
    host: str
    port: int
    nats_url: str | None  # None: the supervisor runs its own nats-server
    admin_key: str | None
    ready_timeout: float
    bootstrap_plan: str = "free"  # the bootstrap account's plan when it is created
    replicas: int = 1  # processes of each service and of the gateway (`--replicas`, STRATUS_REPLICAS)

    @property
    def gateway_url(self) -> str:
        # A wildcard bind address is not somewhere a client can connect to; loopback is.
        host = "127.0.0.1" if self.host in {"", "0.0.0.0", "::"} else self.host
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"


def from_env(env: os._Environ[str] | dict[str, str] | None = None) -> Settings:
    env = os.environ if env is None else env
    return Settings(
        data_dir=data_dir(env),
        host=env.get("STRATUS_HOST", DEFAULT_HOST),
        port=int(env.get("STRATUS_PORT", str(DEFAULT_PORT))),
        nats_url=env.get("NATS_URL") or None,
        admin_key=env.get("STRATUS_ADMIN_KEY") or None,
        ready_timeout=float(env.get("STRATUS_READY_TIMEOUT", "60")),
        bootstrap_plan=env.get("STRATUS_BOOTSTRAP_PLAN") or "free",
        replicas=int(env.get("STRATUS_REPLICAS") or "1"),
    )


def data_dir(env: os._Environ[str] | dict[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    return Path(env.get("STRATUS_DATA_DIR") or DEFAULT_DATA_DIR).resolve()
