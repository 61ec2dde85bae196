"""Helpers of the SDK tests: a TCP proxy that really drops connections, a recorder of what the SDK
put on the wire (httpx event hooks on the client it is given), and a webhook receiver."""

from __future__ import annotations

import contextlib
import json
import re
import socket
import struct
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

from stratus_testing import Stack

_REQUEST_HEAD = re.compile(rb"(GET|POST|PUT|PATCH|DELETE) (\S+) HTTP/1\.1\r\n(.*?)\r\n\r\n", re.DOTALL)


@dataclass
class Connection:
    client: socket.socket
    upstream: socket.socket
    sent: bytearray = field(default_factory=bytearray)  # client → gateway
    received: bytearray = field(default_factory=bytearray)  # gateway → client (forwarded)
    closed: bool = False

    def requests(self) -> list[tuple[str, str, dict[str, str]]]:
        """(method, path, headers) of every request this connection carried."""
        found = []
        for method, path, head in _REQUEST_HEAD.findall(bytes(self.sent)):
            headers = {}
            for line in head.split(b"\r\n"):
                name, _, value = line.decode("latin-1").partition(":")
                headers[name.strip().lower()] = value.strip()
            found.append((method.decode(), path.decode(), headers))
        return found


class TcpProxy:
    """A loopback TCP proxy in front of the gateway. `cut()` drops every open connection at once
    with a TCP reset, as a network failure would. `cut_after` (bytes from the gateway) drops the
    first connection once that much of its answer has been forwarded, at the worst place for a
    server-sent event stream: right before an event's closing blank line (a whole `id`, `event`
    and `data` arrived, but not the line that completes the event); `drop_first_answer` lets
    the first connection's request through to the gateway, then drops it when the answer starts
    coming back, without forwarding a byte of it (a request applied, its answer lost)."""

    def __init__(self, target_port: int, *, cut_after: int | None = None, drop_first_answer: bool = False):
        self.target = ("127.0.0.1", target_port)
        self.cut_after = cut_after
        self.drop_first_answer = drop_first_answer
        self.connections: list[Connection] = []
        self.lock = threading.Lock()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._stopping = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stopping:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            with self.lock:
                conn = Connection(client, upstream)
                index = len(self.connections)
                self.connections.append(conn)
            threading.Thread(target=self._pipe, args=(conn, True, index), daemon=True).start()
            threading.Thread(target=self._pipe, args=(conn, False, index), daemon=True).start()

    def _pipe(self, conn: Connection, to_upstream: bool, index: int) -> None:
        src, dst = (conn.client, conn.upstream) if to_upstream else (conn.upstream, conn.client)
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                data = b""
            if not data:
                self._close(conn)
                return
            if to_upstream:
                conn.sent += data
            elif index == 0 and self.drop_first_answer:
                self._close(conn)  # the gateway has answered: the client never hears it
                return
            elif index == 0 and self.cut_after is not None:
                # An event's JSON data line ends with `}`; the blank line after it completes it.
                at = (bytes(conn.received) + data).find(b"}\n\n", self.cut_after)
                if at != -1:
                    keep = data[: at + 2 - len(conn.received)]
                    with contextlib.suppress(OSError):
                        dst.sendall(keep)
                    conn.received += keep
                    self._close(conn)
                    return
            if not to_upstream:
                conn.received += data
            try:
                dst.sendall(data)
            except OSError:
                self._close(conn)
                return

    def _close(self, conn: Connection) -> None:
        with self.lock:
            if conn.closed:
                return
            conn.closed = True
        for sock in (conn.client, conn.upstream):
            with contextlib.suppress(OSError):
                # SO_LINGER 0: close with a reset, not a tidy FIN; the peer's read fails.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            with contextlib.suppress(OSError):
                # Wakes the other pipe thread's blocked recv, which holds the socket open (and
                # the reset unsent) until it returns.
                sock.shutdown(socket.SHUT_RD)
            with contextlib.suppress(OSError):
                sock.close()

    def cut(self) -> int:
        """Drop every open connection; how many there were."""
        with self.lock:
            live = [c for c in self.connections if not c.closed]
        for conn in live:
            self._close(conn)
        return len(live)

    def requests(self) -> list[tuple[str, str, dict[str, str]]]:
        with self.lock:
            connections = list(self.connections)
        return [request for conn in connections for request in conn.requests()]

    def close(self) -> None:
        self._stopping = True
        self.listener.close()
        self.cut()

    def __enter__(self) -> TcpProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Recorder:
    """Every request the SDK sent and every answer it got, through httpx's event hooks on the
    `httpx.Client` handed to the SDK (`recorder.client()`): the SDK's own traffic, unchanged."""

    def __init__(self) -> None:
        self.attempts: list[dict[str, Any]] = []

    def _request(self, request: httpx.Request) -> None:
        self.attempts.append(
            {"method": request.method, "path": request.url.path, "headers": dict(request.headers)}
        )

    def _response(self, response: httpx.Response) -> None:
        response.read()
        self.attempts[-1]["status"] = response.status_code
        self.attempts[-1]["response_headers"] = dict(response.headers)
        if response.headers.get("content-type", "").startswith("application/problem+json"):
            self.attempts[-1]["code"] = response.json().get("code")

    def client(self) -> httpx.Client:
        return httpx.Client(
            timeout=30.0,
            trust_env=False,
            event_hooks={"request": [self._request], "response": [self._response]},
        )

    def writes(self, path: str) -> list[dict[str, Any]]:
        return [a for a in self.attempts if a["method"] != "GET" and a["path"] == path]


class Receiver:
    """A webhook endpoint on loopback: records every POST's raw body and headers, answers 200."""

    def __init__(self) -> None:
        self.deliveries: list[tuple[bytes, dict[str, str]]] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                with receiver.lock:
                    receiver.deliveries.append((body, dict(self.headers.items())))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def of_type(self, event_type: str) -> list[tuple[bytes, dict[str, str]]]:
        with self.lock:
            return [d for d in self.deliveries if json.loads(d[0])["type"] == event_type]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def new_account(stack: Stack, name: str, plan: str = "internal") -> dict[str, Any]:
    """A tenant of its own (`stratus accounts create`): `{"id", "keys": {"live", "test"}}`."""
    done = stack.cli("accounts", "create", name, "--plan", plan, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@contextlib.contextmanager
def receiver() -> Iterator[Receiver]:
    made = Receiver()
    try:
        yield made
    finally:
        made.close()
