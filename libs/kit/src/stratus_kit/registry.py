"""The registry: message type → handler, and the one place that runs handlers.

`dispatch(message, done)` routes a message to its partition (the service's `route`, usually the
caller's mode) and queues it on that partition's worker threads: queries on the reader, commands
on the writer. `done(result, error)` is called once, on a worker thread, after the command's
events are committed (or with the error that refused it).

The writer decides a batch of commands against one `State`, each seeing the earlier ones'
staged events, and commits all their events in one transaction (**group commit**): one fsync
for the batch, while each command stays all-or-nothing and is refused alone when its own rules
refuse it. When another replica committed to one of the same aggregates first, the batch is
decided again on fresh state; after `CONFLICT_RETRIES` such rounds each command is retried
alone. Commands with an Idempotency-Key apply at most once (`stratus_kit.idempotency`). A query
whose handler returns events (a secret reveal is recorded before the values leave) is decided
again on the writer and answered once they are committed.
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

import msgspec
from eventsourcing.persistence import IntegrityError
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind

from stratus_bus import Replayed
from stratus_contracts.errors import DomainError
from stratus_contracts.messages import is_command
from stratus_eventstore.model import utcnow
from stratus_kit import idempotency
from stratus_kit.partition import Partition
from stratus_kit.state import Handler, Later, State
from stratus_kit.worker import Worker
from stratus_telemetry import TRACING, request_id_var

log = logging.getLogger("stratus.kit.registry")
_tracer = trace.get_tracer("stratus.kit")

CONFLICT_RETRIES = 3
Done = Callable[[Any, BaseException | None], None]
Route = Callable[[Any], str | None]
Combine = Callable[[dict[str, Any]], Any]


class Job:
    __slots__ = ("done", "handler", "message", "request_id", "subject", "traceparent")

    def __init__(
        self,
        message: Any,
        handler: Handler,
        done: Done,
        request_id: str | None = None,
        traceparent: str | None = None,
    ) -> None:
        self.message = message
        self.handler = handler
        self.done = done
        self.request_id = request_id
        self.traceparent = traceparent
        self.subject = getattr(type(message), "subject", "") or type(message).__name__


class _Outcome:
    __slots__ = ("error", "events", "job", "result")

    def __init__(self, job: Job, result: Any = None, error: BaseException | None = None, events: Any = ()):
        self.job = job
        self.result = result
        self.error = error
        self.events = events


class _Traced:
    """The job's request id (and, when spans are recorded, its `handle <subject>` span) made
    current on the worker thread while its handler runs."""

    __slots__ = ("_job", "_span_token", "_token")

    def __init__(self, job: Job) -> None:
        self._job = job

    def __enter__(self) -> None:
        self._token = request_id_var.set(self._job.request_id)
        self._span_token = None
        if TRACING.recording:
            parent = propagate.extract(
                {"traceparent": self._job.traceparent} if self._job.traceparent else {}
            )
            span = _tracer.start_span(f"handle {self._job.subject}", context=parent, kind=SpanKind.SERVER)
            self._span_token = (span, otel_context.attach(trace.set_span_in_context(span)))

    def __exit__(self, *exc: object) -> None:
        if self._span_token is not None:
            span, token = self._span_token
            otel_context.detach(token)
            span.end()
        request_id_var.reset(self._token)


class Runner:
    """The reader and the writer of one partition."""

    def __init__(self, partition: Partition, clock: Callable[[], datetime]) -> None:
        self.partition = partition
        self.clock = clock
        self.reader = Worker(f"{partition.service}-{partition.name}-reader", self._read)
        self.writer = Worker(f"{partition.service}-{partition.name}-writer", self._write)
        # Plain counters (one thread writes each): batches and jobs per worker, and commits.
        self.stats = {"read_batches": 0, "read_jobs": 0, "write_batches": 0, "write_jobs": 0, "commits": 0}

    def submit(self, job: Job) -> None:
        (self.writer if is_command(type(job.message)) else self.reader).submit(job)

    def stop(self) -> None:
        self.reader.stop()
        self.writer.stop()

    # -- queries -----------------------------------------------------------------------------

    def _read(self, jobs: list[Job]) -> None:
        self.stats["read_batches"] += 1
        self.stats["read_jobs"] += len(jobs)
        try:
            self.partition.sync()
        except Exception as exc:
            for job in jobs:
                _finish(job, None, exc)
            return
        state = State(self.partition)
        now = self.clock()
        for job in jobs:
            with _Traced(job):
                try:
                    events, result = job.handler(job.message, state, now)
                except Exception as exc:
                    _finish(job, None, exc)
                    continue
            if events:
                self.writer.submit(job)  # decided again there, answered once committed
            else:
                _finish(job, result, None)

    # -- commands ----------------------------------------------------------------------------

    def _write(self, jobs: list[Job]) -> None:
        self.stats["write_batches"] += 1
        self.stats["write_jobs"] += len(jobs)
        part = self.partition
        for _ in range(CONFLICT_RETRIES):
            try:
                part.sync()
                outcomes, state = self._decide_all(jobs)
                events = [e for o in outcomes for e in o.events]
                if events:
                    self._commit(jobs, events, state)
            except IntegrityError:
                continue  # another writer got there first: decide the batch again on fresh state
            except Exception as exc:
                for job in jobs:
                    _finish(job, None, exc)
                return
            for outcome in outcomes:
                _finish(outcome.job, outcome.result, outcome.error)
            try:
                part.feed_if_behind()
            except Exception:
                # The next read feeds them instead; the commit and its replies stand.
                log.exception("feeding the read models failed", extra={"partition": part.name})
            return
        if len(jobs) > 1:
            for job in jobs:  # keep conflicting with someone: give each command its own turn
                self._write([job])
            return
        for job in jobs:
            _finish(
                job,
                None,
                IntegrityError(f"{job.subject}: still conflicting after {CONFLICT_RETRIES} attempts"),
            )

    def _commit(self, jobs: list[Job], events: list[Any], state: State) -> None:
        traced = next((j for j in jobs if j.traceparent), None) if TRACING.recording else None
        if traced is None:
            self.partition.commit(events, state.staged)
        else:
            with _Traced(traced):
                self.partition.commit(events, state.staged)
        self.stats["commits"] += 1

    def _decide_all(self, jobs: list[Job]) -> tuple[list[_Outcome], State]:
        state = State(self.partition)
        now = self.clock()
        outcomes = []
        for job in jobs:
            with _Traced(job):
                outcomes.append(self._decide(job, state, now))
        return outcomes, state

    def _decide(self, job: Job, state: State, now: datetime) -> _Outcome:
        message = job.message
        key = idempotency.key_of(message) if is_command(type(message)) else None
        index = None
        if key:
            index = state.get(idempotency.record_id_of(message))
            if (record := idempotency.live(index, now)) is not None:
                return self._replay(job, record)
        try:
            events, result = job.handler(message, state, now)
        except DomainError as exc:
            if key:
                # A duplicate committed meanwhile (on another replica) can make this attempt
                # fail (its name is taken, say): its reply is the answer, not our error.
                self.partition.sync()
                if (
                    record := idempotency.live(state.get(idempotency.record_id_of(message)), now)
                ) is not None:
                    return self._replay(job, record)
            return _Outcome(job, error=exc)
        except Exception as exc:
            return _Outcome(job, error=exc)
        events = list(events)
        if key and events:
            events.append(idempotency.recorded(index, message, result, now))
        if events:
            state.stage(events)
        return _Outcome(job, result=result, events=events)

    @staticmethod
    def _replay(job: Job, record: idempotency.Record) -> _Outcome:
        try:
            return _Outcome(job, result=idempotency.replay(record, job.message))
        except DomainError as exc:
            return _Outcome(job, error=exc)


def _finish(job: Job, result: Any, error: BaseException | None) -> None:
    if isinstance(result, Later):
        try:
            result = result.make()
        except Exception as exc:
            result, error = None, exc
    try:
        job.done(result, error)
    except Exception:
        log.exception("delivering a result failed", extra={"subject": job.subject})


class _Fanout:
    """One message run on every partition; `done` once with the combined results."""

    def __init__(self, names: Sequence[str], combine: Combine, done: Done) -> None:
        self._pending = set(names)
        self._results: dict[str, Any] = {}
        self._error: BaseException | None = None
        self._combine = combine
        self._done = done
        self._lock = threading.Lock()

    def part(self, name: str) -> Done:
        def done(result: Any, error: BaseException | None) -> None:
            with self._lock:
                self._results[name] = result
                self._error = self._error or error
                self._pending.discard(name)
                if self._pending:
                    return
            if self._error is not None:
                self._done(None, self._error)
                return
            try:
                combined = self._combine(self._results)
            except Exception as exc:
                self._done(None, exc)
                return
            self._done(combined, None)

        return done


class Registry:
    def __init__(
        self,
        partitions: Mapping[str, Partition],
        handlers: Mapping[type, Handler],
        *,
        route: Route,
        fanout: Mapping[type, Combine] | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.handlers = dict(handlers)
        self.route = route
        self.fanout = dict(fanout or {})
        self.runners = {name: Runner(part, clock) for name, part in partitions.items()}
        self._inflight = 0
        self._idle = threading.Condition()

    def message_types(self) -> list[type]:
        return list(self.handlers)

    def stats(self) -> dict[str, int]:
        return {
            f"{name}.{key}": value
            for name, runner in self.runners.items()
            for key, value in runner.stats.items()
        }

    def dispatch(
        self,
        message: Any,
        done: Done,
        *,
        request_id: str | None = None,
        traceparent: str | None = None,
    ) -> None:
        """Queue `message` for its handler; `done(result, error)` is called once, later."""
        handler = self.handlers.get(type(message))
        if handler is None:
            done(None, DomainError("bad_request", f"{type(message).__name__} is not handled here."))
            return
        with self._idle:
            self._inflight += 1
        done = self._counted(done)
        name = self.route(message)
        if name is None:
            combine = self.fanout.get(type(message))
            if combine is None:
                done(None, LookupError(f"{type(message).__name__} names no partition"))
                return
            fan = _Fanout(list(self.runners), combine, done)
            for each, runner in self.runners.items():
                runner.submit(Job(message, handler, fan.part(each), request_id, traceparent))
            return
        runner = self.runners.get(name)
        if runner is None:
            done(None, DomainError("bad_request", f"No partition {name!r} here."))
            return
        runner.submit(Job(message, handler, done, request_id, traceparent))

    def _counted(self, done: Done) -> Done:
        def finished(result: Any, error: BaseException | None) -> None:
            try:
                done(result, error)
            finally:
                with self._idle:
                    self._inflight -= 1
                    if self._inflight == 0:
                        self._idle.notify_all()

        return finished

    def wait_idle(self, timeout: float) -> bool:
        """Wait until every dispatched message is done (shutdown: nothing may be cut off)."""
        with self._idle:
            return self._idle.wait_for(lambda: self._inflight == 0, timeout)

    def call(self, message: Any, timeout: float = 30.0) -> Any:
        """Run `message` through its handler and return the result, or raise its error (a
        blocking call for tests and tools in the service's own process). A replayed result
        comes back decoded, as the bus would deliver it."""
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()

        def done(result: Any, error: BaseException | None) -> None:
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(result)

        self.dispatch(message, done)
        result = future.result(timeout)
        if isinstance(result, Replayed):
            raw = result.result
            returns = getattr(type(message), "returns", None)
            if isinstance(raw, msgspec.Raw) and returns is not None:
                return Replayed(msgspec.msgpack.decode(bytes(raw), type=returns))
        return result

    def swap(self, name: str, partition: Partition) -> Runner:
        """Route partition `name`'s messages to `partition` from now on; the previous runner (to
        stop once it has finished what it holds)."""
        previous = self.runners[name]
        self.runners[name] = Runner(partition, previous.clock)
        return previous

    def stop(self) -> None:
        for runner in self.runners.values():
            runner.stop()
