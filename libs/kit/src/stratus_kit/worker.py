"""Worker threads that take work in batches: whatever queued while a batch ran is the next batch.

This is the one hop between the event loop and the synchronous store. Handing work over costs a
queue put and, when the thread sleeps, a wake-up; handing results back costs one
`call_soon_threadsafe` per batch (`Mailbox`), not one per request. An idle worker starts on a
single job at once, so batching adds no delay: it only forms while a batch is already running.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger("stratus.kit.worker")

MAX_BATCH = 256
_STOP = object()


class Worker:
    def __init__(self, name: str, run: Callable[[list[Any]], None], *, max_batch: int = MAX_BATCH) -> None:
        self.name = name
        self._run = run
        self._max = max_batch
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def submit(self, job: Any) -> None:
        self._queue.put(job)

    def stop(self, timeout: float = 10.0) -> None:
        """Finish what is queued, then end the thread."""
        self._queue.put(_STOP)
        self._thread.join(timeout)

    def _loop(self) -> None:
        get, get_nowait, run, most = self._queue.get, self._queue.get_nowait, self._run, self._max
        while True:
            job = get()
            if job is _STOP:
                return
            batch = [job]
            stopping = False
            while len(batch) < most:
                try:
                    job = get_nowait()
                except queue.Empty:
                    break
                if job is _STOP:
                    stopping = True
                    break
                batch.append(job)
            try:
                run(batch)
            except BaseException:
                # `run` answers every job itself; reaching here is a bug in it, not in a job.
                log.exception("worker batch failed", extra={"worker": self.name})
            if stopping:
                return


class Mailbox:
    """Results posted from worker threads, delivered on the event loop in batches."""

    def __init__(self, loop: asyncio.AbstractEventLoop, deliver: Callable[[list[Any]], None]) -> None:
        self._loop = loop
        self._deliver = deliver
        self._items: list[Any] = []
        self._lock = threading.Lock()

    def post(self, item: Any) -> None:
        with self._lock:
            self._items.append(item)
            first = len(self._items) == 1
        if first:
            # RuntimeError: the loop has closed; the service is gone, and so is whoever waited.
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._drain)

    def _drain(self) -> None:
        with self._lock:
            items, self._items = self._items, []
        if items:
            self._deliver(items)
