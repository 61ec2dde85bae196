"""Entry point: `python -m stratus_gateway` serves the HTTP API on $STRATUS_HOST:$STRATUS_PORT.

The HTTP server is configuration: `STRATUS_HTTP_SERVER=uvicorn` (the default) or `granian`.
Both run in this one process, on one uvloop event loop, so that the supervisor's pid is the
process that serves (its SIGTERM drains it, and the CPU the bench reads from /proc is all of
it); both leave the client address alone (no `X-Forwarded-For` rewriting: `clientip.py`
decides) and run the app's lifespan (it connects to NATS there). `serve` is also what the
benchmark's bare baseline uses, so a baseline and the gateway never differ in server options.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
from collections.abc import Iterator, Mapping

if __name__ == "__main__":
    # A SIGTERM while the imports still run (a stop just after a start) is a clean stop too; the
    # server's own handler takes over once it serves.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))

from litestar.types import ASGIApp

SERVERS = ("uvicorn", "granian")
# docs/performance.md, "The HTTP server": uvicorn is the faster of the two on the routes that call a
# service (GET /v1/projects/{id}, POST /v1/projects), with a third of Granian's p99 there;
# Granian is faster only on routes that never leave the gateway.
DEFAULT_SERVER = "uvicorn"
DRAIN_SECONDS = 8  # after SIGTERM, for open requests; `stratus up` kills at 10 s, leaving 2 for the lifespan

log = logging.getLogger("stratus.gateway")


def server_from(env: Mapping[str, str]) -> str:
    """The configured server's name; ValueError for a name that is not one."""
    name = env.get("STRATUS_HTTP_SERVER", "").strip().lower() or DEFAULT_SERVER
    if name not in SERVERS:
        raise ValueError(f"STRATUS_HTTP_SERVER must be one of {', '.join(SERVERS)}, got {name!r}")
    return name


def serve(app: ASGIApp, host: str, port: int, server: str = DEFAULT_SERVER) -> None:
    """Serve `app` until SIGTERM or SIGINT, then drain and run the lifespan's shutdown."""
    if server == "uvicorn":
        _serve_uvicorn(app, host, port)
    else:
        _serve_granian(app, host, port)


def _serve_uvicorn(app: ASGIApp, host: str, port: int) -> None:
    import uvicorn

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            # uvicorn's own re-raises SIGTERM once it has shut down, so that the process dies
            # of it: before atexit, where the log writer writes what is still queued. Here the
            # signal only starts the shutdown, and the process then exits normally.
            previous = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
            try:
                yield
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)

    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        server_header=False,
        # uvicorn would rewrite the client address from X-Forwarded-For for any local peer;
        # which proxies to believe is ours to decide (STRATUS_TRUSTED_PROXIES, clientip.py).
        proxy_headers=False,
        log_config=None,
        timeout_graceful_shutdown=DRAIN_SECONDS,
    )
    server = Server(config)
    if os.environ.get("STRATUS_REUSE_PORT") == "1":
        # Replicas of the gateway on one port (`stratus up --replicas N`): each binds it with
        # SO_REUSEPORT and the kernel spreads new connections over them.
        server.run(sockets=[_shared_socket(host, port)])
    else:
        server.run()


def _shared_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    # Not listening yet: uvicorn listens once the lifespan has started. A replica that listened
    # first would be handed connections while it connects to NATS, and reset them all if its
    # start-up failed (a restart while the NATS cluster elects a leader).
    return sock


def _serve_granian(app: ASGIApp, host: str, port: int) -> None:
    import uvloop
    from granian.asgi import LifespanProtocol
    from granian.constants import HTTPModes, Interfaces
    from granian.log import LogLevels
    from granian.server.embed import Server

    # Granian's embedded server: its Rust I/O runtime on a thread of this process, the app on
    # our event loop. Its other servers run the app in a child process (multiprocessing), which
    # would hide the serving process from the supervisor and from the bench's CPU accounting.
    # Granian never reads X-Forwarded-For itself (its proxy wrappers are opt-in), so the client
    # address stays the peer's. Its own log lines go to our handlers at our level: an
    # incremental config that only lets its loggers propagate (a full one would close ours).
    server = Server(
        app,
        address=host,
        port=port,
        # The lifespan is run here rather than by Granian ("asginl": no lifespan), so that
        # shutdown runs after a bounded drain: Granian's own waits for every connection.
        interface=Interfaces.ASGINL,
        http=HTTPModes.http1,  # what uvicorn speaks; no HTTP/2 prior-knowledge sniffing
        websockets=False,
        backlog=2048,  # uvicorn's default
        log_access=False,
        log_level=LogLevels.notset,
        log_dictconfig={
            "version": 1,
            "incremental": True,
            "handlers": {},
            "formatters": {},
            "loggers": {"_granian": {"propagate": True}, "granian.access": {"propagate": True}},
        },
    )

    async def run() -> int:
        loop = asyncio.get_running_loop()
        lifespan = LifespanProtocol(app)
        await lifespan.startup()
        if lifespan.interrupt:
            log.error("the app did not start", exc_info=lifespan.exc)
            return 3  # uvicorn's exit code for a failed startup
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        serving = asyncio.create_task(server.serve())
        stopping = asyncio.create_task(stop.wait())
        await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if not serving.done():
            # Granian stops accepting and lets every open connection finish its request
            # (hyper's graceful shutdown); a client that holds one open longer is left behind.
            server.stop()
            _, late = await asyncio.wait({serving}, timeout=DRAIN_SECONDS)
            if late:
                log.warning("connections still open after the drain; stopping anyway")
        stopping.cancel()
        await lifespan.shutdown()
        crashed = serving.done() and not serving.cancelled() and serving.exception() is not None
        return 1 if crashed or server.interrupt_children else 0

    code = uvloop.run(run())
    if code:
        raise SystemExit(code)


def main() -> int:
    from stratus_gateway.app import asgi
    from stratus_telemetry import configure

    configure("gateway")
    try:
        server = server_from(os.environ)
    except ValueError as exc:
        log.error(str(exc))
        return 2
    if server == "granian" and os.environ.get("STRATUS_REUSE_PORT") == "1":
        log.error("gateway replicas share their port on uvicorn only: unset STRATUS_HTTP_SERVER=granian")
        return 2
    serve(
        asgi(),
        host=os.environ.get("STRATUS_HOST", "127.0.0.1"),
        port=int(os.environ.get("STRATUS_PORT", "8080")),
        server=server,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
