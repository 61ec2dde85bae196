"""The TCP proxy in front of an environment: a stable port, forwarded to the current instance.

Each new connection is forwarded to the upstream port of the moment it was accepted; `point`
changes that for the connections accepted after it, while the open ones keep their instance
until they close. That is what makes a switch free of downtime: the new instance is healthy
before it gets any connection, and the old one finishes what it already has.
"""

from __future__ import annotations

import asyncio
import contextlib

BUFFER = 64 * 1024


class Proxy:
    def __init__(self, host: str, port: int, upstream: int) -> None:
        self.host = host
        self.port = port  # 0 until started: then the port it listens on
        self.upstream = upstream
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, self.port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]

    def point(self, upstream: int) -> None:
        self.upstream = upstream

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        # Before 3.12 a closed server leaves its connections open: end them too.
        tasks = list(self._connections)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _serve(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        upstream = self.upstream  # read once: this connection's instance, whatever a switch does next
        try:
            try:
                up_reader, up_writer = await asyncio.open_connection("127.0.0.1", upstream)
            except OSError:
                return
            try:
                await _splice(client_reader, client_writer, up_reader, up_writer)
            finally:
                up_writer.close()
        finally:
            client_writer.close()
            self._connections.discard(task)


async def _splice(
    a_reader: asyncio.StreamReader,
    a_writer: asyncio.StreamWriter,
    b_reader: asyncio.StreamReader,
    b_writer: asyncio.StreamWriter,
) -> None:
    pipes = [
        asyncio.create_task(_pipe(a_reader, b_writer)),
        asyncio.create_task(_pipe(b_reader, a_writer)),
    ]
    try:
        done, _ = await asyncio.wait(pipes, return_when=asyncio.FIRST_EXCEPTION)
        if any(not task.cancelled() and task.exception() is not None for task in done):
            return  # a reset on one side: the finally of the caller closes both
        await asyncio.gather(*pipes)
    finally:
        for task in pipes:
            task.cancel()
        await asyncio.gather(*pipes, return_exceptions=True)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(BUFFER):
        writer.write(data)
        await writer.drain()
    # Half-close: the other direction may still be sending (a response after the request's end).
    if writer.can_write_eof():
        with contextlib.suppress(OSError):
            writer.write_eof()
