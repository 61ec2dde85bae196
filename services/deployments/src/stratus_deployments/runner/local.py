"""The local runner: git checkouts, builds and supervised processes on this machine.

Everything it keeps lives under its root, so that a later process (the service restarted, or
`kill -9`ed and started again) finds it:

    workspaces/<dep>/          a checkout being built
    artifacts/<dep>/           a built checkout (kept for rollbacks until `discard`)
    artifacts/<dep>.json       its commit
    builds/<dep>.json          the process group of a build while it runs (`recover` kills it)
    instances/<dep>.json       a running instance: pid, group, port, log offsets (`recover`)
    instances/<dep>/stdout.log, stderr.log    its output (files, so it outlives the service)
    envs/<env_id>.json         an environment's proxy port and the deployment it points at

An instance writes to files rather than pipes and runs in a session of its own: it survives
the service's process, and a tail task turns what it writes into log lines, from offsets
kept in its record so that `adopt` goes on where the previous process stopped (a line may be
delivered twice after a crash, never lost). No file here holds a variable's value.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from stratus_deployments.runner import procs
from stratus_deployments.runner.base import Artifact, Instance, Log, RunnerError, Spec, Stream, Workspace
from stratus_deployments.runner.proxy import Proxy

TAIL_INTERVAL = 0.1
TAIL_BUDGET = 1024 * 1024  # bytes per stream per round, so one chatty instance cannot hog the loop
SAVE_EVERY = 1.0  # seconds between writes of an instance's log offsets
PROBE_TIMEOUT = 5.0
STREAMS: tuple[Stream, Stream] = ("stdout", "stderr")
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
_SHA = re.compile(r"[0-9a-fA-F]{4,64}")


@dataclass
class _Live:
    """An instance this process follows: its record, and where its tail has read to."""

    record: dict[str, Any]
    log: Log
    popen: subprocess.Popen[bytes] | None = None  # None for an adopted instance (not our child)
    task: asyncio.Task[None] | None = None
    pos: dict[str, int] = field(default_factory=dict)
    lines: dict[str, procs.Lines] = field(default_factory=dict)
    saved_at: float = 0.0
    dirty: bool = False
    stopping: bool = False


class LocalRunner:
    def __init__(
        self,
        root: Path,
        *,
        build_timeout: float = 600.0,
        health_timeout: float = 60.0,
        stop_grace: float = 10.0,
        host: str = "127.0.0.1",
    ) -> None:
        self.root = Path(root)
        self.build_timeout = build_timeout
        self.health_timeout = health_timeout
        self.stop_grace = stop_grace
        self.host = host
        self._workspaces = self.root / "workspaces"
        self._artifacts = self.root / "artifacts"
        self._builds = self.root / "builds"
        self._instances = self.root / "instances"
        self._envs = self.root / "envs"
        for path in (self._workspaces, self._artifacts, self._builds, self._instances, self._envs):
            path.mkdir(parents=True, exist_ok=True)
        self._live: dict[str, _Live] = {}
        self._proxies: dict[str, Proxy] = {}
        self._proxy_lock = asyncio.Lock()

    @classmethod
    def from_env(cls, data_dir: Path) -> LocalRunner:
        """`$STRATUS_DATA_DIR/runner`, with STRATUS_BUILD_TIMEOUT and STRATUS_HEALTH_TIMEOUT (s)."""
        return cls(
            Path(data_dir) / "runner",
            build_timeout=_seconds("STRATUS_BUILD_TIMEOUT", 600.0),
            health_timeout=_seconds("STRATUS_HEALTH_TIMEOUT", 60.0),
        )

    # -- start-up ---------------------------------------------------------------------------

    async def recover(self) -> list[Instance]:
        for marker in sorted(self._builds.glob("*.json")):
            record = _read_json(marker)
            if record is not None:
                procs.kill_leftover(int(record["pgid"]), record.get("identity"))
            marker.unlink(missing_ok=True)
        # A workspace becomes an artifact when its build succeeds: any left is half-done.
        for path in list(self._workspaces.iterdir()):
            await _remove(path)
        found = []
        for path in sorted(self._instances.glob("*.json")):
            record = _read_json(path)
            if record is not None and procs.alive(int(record["pid"]), record.get("identity")):
                found.append(self._instance(record))
                continue
            if record is not None:
                procs.kill_leftover(int(record["pgid"]), record.get("identity"))  # its children too
            path.unlink(missing_ok=True)
            await _remove(self._instances / path.stem)
        return found

    # -- code and build ---------------------------------------------------------------------

    async def prepare(self, spec: Spec, log: Log) -> Workspace:
        dep = _checked(spec.deployment_id)
        _checked(spec.env_id)
        path = self._workspaces / dep
        await _remove(path)
        shown = _redact(spec.repo_url)
        if spec.sha:
            label = spec.sha[:12] + (f" ({spec.ref})" if spec.ref else "")
        else:
            label = spec.ref or "its default branch"
        log("system", f"Cloning {shown} at {label}")
        try:
            code, err = await self._git("clone", "--no-checkout", "--quiet", "--", spec.repo_url, str(path))
            if code != 0:
                raise RunnerError("repo_unreachable", f"Could not clone {shown}: {_last(err, spec.repo_url)}")
            sha = await self._resolve(path, spec)
            code, err = await self._git("checkout", "--quiet", "--detach", sha, cwd=path)
            if code != 0:
                reason = f"Could not check out {sha[:12]}: {_last(err, spec.repo_url)}"
                raise RunnerError("ref_not_found", reason)
        except TimeoutError:
            shutil.rmtree(path, ignore_errors=True)
            raise RunnerError(
                "repo_unreachable", f"Cloning {shown} took longer than {_fmt(self.build_timeout)}."
            ) from None
        except BaseException:
            shutil.rmtree(path, ignore_errors=True)
            raise
        log("system", f"Checked out {sha[:7]}")
        return Workspace(spec=spec, path=str(path), sha=sha)

    async def _resolve(self, checkout: Path, spec: Spec) -> str:
        shown = _redact(spec.repo_url)
        if spec.sha:
            missing = f"No commit {spec.sha} in {shown}."
            candidates = [spec.sha] if _SHA.fullmatch(spec.sha) else []
        elif spec.ref:
            missing = f"No branch or tag {spec.ref!r} in {shown}."
            ref = spec.ref.removeprefix("refs/heads/")
            if ref.startswith("refs/tags/"):
                candidates = [ref]
            elif ref.startswith("-"):
                candidates = []
            else:
                candidates = [f"refs/remotes/origin/{ref}", f"refs/tags/{ref}"]
        else:
            missing = f"{shown} has no default branch (is it empty?)."
            candidates = ["HEAD"]  # a fresh clone's HEAD is the remote's default branch
        for candidate in candidates:
            code, out = await self._git(
                "rev-parse", "--verify", "--quiet", f"{candidate}^{{commit}}", cwd=checkout
            )
            if code == 0 and out:
                return out[-1].strip()
        raise RunnerError("ref_not_found", missing)

    async def _git(self, *args: str, cwd: Path | None = None) -> tuple[int, list[str]]:
        """(status, lines): stdout lines when it succeeds, stderr lines when it fails."""
        out: list[str] = []
        err: list[str] = []
        env = procs.base_env() | {"GIT_TERMINAL_PROMPT": "0", "GIT_SSH_COMMAND": "ssh -o BatchMode=yes"}
        if "SSH_AUTH_SOCK" in os.environ:
            env["SSH_AUTH_SOCK"] = os.environ["SSH_AUTH_SOCK"]
        code = await procs.run(
            ["git", "-c", "protocol.ext.allow=never", *args],
            env=env,
            cwd=cwd,
            timeout=self.build_timeout,
            emit=lambda stream, line: (out if stream == "stdout" else err).append(line),
        )
        return code, out if code == 0 else err

    async def build(self, workspace: Workspace, log: Log) -> Artifact:
        spec = workspace.spec
        dep = _checked(spec.deployment_id)
        command = spec.build_command.strip()
        if command:
            log("system", f"Running the build command: {command}")
            marker = self._builds / f"{dep}.json"
            started = time.monotonic()

            def spawned(pid: int) -> None:
                _write_json(marker, {"deployment_id": dep, "pgid": pid, "identity": procs.identity(pid)})

            try:
                code = await procs.run(
                    ["/bin/sh", "-c", command],
                    cwd=workspace.path,
                    env=procs.child_env(spec.variables),
                    emit=log,
                    timeout=self.build_timeout,
                    on_spawn=spawned,
                )
            except TimeoutError:
                raise RunnerError(
                    "build_timeout", f"The build command did not finish within {_fmt(self.build_timeout)}."
                ) from None
            finally:
                marker.unlink(missing_ok=True)
            if code != 0:
                raise RunnerError("build_failed", f"The build command {procs.describe_exit(code)}.")
            log("system", f"Build finished in {time.monotonic() - started:.1f} s")
        else:
            log("system", "No build command: the checkout is the artifact")
        target = self._artifacts / dep
        await _remove(target)
        _write_json(self._artifacts / f"{dep}.json", {"deployment_id": dep, "sha": workspace.sha})
        os.replace(workspace.path, target)
        return Artifact(deployment_id=dep, path=str(target), sha=workspace.sha)

    def artifact(self, deployment_id: str) -> Artifact | None:
        dep = _checked(deployment_id)
        meta = _read_json(self._artifacts / f"{dep}.json")
        path = self._artifacts / dep
        if meta is None or not path.is_dir():
            return None
        return Artifact(deployment_id=dep, path=str(path), sha=meta["sha"])

    async def discard(self, deployment_id: str) -> None:
        dep = _checked(deployment_id)
        (self._artifacts / f"{dep}.json").unlink(missing_ok=True)
        await _remove(self._artifacts / dep)
        await _remove(self._workspaces / dep)

    # -- instances --------------------------------------------------------------------------

    async def start(self, artifact: Artifact, spec: Spec, log: Log) -> Instance:
        dep = _checked(spec.deployment_id)
        _checked(spec.env_id)
        command = spec.start_command.strip()
        if not command:
            raise RunnerError("start_failed", "The deployment has no start command.")
        previous = _read_json(self._instances / f"{dep}.json")
        if previous is not None:
            log("system", f"Stopping the instance this deployment already runs (pid {previous['pid']})")
            await self.stop(self._instance(previous))
        port = procs.free_port()
        log("system", f"Starting `{command}` on port {port}")
        popen = self._spawn(artifact, spec, command, port)
        record = {
            "deployment_id": dep,
            "env_id": spec.env_id,
            "pid": popen.pid,
            "pgid": popen.pid,
            "identity": procs.identity(popen.pid),
            "port": port,
            "artifact": artifact.path,
            "started_at": time.time(),
            "offsets": {stream: 0 for stream in STREAMS},
        }
        try:
            _write_json(self._instances / f"{dep}.json", record)
            self._follow(_Live(record=record, log=log, popen=popen))
        except BaseException:
            procs.kill_group(popen.pid)
            raise
        return self._instance(record)

    def _spawn(self, artifact: Artifact, spec: Spec, command: str, port: int) -> subprocess.Popen[bytes]:
        if not Path(artifact.path).is_dir():
            raise RunnerError("start_failed", f"The build of {artifact.deployment_id} is gone.")
        logs = self._instances / spec.deployment_id
        shutil.rmtree(logs, ignore_errors=True)
        logs.mkdir(parents=True)
        # Files, not pipes: the instance must go on writing when this process is gone.
        with (logs / "stdout.log").open("ab") as out, (logs / "stderr.log").open("ab") as err:
            try:
                return subprocess.Popen(
                    ["/bin/sh", "-c", command],
                    cwd=artifact.path,
                    env=procs.child_env(spec.variables, PORT=str(port)),
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=err,
                    start_new_session=True,
                    close_fds=True,
                )
            except OSError as exc:
                reason = f"Could not run the start command: {exc.strerror}."
                raise RunnerError("start_failed", reason) from None

    async def health(self, instance: Instance, spec: Spec, log: Log) -> None:
        """Until `spec.health_check_path` answers 2xx. A failed check stops the instance (its
        last output is logged first), so a later `stop` has nothing left to do."""
        live = self._live.get(instance.deployment_id)
        port = int(instance.handle["port"])
        path = quote(spec.health_check_path or "/", safe="/?&=%:@!$'()*+,;~-._")
        if not path.startswith("/"):
            path = "/" + path
        loop = asyncio.get_running_loop()
        started = loop.time()
        deadline = started + self.health_timeout
        delay = 0.05
        last = "no answer"
        while True:
            exited, code = self._exited(live) if live else (False, None)
            if exited:
                await self.stop(instance)
                how = procs.describe_exit(code)
                raise RunnerError("start_failed", f"The start command {how} before it answered {path}.")
            try:
                status = await _probe(port, path, min(PROBE_TIMEOUT, max(deadline - loop.time(), 0.1)))
            except (OSError, TimeoutError, ValueError) as exc:
                last = _why(exc)
            else:
                if 200 <= status < 300:
                    took = loop.time() - started
                    log("system", f"Healthy: GET {path} answered {status} after {took:.1f} s")
                    return
                last = f"the last answer was {status}"
            if loop.time() + delay >= deadline:
                break
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, 0.5)
        await self.stop(instance)
        within = _fmt(self.health_timeout)
        raise RunnerError("health_check_failed", f"GET {path} did not answer 2xx within {within} ({last}).")

    async def switch(self, instance: Instance) -> str:
        """Route the instance's environment to it; the environment's URL. Idempotent."""
        env_id = _checked(instance.env_id)
        proxy = await self._route(env_id, int(instance.handle["port"]))
        _write_json(
            self._envs / f"{env_id}.json",
            {
                "env_id": env_id,
                "port": proxy.port,
                "deployment_id": instance.deployment_id,
                "upstream": proxy.upstream,
            },
        )
        return self._env_url(proxy.port)

    async def _route(self, env_id: str, upstream: int) -> Proxy:
        async with self._proxy_lock:
            proxy = self._proxies.get(env_id)
            if proxy is not None:
                proxy.point(upstream)
                return proxy
            known = _read_json(self._envs / f"{env_id}.json") or {}
            # The port is chosen once per environment and kept, so that its URL never changes.
            proxy = Proxy(self.host, int(known.get("port", 0)), upstream)
            await proxy.start()
            if not known:
                _write_json(self._envs / f"{env_id}.json", {"env_id": env_id, "port": proxy.port})
            self._proxies[env_id] = proxy
            return proxy

    async def adopt(self, instance: Instance, log: Log) -> None:
        dep = _checked(instance.deployment_id)
        live = self._live.get(dep)
        if live is not None:
            live.log = log
        else:
            record = _read_json(self._instances / f"{dep}.json")
            if record is None or not _same(record, instance):
                return  # gone since `recover`
            self._follow(_Live(record=record, log=log))
        env = _read_json(self._envs / f"{_checked(instance.env_id)}.json") or {}
        if env.get("deployment_id") == dep:
            await self._route(instance.env_id, int(instance.handle["port"]))

    async def stop(self, instance: Instance) -> None:
        dep = _checked(instance.deployment_id)
        path = self._instances / f"{dep}.json"
        live = self._live.get(dep)
        record = live.record if live is not None else _read_json(path)
        if record is None or not _same(record, instance):
            return  # already stopped (or this deployment has been started again since)
        if live is not None:
            live.stopping = True
        pid = int(record["pid"])
        if procs.identity(pid) in (record["identity"], None):
            reap = live.popen.poll if live is not None and live.popen is not None else None
            await procs.terminate_group(int(record["pgid"]), self.stop_grace, reap)
        if live is not None:
            await self._unfollow(live, drain=True)
            for line_stream in STREAMS:
                for line in live.lines[line_stream].flush():
                    live.log(line_stream, line)
        if self._live.get(dep) is live:
            self._live.pop(dep, None)
        path.unlink(missing_ok=True)
        await _remove(self._instances / dep)

    async def close(self) -> None:
        """Stop following instances and serving proxies; the instances themselves go on."""
        lives = list(self._live.values())
        self._live.clear()
        for live in lives:
            await self._unfollow(live, drain=False)  # the next process's `adopt` reads on
            self._save(live)
        proxies = list(self._proxies.values())
        self._proxies.clear()
        for proxy in proxies:
            await proxy.close()

    # -- following an instance's output -----------------------------------------------------

    def _follow(self, live: _Live) -> None:
        for stream in STREAMS:
            live.pos[stream] = int(live.record["offsets"].get(stream, 0))
            live.lines[stream] = procs.Lines()
        self._live[live.record["deployment_id"]] = live
        live.task = asyncio.create_task(self._tail(live), name=f"tail {live.record['deployment_id']}")

    async def _unfollow(self, live: _Live, *, drain: bool) -> None:
        if live.task is not None:
            live.task.cancel()
            try:
                await live.task
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    raise  # our own cancellation, not the tail's
        if drain:
            self._read(live, budget=None)  # what it wrote until the end

    async def _tail(self, live: _Live) -> None:
        while True:
            exited, code = self._exited(live)
            more = self._read(live, budget=TAIL_BUDGET)
            if exited and not more:
                for stream in STREAMS:
                    for line in live.lines[stream].flush():
                        live.log(stream, line)
                if not live.stopping:
                    live.log("system", f"The process {procs.describe_exit(code)}.")
                self._save(live)
                return
            if live.dirty and time.monotonic() - live.saved_at >= SAVE_EVERY:
                self._save(live)
            await asyncio.sleep(0 if more else TAIL_INTERVAL)

    def _read(self, live: _Live, budget: int | None) -> bool:
        """Deliver what the instance wrote since the last read; whether more is waiting."""
        more = False
        logs = self._instances / live.record["deployment_id"]
        for stream in STREAMS:
            path = logs / f"{stream}.log"
            try:
                size = path.stat().st_size
            except FileNotFoundError:
                continue
            if size < live.pos[stream]:
                live.pos[stream] = 0  # truncated by someone: start over
            if size == live.pos[stream]:
                continue
            want = size - live.pos[stream] if budget is None else min(budget, size - live.pos[stream])
            with path.open("rb") as file:
                file.seek(live.pos[stream])
                data = file.read(want)
            live.pos[stream] += len(data)
            more = more or live.pos[stream] < size
            for line in live.lines[stream].feed(data):
                live.log(stream, line)
            live.dirty = True
        return more

    def _save(self, live: _Live) -> None:
        path = self._instances / f"{live.record['deployment_id']}.json"
        if not live.dirty or not path.exists():
            return
        # The offset of the first byte not yet delivered: a partial line is read again.
        live.record["offsets"] = {s: live.pos[s] - live.lines[s].pending for s in STREAMS}
        _write_json(path, live.record)
        live.saved_at = time.monotonic()
        live.dirty = False

    def _exited(self, live: _Live) -> tuple[bool, int | None]:
        if live.popen is not None:
            code = live.popen.poll()
            return code is not None, code
        return not procs.alive(int(live.record["pid"]), live.record.get("identity")), None

    # -- helpers ----------------------------------------------------------------------------

    def _instance(self, record: dict[str, Any]) -> Instance:
        return Instance(
            deployment_id=record["deployment_id"],
            env_id=record["env_id"],
            url=f"http://127.0.0.1:{record['port']}",
            handle={
                "pid": str(record["pid"]),
                "pgid": str(record["pgid"]),
                "port": str(record["port"]),
                "artifact": record["artifact"],
            },
        )

    def _env_url(self, port: int) -> str:
        host = "127.0.0.1" if self.host in ("", "0.0.0.0", "::") else self.host
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{port}"


async def _probe(port: int, path: str, timeout: float) -> int:
    """The status of one GET, on a connection of its own."""
    async with asyncio.timeout(timeout):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(
                f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: stratus-health-check\r\n"
                "Connection: close\r\n\r\n".encode()
            )
            await writer.drain()
            status_line = await reader.readline()
        finally:
            writer.close()
    parts = status_line.split()
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
        raise ValueError("the answer was not HTTP")
    return int(parts[1])


def _why(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, TimeoutError):
        return "no answer in time"
    if isinstance(exc, OSError):
        return exc.strerror or type(exc).__name__
    return str(exc)


def _same(record: dict[str, Any], instance: Instance) -> bool:
    """Whether a record is of this instance (and not of a later start of its deployment)."""
    pid = instance.handle.get("pid")
    return pid is None or pid == str(record["pid"])


def _checked(name: str) -> str:
    """An id that is safe as a file name (ids come from the service, but paths are built from them)."""
    if not _ID.fullmatch(name):
        raise ValueError(f"not a usable id: {name!r}")
    return name


def _redact(url: str) -> str:
    """A URL fit for a log line: without a password or token in it."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=f"***@{host}"))


def _last(lines: list[str], url: str) -> str:
    """Git's last words, with the URL as shown in log lines."""
    text = next((line.strip() for line in reversed(lines) if line.strip()), "git gave no reason")
    return text.replace(url, _redact(url))


def _fmt(seconds: float) -> str:
    return f"{seconds:g} s"


def _seconds(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number of seconds, not {raw!r}") from None
    if value <= 0:
        raise ValueError(f"{name} must be positive, not {raw!r}")
    return value


async def stop_all(root: Path, grace: float = 10.0) -> int:
    """Stop every app a local runner under `root` left running (the stack that owns it is
    stopping for good); how many were stopped. Safe with no runner there, and never kills a
    process whose pid was reused since."""
    stopped = 0
    for path in sorted((root / "instances").glob("*.json")):
        record = _read_json(path)
        if record is not None and procs.alive(int(record["pid"]), record.get("identity")):
            await procs.terminate_group(int(record["pgid"]), grace)
            stopped += 1
        path.unlink(missing_ok=True)
    return stopped


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return None  # a record cut short by a crash is as good as none


def _write_json(path: Path, data: dict[str, Any]) -> None:
    """Write a whole file or nothing: a crash leaves the old version."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
    os.replace(tmp, path)


async def _remove(path: Path) -> None:
    await asyncio.to_thread(_remove_now, path)


def _remove_now(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
