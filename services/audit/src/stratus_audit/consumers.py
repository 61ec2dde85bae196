"""The audit consumer: JetStream `EVENTS` → the audit read models (the event feed and the audit
log), through this replica's durable consumer (`audit`, `audit-<STRATUS_REPLICA_ID>`; the kit's
pull consumer), which the service must have caught up with before it answers a query.

Each fetched batch is written to the read models in one transaction per mode file, and only then
acked: a crash in between redelivers the batch, and the event id (the primary key) makes the
second write a no-op. On start the consumer is reconciled with the read models: when the durable
consumer has acked past what they hold (a file was deleted or lost), it is recreated to start
after their position, so they re-read the stream; a recreated `EVENTS` stream (new creation
time) is re-read from its start. The stream's retention is the limit. After each batch is
stored, a core NATS signal per account and mode in it (`events_subject`) wakes the gateway's live
feeds, which then read what is new.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import msgspec
from nats.aio.msg import Msg

from stratus_audit.read_model import AuditReadModel, Row, to_row
from stratus_bus import Bus
from stratus_bus.config import replica_id
from stratus_contracts import subjects
from stratus_contracts.audit import consumer_name, events_subject, is_audited
from stratus_contracts.events import Event
from stratus_kit import Consumer, Local

log = logging.getLogger("stratus.audit")

STREAM = subjects.EVENTS_STREAM


class AuditConsumer(Consumer):
    def __init__(
        self,
        bus: Bus,
        models: dict[str, AuditReadModel],
        *,
        batch: int = 256,
        fetch_timeout: float = 1.0,
        ack_wait: float = 30.0,
        replica: str | None = None,
    ) -> None:
        super().__init__(
            bus,
            durable=consumer_name(replica),
            subject=subjects.EVENTS_SUBJECTS,
            handle=self._handle,
            description="audit log read model (stratus-audit)",
            position=self.position,
            batch=batch,
            fetch_timeout=fetch_timeout,
            ack_wait=ack_wait,
            ready_when_caught_up=True,
        )
        self.models = models
        self.stream_created: str | None = None
        self._decoder = msgspec.json.Decoder(Event)

    async def position(self) -> int:
        """The stream sequence every mode's read model has handled."""
        return min([await asyncio.to_thread(m.position) for m in self.models.values()])

    async def ensure(self) -> None:
        info = await self.js.stream_info(STREAM)
        self.stream_created = info.created.isoformat() if info.created else None
        for model in self.models.values():
            known = await asyncio.to_thread(model.stream_created)
            recreated = self.stream_created is not None and known not in (None, self.stream_created)
            if recreated or await asyncio.to_thread(model.position) > info.state.last_seq:
                # A new stream numbers from 1 again; read it all (event ids dedupe the overlap).
                log.warning("EVENTS stream was recreated; re-reading it", extra={"mode": model.mode})
                await asyncio.to_thread(model.reset_position, self.stream_created)
        await super().ensure()

    def rows(self, msgs: list[Msg]) -> tuple[dict[str, list[Row]], int]:
        """The rows of a batch (every event, marked whether it is audited), by mode, and the
        highest stream sequence in it."""
        rows: dict[str, list[Row]] = {mode: [] for mode in self.models}
        position = 0
        for msg in msgs:
            seq = msg.metadata.sequence.stream
            position = max(position, seq)
            try:
                event = self._decoder.decode(msg.data)
            except msgspec.DecodeError:
                # Not a public event: nothing to audit, and redelivering it would not help.
                log.warning("skipping an undecodable message", extra={"subject": msg.subject, "seq": seq})
                continue
            if event.mode in rows:
                rows[event.mode].append(to_row(event, seq, audited=is_audited(event.type)))
        return rows, position

    def write(self, rows: dict[str, list[Row]], position: int) -> int:
        return sum(m.write(rows[mode], position, self.stream_created) for mode, m in self.models.items())

    async def _handle(self, msgs: list[Msg]) -> list[bool]:
        rows, position = self.rows(msgs)
        await asyncio.to_thread(self.write, rows, position)
        for mode, account in {(mode, row.account) for mode, batch in rows.items() for row in batch}:
            with contextlib.suppress(Exception):  # a missed signal only delays a follower's poll
                await self.bus.nc.publish(events_subject(mode, account), b"")
        return [True] * len(msgs)

    async def caught_up(self, target: int, timeout: float) -> None:
        """Wait until every read model has handled the stream up to sequence `target`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while await self.position() < target:
            self.progress.clear()
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"audit read model did not reach stream sequence {target}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.progress.wait(), timeout=min(remaining, self.fetch_timeout))

    async def rebuild(self, timeout: float) -> dict[str, int]:
        """Drop every read model and the durable consumer, then re-read the whole stream."""
        async with self.lock:
            await self.unbind()
            for model in self.models.values():
                await asyncio.to_thread(model.drop)
            await self.delete()
            target = (await self.js.stream_info(STREAM)).state.last_seq
            await self.ensure()
        await self.caught_up(target, timeout)
        return {mode: await asyncio.to_thread(m.count) for mode, m in self.models.items()}


def audit_consumer(bus: Bus, local: Local) -> AuditConsumer:
    models: dict[str, Any] = {name: part.read_models["audit"] for name, part in local.partitions.items()}
    return AuditConsumer(bus, models, replica=replica_id())
