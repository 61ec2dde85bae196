"""The orchestrator: the deployments service's background task that drives each deployment
through a runner and reports every step back as a command, so the event log says what happened.

It hears of new, restarted and canceled deployments from the partitions' commits (a watcher, so
no polling in the common case; a slow poll covers what a watcher cannot see), runs at most one
deployment per environment at a time (in the order they were made) and `STRATUS_DEPLOY_CONCURRENCY`
in all, and keeps each deployment's log lines, batched, through `AppendLog`.

On start-up it asks the runner what survived the previous process (`recover`): a deployment
that was building or deploying is queued again (or failed after `domain.MAX_ATTEMPTS`), an app
that still runs is adopted, and one that is not running is started again from its artifact. So a
`kill -9` of the service never leaves a deployment `building` for good. A clean stop (SIGTERM)
stops the apps it serves; a crash leaves them running.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
import uuid
from collections.abc import Callable
from typing import Any

from stratus_bus import Bus
from stratus_bus.bus import RemoteError, ServiceTimeout, ServiceUnavailable
from stratus_bus.config import data_dir
from stratus_contracts import deployments as c
from stratus_contracts import envs
from stratus_contracts.errors import DomainError
from stratus_contracts.ids import encode_id
from stratus_deployments import domain
from stratus_deployments import handlers as h
from stratus_deployments.runner.base import Instance, Runner, RunnerError, Spec, Stream
from stratus_kit import Local

log = logging.getLogger("stratus.deployments")

FLUSH_EVERY = 0.1  # seconds: how long a log line waits to be kept, at most (plus the commit)
FLUSH_LINES = 2000  # or this many lines, whichever comes first
POLL = 5.0  # seconds between looks for work the watchers could not announce
RECOVER_WAIT = 60.0  # seconds a restart waits for the services an app needs (projects) to answer


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    return int(raw) if raw else default


class LogWriter:
    """One deployment's log lines on their way to the event store: `write` never blocks (the
    runner calls it on the event loop); a task commits them in batches, in order, and then says
    "new lines" on the deployment's log subject for live followers."""

    def __init__(self, orchestrator: Orchestrator, mode: str, deployment_id: uuid.UUID, phase: str) -> None:
        self.o = orchestrator
        self.mode = mode
        self.deployment_id = deployment_id
        self.phase = phase
        self.pending: list[tuple[int, str, str]] = []
        self._wake = asyncio.Event()
        self._closed = False
        self._lock = asyncio.Lock()  # one commit of lines at a time, so they keep their order
        self._task = asyncio.create_task(self._run(), name=f"log-{deployment_id}")

    def write(self, stream: Stream, text: str) -> None:
        if self._closed:
            return
        self.pending.append((time.time_ns() // 1000, stream, text))
        if len(self.pending) >= FLUSH_LINES or not self._wake.is_set():
            self._wake.set()

    def system(self, text: str) -> None:
        self.write("system", text)

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            if not self._closed:
                await asyncio.sleep(FLUSH_EVERY)  # gather a batch (a close flushes at once)
            self._wake.clear()
            await self._flush()
            if self._closed and not self.pending:
                return

    async def flush(self) -> None:
        """Wait until every line written so far is kept (before a status moves on, so that a
        reader who sees the new status finds every line that led to it)."""
        await self._flush()

    async def _flush(self, close: bool = False) -> None:
        async with self._lock:
            await self._commit(close)

    async def _commit(self, close: bool) -> None:
        while self.pending or close:
            batch, self.pending = self.pending[:FLUSH_LINES], self.pending[FLUSH_LINES:]
            limit = self.o.build_limit if self.phase == "build" else self.o.runtime_limit
            message = h.AppendLog(
                mode=self.mode,  # type: ignore[arg-type]
                deployment_id=self.deployment_id,
                phase=self.phase,
                lines=batch,
                limit=limit,
                close=close and not self.pending,
            )
            try:
                await self.o.local.ask(message)
            except Exception:
                log.exception("could not keep %d log lines of %s", len(batch), self.deployment_id)
                self.pending[:0] = batch  # keep them for the next try
                await asyncio.sleep(1.0)
                continue
            close = False
            await self.o.signal(self.mode, self.deployment_id)

    async def close(self) -> None:
        """Keep everything written so far, and the phase's closing line if lines were cut."""
        self._closed = True
        self._wake.set()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        await self._flush(close=True)


class Orchestrator:
    def __init__(self, bus: Bus, local: Local, runner: Runner) -> None:
        self.bus = bus
        self.local = local
        self.runner = runner
        self.concurrency = max(1, _env_int("STRATUS_DEPLOY_CONCURRENCY", 2))
        self.build_limit = _env_int("STRATUS_BUILD_LOG_LIMIT", 100_000)
        self.runtime_limit = _env_int("STRATUS_RUNTIME_LOG_LIMIT", 100_000)
        # The builds under way: deployment id → (its mode, its task)
        self.running: dict[uuid.UUID, tuple[str, asyncio.Task[None]]] = {}
        # What serves each environment: (mode, env id) → (deployment id, instance, its log)
        self.serving: dict[tuple[str, str], tuple[uuid.UUID, Instance, LogWriter]] = {}
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- hearing of work ---------------------------------------------------------------------

    def watch(self, entries: list[tuple[int, Any]]) -> None:
        """A partition's commit (on its writer thread): wake for new work, stop canceled work."""
        loop = self._loop
        if loop is None:
            return
        for _, event in entries:
            if isinstance(event, domain.DeploymentCreated | domain.DeploymentRestarted):
                loop.call_soon_threadsafe(self._wake.set)
            elif isinstance(event, domain.DeploymentCanceled):
                loop.call_soon_threadsafe(self._cancel, event.originator_id)

    def _cancel(self, deployment_id: uuid.UUID) -> None:
        running = self.running.get(deployment_id)
        if running is not None:
            running[1].cancel()

    async def signal(self, mode: str, deployment_id: uuid.UUID) -> None:
        with contextlib.suppress(Exception):
            await self.bus.nc.publish(c.log_subject(mode, encode_id("dep", deployment_id)), b"")

    # -- the task ----------------------------------------------------------------------------

    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        for part in self.local.partitions.values():
            part.watchers.append(self.watch)
        try:
            await self._recover()
            while True:
                await self._dispatch()
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(POLL):
                        await self._wake.wait()
        finally:
            for part in self.local.partitions.values():
                with contextlib.suppress(ValueError):
                    part.watchers.remove(self.watch)
            tasks = [task for _, task in self.running.values()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            # A clean stop stops the apps too: their environments' proxies stop with this process
            # anyway, and the next start serves them again from their artifacts. (After a crash
            # they keep running, and the next start adopts them.)
            for _, instance, writer in list(self.serving.values()):
                await self._stop(instance, writer)
            # …and any the stop caught half-way (an app being started again when it came).
            with contextlib.suppress(Exception):
                for left in await self.runner.recover():
                    await self.runner.stop(left)
            await self.runner.close()

    async def _recover(self) -> None:
        instances = {i.deployment_id: i for i in await self.runner.recover()}
        for mode in self.local.partitions:
            for deployment_id, status, _ in await self.local.ask(h.Pending(mode=mode)):
                if status in ("building", "deploying"):
                    writer = LogWriter(self, mode, deployment_id, "build")
                    writer.system("The deployments service restarted during this deployment.")
                    await writer.close()
                    with contextlib.suppress(DomainError):
                        await self.local.ask(h.MarkRestarted(mode=mode, deployment_id=deployment_id))
            for deployment_id in await self.local.ask(h.Serving(mode=mode)):
                public = encode_id("dep", deployment_id)
                found: domain.Deployment | None = await self.local.ask(
                    h.Load(mode=mode, deployment_id=deployment_id)
                )
                if found is None:
                    continue
                writer = LogWriter(self, mode, deployment_id, "runtime")
                instance = instances.pop(public, None)
                try:
                    if instance is not None:
                        await self.runner.adopt(instance, writer.write)
                    else:
                        writer.system("The app was not running after a restart: starting it again.")
                        instance = await self._serve_again_soon(mode, found, writer)
                except (RunnerError, RemoteError, ServiceTimeout, ServiceUnavailable) as exc:
                    writer.system(f"Could not serve the app again: {_reason(exc)}")
                    await writer.close()
                    continue
                self.serving[(mode, found.env_id)] = (deployment_id, instance, writer)
        for orphan in instances.values():  # an app no ready deployment owns any more
            with contextlib.suppress(Exception):
                await self.runner.stop(orphan)

    async def _serve_again_soon(self, mode: str, found: domain.Deployment, writer: LogWriter) -> Instance:
        """`_serve_again`, waiting out services that are not up yet: a whole stack starting at once
        may start this one before projects, which holds the app's variables."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + RECOVER_WAIT
        delay = 0.2
        while True:
            try:
                return await self._serve_again(mode, found, writer)
            except (ServiceUnavailable, ServiceTimeout):
                if loop.time() + delay > deadline:
                    raise
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _serve_again(self, mode: str, found: domain.Deployment, writer: LogWriter) -> Instance:
        artifact = self.runner.artifact(encode_id("dep", found.artifact_of or found.id))
        if artifact is None:
            raise RunnerError("artifact_gone", "The built artifact is gone.")
        spec = await self._spec(mode, found)
        instance = await self.runner.start(artifact, spec, writer.write)
        await self.runner.health(instance, spec, writer.write)
        await self.runner.switch(instance)
        return instance

    async def _dispatch(self) -> None:
        """Start the oldest unfinished deployment of each environment, if it waits and a slot is
        free: a newer one waits for the one before it, so they become ready in creation order."""
        for mode in self.local.partitions:
            seen: set[str] = set()
            for deployment_id, status, env_id in await self.local.ask(h.Pending(mode=mode)):
                if env_id in seen:
                    continue
                seen.add(env_id)
                if status != "queued" or deployment_id in self.running:
                    continue
                if len(self.running) >= self.concurrency:
                    return
                task = asyncio.create_task(self._deploy(mode, deployment_id), name=f"deploy-{deployment_id}")
                self.running[deployment_id] = (mode, task)

                def finished(_: asyncio.Task[None], deployment_id: uuid.UUID = deployment_id) -> None:
                    self.running.pop(deployment_id, None)
                    self._wake.set()

                task.add_done_callback(finished)

    async def drop_mode(self, mode: str) -> None:
        """The sandbox reset: stop `mode`'s builds and apps; its deployments are gone with its
        partition."""
        builds = [task for of, task in self.running.values() if of == mode]
        for task in builds:
            task.cancel()
        await asyncio.gather(*builds, return_exceptions=True)
        for key in [k for k in self.serving if k[0] == mode]:
            _, instance, writer = self.serving.pop(key)
            await self._stop(instance, writer)

    # -- one deployment ----------------------------------------------------------------------

    async def _spec(self, mode: str, found: domain.Deployment) -> Spec:
        variables = await self.bus.call(
            envs.GetRuntimeVariables(
                account=found.account,
                mode=mode,  # type: ignore[arg-type]
                env_id=found.env_id,
                config_version=found.config_version,
                deployment_id=encode_id("dep", found.id),
                actor=found.actor,
            )
        )
        settings = found.settings
        return Spec(
            deployment_id=encode_id("dep", found.id),
            project_id=found.project_id,
            env_id=found.env_id,
            repo_url=settings.repo_url or "",
            ref=found.ref,
            sha=found.sha,
            build_command=settings.build_command or "",
            start_command=settings.start_command or "",
            health_check_path=settings.health_check_path or "/",
            variables=variables,
        )

    async def _deploy(self, mode: str, deployment_id: uuid.UUID) -> None:
        ask = self.local.ask
        found: domain.Deployment | None = await ask(h.Load(mode=mode, deployment_id=deployment_id))
        if found is None or found.status != "queued":
            return
        public = encode_id("dep", deployment_id)
        writer = LogWriter(self, mode, deployment_id, "build")
        instance: Instance | None = None
        runtime: LogWriter | None = None
        report = {"mode": mode, "deployment_id": deployment_id}
        try:
            spec = await self._spec(mode, found)
            if found.rollback_of is not None:
                source = encode_id("dep", found.rollback_of)
                artifact = self.runner.artifact(encode_id("dep", found.artifact_of or found.rollback_of))
                if artifact is None:
                    raise RunnerError(
                        "artifact_gone", f"The artifact of {source} is gone: deploy its sha again."
                    )
                writer.system(f"Rolling back to {source} ({(found.sha or '')[:12]}): its artifact, no build.")
                await ask(h.MarkBuilding(**report, sha=found.sha or artifact.sha))
            else:
                workspace = await self.runner.prepare(spec, writer.write)
                await ask(h.MarkBuilding(**report, sha=workspace.sha))
                artifact = await self.runner.build(workspace, writer.write)
            await writer.flush()  # the build's lines before the app's
            await ask(h.MarkDeploying(**report))
            runtime = LogWriter(self, mode, deployment_id, "runtime")
            writer.system("Starting the app.")
            instance = await self.runner.start(artifact, spec, runtime.write)
            await self.runner.health(instance, spec, writer.write)
            now = await ask(h.Load(**report))
            if now is None or now.status != "deploying":
                raise asyncio.CancelledError
            url = await self.runner.switch(instance)
            writer.system(f"Ready: serving {found.env_name} at {url}.")
            await writer.flush()
            await ask(h.MarkReady(**report, url=url))
        except RunnerError as exc:
            writer.system(f"Failed: {exc.reason}")
            await self._stop(instance, runtime)
            await writer.flush()
            await self._report_failure(mode, deployment_id, exc.code, exc.reason)
            instance = None
        except (DomainError, RemoteError) as exc:
            # The deployment moved on under us (canceled) or a service refused: stop what we started.
            await self._stop(instance, runtime)
            instance = None
            if isinstance(exc, RemoteError):
                writer.system(f"Failed: {exc.error.message}")
                await writer.flush()
                await self._report_failure(mode, deployment_id, exc.error.code, exc.error.message)
        except asyncio.CancelledError:
            await self._stop(instance, runtime)
            instance = None
            current = await ask(h.Load(**report))
            if current is not None and current.status == "canceled":
                writer.system("Canceled.")
            else:
                raise
        except Exception as exc:
            log.exception("deployment %s failed unexpectedly", public)
            await self._stop(instance, runtime)
            instance = None
            writer.system("Failed: an internal error (the service's log has the details).")
            await writer.flush()
            await self._report_failure(
                mode, deployment_id, "internal_error", f"Internal error ({type(exc).__name__})."
            )
        finally:
            await writer.close()
        if instance is not None and runtime is not None:
            previous = self.serving.get((mode, found.env_id))
            self.serving[(mode, found.env_id)] = (deployment_id, instance, runtime)
            if previous is not None:
                _, old_instance, old_writer = previous
                await self._stop(old_instance, old_writer)

    async def _report_failure(self, mode: str, deployment_id: uuid.UUID, code: str, reason: str) -> None:
        with contextlib.suppress(DomainError):
            await self.local.ask(
                h.MarkFailed(mode=mode, deployment_id=deployment_id, code=code, reason=reason)
            )  # type: ignore[arg-type]

    async def _stop(self, instance: Instance | None, writer: LogWriter | None) -> None:
        if instance is not None:
            try:
                await self.runner.stop(instance)
            except Exception:
                log.exception("could not stop instance of %s", instance.deployment_id)
        if writer is not None:
            await writer.close()


def _reason(exc: BaseException) -> str:
    if isinstance(exc, RunnerError):
        return exc.reason
    if isinstance(exc, RemoteError):
        return exc.error.message
    return type(exc).__name__


def task(make_runner: Callable[[], Runner]) -> Callable[[Bus, Local], Any]:
    async def orchestrate(bus: Bus, local: Local) -> None:
        orchestrator = local.deps["orchestrator"] = Orchestrator(bus, local, make_runner())
        try:
            await orchestrator.run()
        finally:
            local.deps.pop("orchestrator", None)

    return orchestrate


def local_runner() -> Runner:
    from stratus_deployments.runner.local import LocalRunner

    return LocalRunner.from_env(data_dir())


async def reset_sandbox(local: Local) -> None:
    """`Service.on_sandbox_reset`: the replica that runs the orchestrator stops the test-mode
    builds and apps (on the others there is nothing to stop)."""
    orchestrator = local.deps.get("orchestrator")
    if orchestrator is not None:
        await orchestrator.drop_mode("test")
