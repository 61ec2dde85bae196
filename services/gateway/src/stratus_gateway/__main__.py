"""Entry point: `python -m stratus_gateway` serves the HTTP API on $STRATUS_HOST:$STRATUS_PORT."""

import os

import uvicorn

from stratus_gateway.app import asgi
from stratus_telemetry import configure

if __name__ == "__main__":
    configure("gateway")
    uvicorn.run(
        asgi(),
        host=os.environ.get("STRATUS_HOST", "127.0.0.1"),
        port=int(os.environ.get("STRATUS_PORT", "8080")),
        loop="uvloop",
        http="httptools",
        access_log=False,
        server_header=False,
        # uvicorn would rewrite the client address from X-Forwarded-For for any local peer;
        # which proxies to believe is ours to decide (STRATUS_TRUSTED_PROXIES, clientip.py).
        proxy_headers=False,
        log_config=None,
        timeout_graceful_shutdown=10,
    )
