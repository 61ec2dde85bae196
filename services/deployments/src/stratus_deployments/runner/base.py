"""The runner's contract: what the deployments service asks of whatever builds and serves apps.

The deployments service owns the lifecycle (its events, its log, what is current); a runner owns
the machinery (a checkout, a build, processes or pods, the route an environment's URL takes).
The service drives one deployment at a time per task, in this order:

    workspace = await runner.prepare(spec, log)           # fetch the code at spec.ref / spec.sha
    artifact  = await runner.build(workspace, log)        # run spec.build_command (may be empty)
    instance  = await runner.start(artifact, spec, log)   # start spec.start_command with PORT
    await runner.health(instance, spec, log)              # until spec.health_check_path answers 2xx
    url       = await runner.switch(instance)             # route the environment to it; its URL
    await runner.stop(previous)                           # the instance it replaced, after the switch

Rules every runner keeps:

* Every coroutine is cancellable: cancelling one (a `cancel` of the deployment, a shutdown)
  stops what it started (a build's processes) before it returns.
* Failures the user caused or can fix raise `RunnerError(code, reason)` with a reason a person
  can read: `repo_unreachable`, `ref_not_found`, `build_failed`, `build_timeout`,
  `start_failed`, `health_check_failed`. Nothing else is expected.
* `log(stream, text)` is called on the event loop with one line at a time (`stdout`, `stderr`
  from the user's commands, `system` for the runner's own words). It never blocks; the service
  keeps the lines durably.
* Variables (`spec.variables`, secrets decrypted) reach only the child processes' environments:
  never a log line, a file or an exception's text.
* An artifact outlives its instance: `artifact(deployment_id)` finds a built deployment's
  artifact again (a rollback starts it without building), until `discard` removes it.
* `recover()` runs once at start-up, before anything else: it kills what an earlier process left
  half-done (a build's processes) and returns the instances still running, so that the service
  can adopt them (`adopt`) instead of restarting them.

`LocalRunner` (`stratus_deployments.runner.local`) is the embedded default: git checkouts and
supervised local processes behind a small TCP proxy per environment. A Kubernetes runner would
map the same calls onto an image build, a Deployment and a Service per environment.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal, Protocol

Stream = Literal["stdout", "stderr", "system"]
Log = Callable[[Stream, str], None]


class RunnerError(Exception):
    """A deployment cannot go on, for a reason the user can read (`code`, `reason`)."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


@dataclass(frozen=True)
class Spec:
    """What to build and run: fixed when the deployment was made."""

    deployment_id: str
    project_id: str
    env_id: str
    repo_url: str  # a git URL; file:// URLs and local paths too
    ref: str | None  # a branch or tag; None when `sha` is given
    sha: str | None  # a commit; when given, `ref` is only a label
    build_command: str  # run by /bin/sh in the checkout; "" builds nothing
    start_command: str  # run by /bin/sh in the artifact with PORT set
    health_check_path: str = "/"
    variables: Mapping[str, str] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class Workspace:
    spec: Spec
    path: str
    sha: str  # the commit checked out


@dataclass(frozen=True)
class Artifact:
    deployment_id: str
    path: str
    sha: str


@dataclass(frozen=True)
class Instance:
    """A running copy of an artifact, for one environment."""

    deployment_id: str
    env_id: str
    url: str  # where this instance itself answers (the environment's URL is `switch`'s)
    # Runner-private facts (a pid, a port, a pod name) that let it find the instance again.
    handle: Mapping[str, str] = field(default_factory=dict)


class Runner(Protocol):
    async def recover(self) -> list[Instance]: ...

    async def prepare(self, spec: Spec, log: Log) -> Workspace: ...

    async def build(self, workspace: Workspace, log: Log) -> Artifact: ...

    def artifact(self, deployment_id: str) -> Artifact | None: ...

    async def start(self, artifact: Artifact, spec: Spec, log: Log) -> Instance: ...

    async def health(self, instance: Instance, spec: Spec, log: Log) -> None: ...

    async def switch(self, instance: Instance) -> str: ...

    async def adopt(self, instance: Instance, log: Log) -> None: ...

    async def stop(self, instance: Instance) -> None: ...

    async def discard(self, deployment_id: str) -> None: ...

    async def close(self) -> None: ...
