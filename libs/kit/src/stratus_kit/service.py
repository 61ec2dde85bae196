"""A service: its declaration (`Service`) and the process that runs it (`run`).

A service module declares, in its `bootstrap.py`, one `Service`: its partitions and how a
message picks one, its aggregates' `mutate` functions, its read models, its publisher, its
consumers, and the table from message type to handler. `run(service)` does the rest, the same
for every service: telemetry, NATS, the `EVENTS` stream, the partitions and their workers, one
subscription per message type (queue group `svc.<name>`, so replicas share the load), the
outbox relays, the consumers, a ping (and one for this host alone, for health probes: `probe`),
and on SIGTERM/SIGINT a drain in which every request that arrived is answered before the stores
close. `open_local(service)` opens the same thing without a bus, for tests and tools in one
process.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import signal
import socket
import sys
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import uvloop

from stratus_bus import Bus, Envelope, error_reply, reply_to
from stratus_bus.bus import encode_reply
from stratus_bus.config import data_dir, nats_url, relay_enabled
from stratus_contracts import subjects
from stratus_contracts.reply import Ping, Pong, RebuildResult
from stratus_eventstore.model import utcnow
from stratus_eventstore.store import drop_store, remove_sqlite
from stratus_kit import idempotency, lease, sandbox
from stratus_kit.consumer import Consumer
from stratus_kit.partition import Partition, Projector, read_path
from stratus_kit.read_model import ReadModel
from stratus_kit.registry import Combine, Registry, Route
from stratus_kit.relay import Publisher, Relay
from stratus_kit.state import Decision, Handler, State
from stratus_kit.worker import Mailbox
from stratus_telemetry import configure, request_id_var

log = logging.getLogger("stratus.runtime")

MODES = ("live", "test")
DRAIN_TIMEOUT = 10.0


def by_mode(message: Any) -> str | None:
    """The usual route: the caller's mode (or the message's own `mode`); a message with neither
    (an operator's) goes to every partition."""
    caller = getattr(message, "caller", None)
    if caller is not None:
        return caller.mode
    return getattr(message, "mode", None)


@dataclass(frozen=True)
class Service:
    name: str
    # Built once per process from the dependencies (`dependencies()`: e.g. the keyring).
    handlers: Callable[..., Mapping[type, Handler]]
    partitions: Sequence[str] = MODES
    route: Route = by_mode
    mutates: Sequence[Any] = ()
    read_models: Sequence[ReadModel] = ()
    publisher: Publisher | None = None
    # How the results of a message sent to every partition (no caller) combine into one.
    fanout: Mapping[type, Combine] = field(default_factory=dict)
    # The message type that drops and replays the read models (`stratus rebuild <name>`).
    rebuild: type | None = None
    dependencies: Callable[[], dict[str, Any]] = dict
    # Read models fed by consumers rather than by an event store: (partition name, data dir) →
    # {name: read model object}. Such a service has no event store.
    stream_fed: Callable[[str, Path], dict[str, Any]] | None = None
    # Durable consumers: (bus, the opened service) → Consumer.
    consumers: Sequence[Callable[[Bus, Local], Consumer]] = ()
    # Handlers that wait on the bus itself (a rebuild that re-reads a stream): run on the event
    # loop, one at a time, as `async (message, local) -> result`.
    on_loop: Mapping[type, Callable[[Any, Local], Awaitable[Any]]] = field(default_factory=dict)
    # Background work for the life of the process (the deployments runner): `async (bus, local)`,
    # started once the endpoints serve and cancelled on shutdown, before the stores close.
    tasks: Sequence[Callable[[Bus, Local], Awaitable[None]]] = ()
    # The service's clock, `now` for its handlers (a test may run it fast: webhooks' retries).
    clock: Callable[[], datetime] | None = None
    # Its consumers and tasks run on one replica at a time, the holder of the service's lease
    # (`stratus_kit.lease`); every replica serves commands and queries.
    singleton: bool = False
    # What a sandbox reset does beyond swapping the test partition for an empty one (stopping
    # test-mode apps, dropping a stream-fed read model's test rows): `async (local)`.
    on_sandbox_reset: Callable[[Local], Awaitable[None]] | None = None


class Local:
    """A service opened in this process: its partitions and its registry."""

    def __init__(
        self, service: Service, partitions: dict[str, Partition], registry: Registry, deps: dict
    ) -> None:
        self.service = service
        self.partitions = partitions
        self.registry = registry
        self.deps = deps
        self.consumers: dict[str, Consumer] = {}  # by durable name, once the service runs
        self.epoch = 0  # the sandbox epoch its test partition belongs to (`stratus_kit.sandbox`)
        self.relays: dict[str, asyncio.Task[None]] = {}  # each partition's outbox relay, running
        self.bus: Bus | None = None

    def call(self, message: Any, timeout: float = 30.0) -> Any:
        return self.registry.call(message, timeout)

    async def ask(self, message: Any) -> Any:
        """`call` from the event loop: the message runs on its partition's worker, and the loop
        is woken with its result (or its error, raised here)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()

        def settle(result: Any, error: BaseException | None) -> None:
            if future.done():
                return
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(result)

        def done(result: Any, error: BaseException | None) -> None:
            with contextlib.suppress(RuntimeError):  # the loop closed: nobody is waiting
                loop.call_soon_threadsafe(settle, result, error)

        self.registry.dispatch(message, done)
        return await future

    async def reset_sandbox(self, epoch: int) -> None:
        """Drop this process's test-mode data: the test partition becomes an empty one of
        `epoch` (the old one's workers finish what they hold, then its files or tables go), and
        the service's own `on_sandbox_reset` runs."""
        old = self.partitions.get(sandbox.MODE)
        if old is not None and old.event_sourced:
            assert old.data_dir is not None
            new = await asyncio.to_thread(
                _partition, self.service, sandbox.MODE, old.data_dir, sandbox.store_name(sandbox.MODE, epoch)
            )
            new.watchers = old.watchers  # the service's background tasks go on hearing its commits
            previous = self.registry.swap(sandbox.MODE, new)
            self.partitions[sandbox.MODE] = new
            relay = self.relays.pop(sandbox.MODE, None)
            if relay is not None:
                relay.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await relay
                self.start_relay(sandbox.MODE)
            await asyncio.to_thread(previous.stop)
            await asyncio.to_thread(old.close)
            await asyncio.to_thread(_drop_partition, old)
        self.epoch = epoch
        if self.service.on_sandbox_reset is not None:
            await self.service.on_sandbox_reset(self)
        log.info("sandbox reset: test-mode data dropped", extra={"epoch": epoch})

    def start_relay(self, name: str) -> None:
        part, publisher = self.partitions[name], self.service.publisher
        if self.bus is None or publisher is None or not relay_enabled():
            return
        relay = Relay(part, self.bus, publisher)
        part.on_commit = relay.wake
        self.relays[name] = asyncio.create_task(relay.run(), name=f"relay-{name}")

    def close(self) -> None:
        self.registry.stop()
        for part in self.partitions.values():
            part.close()

    def __enter__(self) -> Local:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _rebuild_handler(message: Any, state: State, now: datetime) -> Decision:
    return [], state.partition.rebuild_read_models()


def open_local(
    service: Service,
    *,
    directory: Path | None = None,
    deps: dict[str, Any] | None = None,
    clock: Callable[[], datetime] = utcnow,
    epoch: int = 0,
) -> Local:
    root = directory or data_dir()
    root.mkdir(parents=True, exist_ok=True)
    deps = service.dependencies() if deps is None else deps
    project = Projector(idempotency.mutate, *service.mutates)
    partitions: dict[str, Partition] = {}
    try:
        for name in service.partitions:
            if service.stream_fed is not None:
                partitions[name] = Partition.stream_fed(service.name, name, service.stream_fed(name, root))
            else:
                partitions[name] = _partition(service, name, root, sandbox.store_name(name, epoch), project)
    except BaseException:
        for part in partitions.values():
            part.close()
        raise
    handlers = dict(service.handlers(**deps))
    fanout = dict(service.fanout)
    if service.rebuild is not None and service.rebuild not in service.on_loop:
        handlers[service.rebuild] = _rebuild_handler
        fanout[service.rebuild] = lambda counts: RebuildResult(modes=counts)
    registry = Registry(
        partitions, handlers, route=service.route, fanout=fanout, clock=service.clock or clock
    )
    local = Local(service, partitions, registry, deps)
    local.epoch = epoch
    return local


def _partition(
    service: Service, name: str, root: Path, store_name: str, project: Projector | None = None
) -> Partition:
    project = project or Projector(idempotency.mutate, *service.mutates)
    return Partition(service.name, name, project, service.read_models, data_dir=root, store_name=store_name)


def _drop_partition(part: Partition) -> None:
    assert part.data_dir is not None
    drop_store(part.service, part.store_name, part.data_dir)
    remove_sqlite(read_path(part.data_dir, part.service, part.store_name))


def spawn(stack: contextlib.AsyncExitStack, coro: Awaitable[None], name: str) -> asyncio.Task[None]:
    """Run a background task for the life of the service; it is cancelled on shutdown."""
    task = asyncio.create_task(coro, name=name)  # type: ignore[arg-type]

    async def cancel() -> None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    stack.push_async_callback(cancel)
    return task


class _Replies:
    """Replies from the worker threads, published on the event loop a batch at a time."""

    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self.mailbox = Mailbox(asyncio.get_running_loop(), self._deliver)
        self._tasks: set[asyncio.Task[None]] = set()

    def _deliver(self, items: list[tuple[str, bytes]]) -> None:
        task = asyncio.get_running_loop().create_task(self._publish(items))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _publish(self, items: list[tuple[str, bytes]]) -> None:
        publish = self.bus.nc.publish
        for subject, payload in items:
            try:
                await publish(subject, payload)
            except Exception:
                log.warning("could not send a reply", exc_info=True)

    async def flushed(self) -> None:
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


def _endpoint(
    registry: Registry, replies: _Replies, message_type: type
) -> Callable[[Envelope[Any], str], None]:
    subject = message_type.subject

    def on_request(envelope: Envelope[Any], reply_subject: str) -> None:
        def done(result: Any, error: BaseException | None) -> None:
            token = request_id_var.set(envelope.request_id)
            try:
                reply = reply_to(result) if error is None else error_reply(error, subject)
                try:
                    payload = encode_reply(reply)
                except (TypeError, ValueError) as exc:  # a handler returned something unsendable
                    payload = encode_reply(error_reply(exc, subject))
            finally:
                request_id_var.reset(token)
            if reply_subject:
                replies.mailbox.post((reply_subject, payload))

        registry.dispatch(
            envelope.body, done, request_id=envelope.request_id, traceparent=envelope.traceparent
        )

    return on_request


async def serve(service: Service, stop: asyncio.Event | None = None) -> None:
    """Serve until `stop` is set (or, when none is given, until SIGTERM or SIGINT)."""
    if stop is None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
    instance = f"{service.name}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    bus = await Bus.connect(nats_url(), name=instance)
    async with contextlib.AsyncExitStack() as stack:
        stack.push_async_callback(bus.drain)
        await bus.ensure_events_stream()
        sandbox_kv = await sandbox.bucket(bus)
        epoch = (await bus.settled(lambda: sandbox.current(sandbox_kv)))[0].epoch
        local = await asyncio.to_thread(functools.partial(open_local, service, epoch=epoch))
        local.bus = bus
        stack.callback(local.close)
        await _start(service, bus, local, stack, instance)
        spawn(stack, sandbox.follow(local, sandbox_kv), name="sandbox-follow")
        if sandbox.interval() > 0:
            timer = lease.Lease(await lease.bucket(bus, lease.ttl()), "sandbox-timer", instance, lease.ttl())
            spawn(stack, timer.run(lambda: sandbox.timer(bus, sandbox_kv)), name="sandbox-timer")
        log.info("service ready", extra={"instance": instance})
        await stop.wait()
        log.info("service stopping: draining")


async def _start(
    service: Service, bus: Bus, local: Local, stack: contextlib.AsyncExitStack, instance: str
) -> None:
    replies = _Replies(bus)
    queue = subjects.queue_group(service.name)
    subscriptions = []
    for name in local.partitions:
        local.start_relay(name)

    async def stop_relays() -> None:
        tasks = list(local.relays.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    stack.push_async_callback(stop_relays)
    background: list[tuple[str, Callable[[], Awaitable[None]]]] = []
    for consumer in service.consumers:
        made = consumer(bus, local)
        local.consumers[made.durable] = made
        await bus.settled(made.ensure)
        if made.ready_when_caught_up and not service.singleton:
            # Its read model must hold what the stream holds before any request is answered:
            # run it now, and subscribe (to requests and pings alike) only once it caught up.
            spawn(stack, made.run(), name=f"consumer-{made.durable}")
            await made.catch_up()
            continue
        background.append((f"consumer-{made.durable}", made.run))
    for message_type in local.registry.message_types():
        if getattr(message_type, "subject", ""):
            on_request = _endpoint(local.registry, replies, message_type)
            subscriptions.append(await bus.serve(message_type.subject, message_type, on_request, queue=queue))
    for message_type, handler in service.on_loop.items():

        async def answer(message: Any, handler: Any = handler) -> Any:
            return await handler(message, local)

        subscriptions.append(await bus.serve_simple(message_type.subject, message_type, answer, queue=queue))

    async def ping(_: Ping) -> Pong:
        stats = {**local.registry.stats(), "sandbox.epoch": local.epoch}
        return Pong(service=service.name, instance=instance, stats=stats)

    subscriptions.append(await bus.serve_simple(subjects.ping(service.name), Ping, ping, queue=queue))
    # The same ping for this host alone (no queue group): a container's health probe
    # (`python -m stratus_kit.probe`) asks its own process, never another replica.
    host_ping = subjects.host_ping(service.name, socket.gethostname())
    subscriptions.append(await bus.serve_simple(host_ping, Ping, ping, queue=""))
    for task in service.tasks:
        background.append((f"task-{getattr(task, '__name__', 'task')}", functools.partial(task, bus, local)))
    if service.singleton:
        held = lease.Lease(await lease.bucket(bus, lease.ttl()), service.name, instance, lease.ttl())

        async def work() -> None:
            await asyncio.gather(*(start() for _, start in background))

        spawn(stack, held.run(work), name=f"lease-{service.name}")
    else:
        for name, start in background:
            spawn(stack, start(), name=name)

    async def drain() -> None:
        # Stop taking requests and answer every one that arrived; only then do the consumers
        # and relays stop (callbacks run last-in first-out) and the stores close.
        for sub in subscriptions:
            with contextlib.suppress(Exception):
                await sub.drain()
        if not await asyncio.to_thread(local.registry.wait_idle, DRAIN_TIMEOUT):
            log.warning("requests still running at shutdown")
        await replies.flushed()

    stack.push_async_callback(drain)


def run(service: Service) -> None:
    """`python -m stratus_<name>`: run the service until SIGTERM or SIGINT."""
    configure(service.name)
    sys.setswitchinterval(float(os.environ.get("STRATUS_SWITCH_INTERVAL", "0.005")))
    try:
        uvloop.run(serve(service))
    except Exception:
        # One JSON line with the traceback, not Python's plain one between the JSON lines.
        log.exception("service failed")
        raise SystemExit(1) from None


__all__ = ["MODES", "Local", "Service", "by_mode", "open_local", "run", "serve", "spawn"]
