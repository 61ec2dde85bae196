"""JSON log lines for every Stratus process, encoded and written off the path that logs them.

A log call costs its caller only what has to happen there: the record, or for a hot line of a
fixed shape (`Line`, the gateway's access line) a tuple of its values, is appended to a queue
with the context it belongs to (the request id and the OpenTelemetry context, which live in
context variables of the caller's task). A writer thread turns what is queued into JSON lines
(msgspec, one call per batch) and writes them in batches: one write per batch instead of a
write and a flush per line. It wakes every `FLUSH_INTERVAL` seconds, when `BATCH` entries wait,
and at once for a warning or an error. Nothing is dropped: a caller that finds `MAX_PENDING`
entries queued writes them itself (the back-pressure a slow stderr always applied), and on exit
(`logging.shutdown`, atexit) and on `flush()` what is queued is written before returning. A
process that is killed loses what its last fraction of a second queued.

Every line is `{"ts", "level", "service", "logger", "msg", "request_id"?, "trace_id"?,
"span_id"?, <the record's extra fields>…, "exc"?}`.
"""

from __future__ import annotations

import collections
import contextvars
import json
import logging
import os
import sys
import threading
import time
import weakref
from collections.abc import Callable
from itertools import repeat
from operator import call, mul, sub
from typing import IO, Any

import msgspec
from opentelemetry import context as otel_context
from opentelemetry import trace

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "stratus_request_id", default=None
)

FLUSH_INTERVAL = 0.05  # seconds between the writer's rounds when nothing hurries it
BATCH = 512  # lines encoded and written at a time
WAKE = 16_384  # queued items that wake the writer before its interval is up
MAX_PENDING = 400_000  # queued items at most: past this the caller writes (back-pressure)

# Attributes every LogRecord has, plus uvicorn's ANSI-coloured duplicate of the message.
_LOG_RECORD_BUILTINS = frozenset(vars(logging.makeLogRecord({})).keys()) | {
    "message",
    "asctime",
    "color_message",
}
_CONTEXT = "_stratus_context"  # where a queued record keeps the context it was logged in
_HEAD = ("ts", "level", "service", "logger", "msg", "request_id", "trace_id", "span_id")
_ENCODER = msgspec.json.Encoder(enc_hook=str)  # anything msgspec cannot encode is its str()
_UNSET = msgspec.UNSET
_ROOT = logging.getLogger()


# -- the caller's context ----------------------------------------------------------------------

# The request id and the OpenTelemetry context of the task that logged. The span and its ids
# are looked up in that context by the writer: contexts never change, and the lookup (four
# Python calls deep) would cost the caller more than the rest of a `Line`.
Context = tuple[str | None, otel_context.Context]


def _otel_getter() -> Callable[[], otel_context.Context]:
    runtime = getattr(otel_context, "_RUNTIME_CONTEXT", None)
    var = getattr(runtime, "_current_context", None)
    # The default runtime context keeps the context in a ContextVar, whose C `get` is all that
    # `otel_context.get_current()` does; another runtime context goes through the public call.
    return var.get if isinstance(var, contextvars.ContextVar) else otel_context.get_current


_otel_current = _otel_getter()
_request_id = request_id_var.get
_clock = time.perf_counter  # a Line's time: the writer turns it into wall-clock time


def current_context() -> Context:
    return _request_id(), _otel_current()


def _ids(context: otel_context.Context) -> tuple[str, str] | None:
    """The trace and span ids (hex) of the span in `context`, if it has a valid one."""
    if not context:
        return None  # no span was ever set in this task: the common case without tracing
    ids = trace.get_current_span(context).get_span_context()
    return (format(ids.trace_id, "032x"), format(ids.span_id, "016x")) if ids.is_valid else None


# -- formatting --------------------------------------------------------------------------------


class _Timestamps:
    """RFC 3339 UTC timestamps with milliseconds. Lines come in bursts: the last one made is
    reused within its millisecond, and the date and time part within its second."""

    def __init__(self) -> None:
        self._second: tuple[int, str] = (-1, "")
        self._milli: tuple[int, str] = (-1, "")

    def format(self, created: float) -> str:
        milli = int(created * 1000)
        cached = self._milli
        if cached[0] == milli:
            return cached[1]
        second, ms = divmod(milli, 1000)
        prefix = self._second
        if prefix[0] != second:
            prefix = self._second = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
        text = f"{prefix[1]}.{ms:03d}Z"
        self._milli = (milli, text)
        return text


def _encode(entry: Any) -> bytes:
    """One entry's JSON; a value or key msgspec refuses never costs the line."""
    try:
        return _ENCODER.encode(entry)
    except Exception:
        if isinstance(entry, msgspec.Struct):
            entry = msgspec.structs.asdict(entry)
        try:
            return json.dumps(entry, default=str).encode()
        except Exception:  # circular, or a key json refuses too
            return json.dumps(
                {str(k): v if isinstance(v, str) else repr(v) for k, v in entry.items()}
            ).encode()


def _line_struct(fields: tuple[str, ...]) -> type[msgspec.Struct]:
    """A Struct whose fields are the head of every line, then `fields`. Ids that are None are
    left out (`omit_defaults`), as `JsonFormatter.entry` does; the values are always given, and
    a None among them is written (their UNSET default only lets them follow the ids)."""
    head = [(name, Any) for name in _HEAD[:5]]
    ids = [(name, Any, None) for name in _HEAD[5:]]
    values = [(name, Any, _UNSET) for name in fields]
    return msgspec.defstruct("LogLine", [*head, *ids, *values], omit_defaults=True)


class JsonFormatter(logging.Formatter):
    """One JSON object per line. The request and trace ids are the ones the record was logged
    with (captured by `QueueWriter`), else the current context's (a formatter used by a plain
    handler runs in the logging task)."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service
        self._timestamps = _Timestamps()

    def format(self, record: logging.LogRecord) -> str:
        return _encode(self.entry(record)).decode()

    def entry(self, record: logging.LogRecord) -> dict[str, Any]:
        values = record.__dict__
        message = values.get("message")
        entry = self._head(
            record.created,
            record.levelname.lower(),
            record.name,
            message if message is not None else record.getMessage(),
            values.get(_CONTEXT) or current_context(),
        )
        for key, value in values.items():
            if key not in _LOG_RECORD_BUILTINS and not key.startswith("_"):
                entry[key] = value
        if record.exc_text:
            entry["exc"] = record.exc_text
        elif record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return entry

    def line_entries(self, line: Line, items: list[Any]) -> list[msgspec.Struct]:
        """Queued lines of one `Line` (`items`: their time, ids and values, one after the
        other) as the line's Structs: the same keys, in the same order, as `entry` makes for a
        record. Column by column, so that the loops over lines run in C (`map`), not here."""
        width = line.items
        clocks, request_ids, contexts = items[0::width], items[1::width], items[2::width]
        # The lines' clock readings as wall-clock time, at the offset between the two clocks
        # now: lines wait a fraction of a second, far less than the clocks drift apart in it.
        created = map((time.time() - time.perf_counter()).__add__, clocks)
        if "" in request_ids:
            request_ids = [r or None for r in request_ids]
        count = len(clocks)
        trace_ids, span_ids = repeat(None, count), repeat(None, count)
        if any(contexts):  # some line was logged with an OpenTelemetry context: look for spans
            found = [_ids(context) or (None, None) for context in contexts]
            trace_ids, span_ids = (t for t, _ in found), (s for _, s in found)  # type: ignore[assignment]
        constants = (repeat(line.levelname), repeat(self.service), repeat(line.logger.name), repeat(line.msg))
        values: list[Any] = [items[i::width] for i in range(3, width)]
        if line.elapsed is not None:  # a clock reading, written as milliseconds until the line
            since = values[line.elapsed]
            values[line.elapsed] = map(round, map(mul, map(sub, clocks, since), repeat(1000.0)), repeat(2))
        timestamps = map(self._timestamps.format, created)
        return list(map(line.shape, timestamps, *constants, request_ids, trace_ids, span_ids, *values))

    def _head(self, created: float, level: str, logger: str, msg: str, context: Context) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "ts": self._timestamps.format(created),
            "level": level,
            "service": self.service,
            "logger": logger,
            "msg": msg,
        }
        request_id, otel = context
        if request_id:
            entry["request_id"] = request_id
        ids = _ids(otel)
        if ids is not None:
            entry["trace_id"], entry["span_id"] = ids
        return entry


# -- the writer --------------------------------------------------------------------------------

_WRITERS: weakref.WeakSet[QueueWriter] = weakref.WeakSet()
_WRITER: QueueWriter | None = None  # the one configure_logging installed, where `Line`s go


class QueueWriter(logging.Handler):
    """The root handler `configure_logging` installs: queues records (and `Line`s) with their
    context and writes them as JSON lines from a thread of its own (see the module docstring)."""

    def __init__(self, formatter: JsonFormatter, stream: IO[str]) -> None:
        super().__init__()
        self.setFormatter(formatter)
        self.json = formatter
        self.stream = stream
        self.alone = [self]  # the root's handlers when this writer is the only one
        self._pending: collections.deque[Any] = collections.deque()
        self._wake = threading.Event()
        self._write_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = False
        # Queued items past which an append calls `_queued`: WAKE while the thread runs; 0
        # before it started and once closed, so that the next append starts it or writes.
        self.wake_at = 0
        _WRITERS.add(self)

    # -- the caller's side (any thread) ---------------------------------------------------

    def handle(self, record: logging.LogRecord) -> bool:  # type: ignore[override]
        """Queue the record. Overrides `Handler.handle`, which would take the handler's lock for
        an emit that only appends to a thread-safe deque."""
        if self.filters:
            kept = self.filter(record)
            if not kept:
                return False
            if isinstance(kept, logging.LogRecord):
                record = kept
        # What may change or vanish once the caller moves on is taken now: the message (its
        # arguments may be mutable), the traceback's text, and the caller's context.
        try:
            record.message = record.getMessage()
        except Exception:  # arguments that do not fit the format: keep both
            record.message = f"{record.msg!r} % {record.args!r}"
        if record.exc_info and not record.exc_text:
            record.exc_text = self.json.formatException(record.exc_info)
        record.__dict__[_CONTEXT] = current_context()
        self.put(record, urgent=record.levelno >= logging.WARNING)
        return True

    def emit(self, record: logging.LogRecord) -> None:
        self.handle(record)

    def put(self, record: logging.LogRecord, urgent: bool = False) -> None:
        pending = self._pending
        pending.append(record)
        if urgent or len(pending) >= self.wake_at:
            self._queued(urgent)

    def _queued(self, urgent: bool) -> None:
        """After an append that needs more than the append: a first entry (start the thread),
        a full batch or an urgent one (wake it), a writer gone or behind (write here)."""
        if self._thread is None:
            self._start()
        if self._closed or len(self._pending) >= MAX_PENDING:
            self.flush()
        elif urgent or len(self._pending) >= WAKE:
            self._wake.set()

    # -- the writer's side ------------------------------------------------------------------

    def _start(self) -> None:
        with self._write_lock:
            if self._thread is None and not self._closed:
                self._thread = threading.Thread(target=self._run, name="stratus-log-writer", daemon=True)
                self._thread.start()
                self.wake_at = WAKE

    def _run(self) -> None:
        while not self._closed:
            self._wake.wait(FLUSH_INTERVAL)
            self._wake.clear()
            self.flush()

    def flush(self) -> None:
        """Write everything queued so far, in order, before returning."""
        with self._write_lock:
            pending, pop = self._pending, self._pending.popleft
            while pending:
                batch: list[Any] = []
                while pending and len(batch) < BATCH:
                    entry = pop()
                    if type(entry) is not Line:
                        try:
                            batch.append(self.json.entry(entry))
                        except Exception:  # one broken record must not stop the others
                            batch.append({"level": "error", "msg": f"unloggable log record: {entry!r:.200}"})
                        continue
                    # A Line is followed by its items (see Line.log), and usually by more of
                    # the same line: take them all, popping in C.
                    items: list[Any] = []
                    lines = 0
                    while True:
                        items.extend(map(call, repeat(pop, entry.items)))
                        lines += 1
                        if len(batch) + lines >= BATCH or not pending or pending[0] is not entry:
                            break
                        pop()
                    try:
                        batch.extend(self.json.line_entries(entry, items))
                    except Exception:  # a value that does not fit: never lose the lines for it
                        batch.append({"level": "error", "msg": f"unloggable log lines: {items!r:.200}"})
                self._write(batch)

    def _write(self, batch: list[Any]) -> None:
        try:
            data = _ENCODER.encode_lines(batch)
        except Exception:  # some value msgspec refuses: encode one by one, with fallbacks
            data = b"".join(_encode(entry) + b"\n" for entry in batch)
        try:
            buffer = getattr(self.stream, "buffer", None)
            if buffer is not None:
                self.stream.flush()  # text written to the stream directly goes first
                buffer.write(data)
                buffer.flush()
            else:
                self.stream.write(data.decode())
                self.stream.flush()
        except (OSError, ValueError):
            pass  # the stream is gone (closed pipe, closed file): there is nowhere to say so

    def close(self) -> None:
        """Write what is queued and stop the thread; later records are written by their caller."""
        global _WRITER
        if _WRITER is self:
            _WRITER = None
        self._closed = True
        self.wake_at = 0
        self._wake.set()
        self.flush()
        super().close()

    def _after_fork(self) -> None:
        # The child has the queue and locks as they were, but no writer thread.
        self._write_lock = threading.Lock()
        self._wake = threading.Event()
        self._thread = None
        self.wake_at = 0


def _reset_after_fork() -> None:
    for writer in list(_WRITERS):
        writer._after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)


# -- hot lines ---------------------------------------------------------------------------------


class Line:
    """A log line of a fixed shape written on a hot path (the gateway's access line).

    `line.log(*values)`, one value per field, queues the values on the `QueueWriter` that
    `configure_logging` installed: no LogRecord, no dict, nothing encoded by the caller. The
    JSON line is the one `logger.log(level, msg, extra=dict(zip(fields, values)))` would write.
    Check `enabled()` (the logger's level) before computing the values; the line then goes to
    the writer whenever the writer is the root logger's only handler, without a look at the
    handlers and filters of the loggers in between (configure_logging installs none). Otherwise
    (a test's handler on the root, no writer installed) it is logged through `logging`.

    `log` is a plain function made for the line's number of fields: calling it costs a quarter
    of what calling a `__call__` with `*values` costs, which on a 13 µs request is a percent.
    """

    __slots__ = ("elapsed", "fields", "items", "level", "levelname", "log", "logger", "msg", "shape")

    def __init__(
        self,
        logger: str,
        msg: str,
        fields: tuple[str, ...],
        level: int = logging.INFO,
        *,
        elapsed: str | None = None,
    ) -> None:
        """`elapsed` names a field whose value is given as a `time.perf_counter()` reading and
        written as the milliseconds (two decimals) from it to the moment of `log`: the caller
        passes when it started, and the subtraction is done off its path."""
        if set(fields) & set(_HEAD) or len(set(fields)) != len(fields):
            raise ValueError(f"a Line's fields must be distinct and none of {_HEAD}: {fields}")
        if elapsed is not None and elapsed not in fields:
            raise ValueError(f"elapsed names {elapsed!r}, which is not one of the fields {fields}")
        self.elapsed = None if elapsed is None else fields.index(elapsed)
        self.logger = logging.getLogger(logger)
        self.msg = msg
        self.fields = fields
        self.level = level
        self.levelname = logging.getLevelName(level).lower()
        self.shape = _line_struct(fields)
        self.items = 3 + len(fields)  # what follows the line in the queue: time, ids, values
        self.log: Callable[..., None] = _log_function(self)

    def enabled(self) -> bool:
        return self.logger.isEnabledFor(self.level)

    def logged(self, values: tuple[Any, ...]) -> None:
        """The line through `logging`, where the writer would not be its only handler."""
        extra = dict(zip(self.fields, values, strict=True))
        if self.elapsed is not None:
            field = self.fields[self.elapsed]
            extra[field] = round((_clock() - extra[field]) * 1000, 2)
        self.logger.log(self.level, self.msg, extra=extra)


# A Line's `log`, for its number of values. The line and its items go into the queue as they
# are, in one (atomic) extend: a tuple per line waiting there would be an object the garbage
# collector counts, and a few hundred of them make it run on a path that otherwise frees all
# it allocates (at 10,000 lines a second the gateway then ran a full collection every few
# seconds). Module globals (`_WRITER`, `_ROOT`, …) are read when it runs.
_LOG_FUNCTION = """
def make(line):
    def log({args}):
        writer = _WRITER
        if writer is not None and _ROOT.handlers == writer.alone:
            pending = writer._pending
            pending.extend((line, _clock(), _request_id(), _otel_current(), {args}))
            if len(pending) >= writer.wake_at:
                writer._queued(False)
        else:
            line.logged(({args},))
    return log
"""


def _log_function(line: Line) -> Callable[..., None]:
    args = ", ".join(f"v{i}" for i in range(len(line.fields)))
    namespace: dict[str, Any] = {}
    exec(_LOG_FUNCTION.format(args=args), globals(), namespace)  # noqa: S102 - our own template
    return namespace["make"](line)  # type: ignore[no-any-return]


def configure_logging(service: str, stream: IO[str] | None = None) -> QueueWriter:
    """JSON lines on `stream` (default: stderr) at `STRATUS_LOG_LEVEL` (default INFO), written
    by a `QueueWriter`; replaces the root logger's handlers."""
    # Where a call came from, and its thread and process, are not in our lines: not looking
    # them up makes every LogRecord cheaper (the logging HOWTO's "Optimization" section).
    logging._srcfile = None  # type: ignore[attr-defined]
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    writer = QueueWriter(JsonFormatter(service), stream if stream is not None else sys.stderr)
    for old in _ROOT.handlers[:]:
        _ROOT.removeHandler(old)
        if isinstance(old, QueueWriter):
            old.close()
    _ROOT.addHandler(writer)
    global _WRITER
    _WRITER = writer
    _ROOT.setLevel(os.environ.get("STRATUS_LOG_LEVEL", "INFO").upper())
    # Access logs would repeat what the gateway logs itself, without the request id.
    logging.getLogger("uvicorn.access").disabled = True
    return writer
