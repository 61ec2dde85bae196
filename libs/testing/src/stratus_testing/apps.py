"""A user's app for deployment tests and the bench: git repositories with a tiny HTTP server.

`make_repo(path)` makes a repository on branch `main` whose build (`BUILD_COMMAND`) prints a few
lines on stdout and stderr and writes `build-info.txt`, and whose app (`START_COMMAND`, stdlib
only) serves on `$PORT`:

    GET /         200 "version=<v> greeting=<$GREETING> build=<build-info.txt>"
    GET /healthz  200 "ok" (503 in `commit_unhealthy_app`'s version)
    GET /env      200, the names (never the values) of its environment variables, one a line
    GET /ping     200, and prints "ping" on its stdout

The commands name the interpreter running the tests (`sys.executable`, an absolute path), so
they work whatever PATH the runner's environment holds; a command saying `python3` finds
whichever the service's own PATH finds (the runner passes that PATH on).

The `commit_*` functions commit another version on `main` and return its sha; pass it as the
spec's `sha` to deploy that version.
"""

from __future__ import annotations

import asyncio
import shlex
import subprocess
import sys
import uuid
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

from stratus_deployments.runner.base import Spec

PYTHON = sys.executable
BUILD_COMMAND = f"{shlex.quote(PYTHON)} build.py"
START_COMMAND = f"{shlex.quote(PYTHON)} app.py"
HEALTH_PATH = "/healthz"

APP = '''"""A tiny HTTP app for deployment tests (stdlib only)."""
import os
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

VERSION = {version!r}
HEALTHY = {healthy!r}


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/healthz":
            status, body = (200, "ok") if HEALTHY else (503, "not healthy")
        elif self.path == "/":
            info = Path("build-info.txt")
            built = info.read_text().strip() if info.exists() else "unbuilt"
            body = f"version={{VERSION}} greeting={{os.environ.get('GREETING', '')}} build={{built}}"
            status = 200
        elif self.path == "/env":
            status, body = 200, "\\n".join(sorted(os.environ))
        elif self.path == "/ping":
            print("ping", flush=True)
            status, body = 200, "pong"
        else:
            status, body = 404, "not found"
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format, *args):
        pass


class Server(ThreadingHTTPServer):
    request_queue_size = 128
    daemon_threads = False  # server_close waits for the requests in flight


server = Server(("127.0.0.1", int(os.environ["PORT"])), Handler)
# SIGTERM: stop accepting, finish what is in flight, exit.
signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
print(f"app {{VERSION}} listening on port {{server.server_address[1]}}", flush=True)
print("app started", file=sys.stderr, flush=True)
server.serve_forever()
server.server_close()
print(f"app {{VERSION}} stopped", flush=True)
'''

BUILD = """import sys
from pathlib import Path

print("building {version}")
print("warming the cache", file=sys.stderr)
Path("build-info.txt").write_text("built {version}\\n")
print("build done")
"""

FAILING_BUILD = """import sys

print("compiling")
print("error: something broke", file=sys.stderr)
sys.exit(1)
"""

CHATTY_BUILD = """from pathlib import Path

for i in range({lines}):
    print(f"line {{i:06d}}")
Path("build-info.txt").write_text("built chatty\\n")
"""

# Writes its pid and a child's to $PIDS_FILE, then waits for ever: for timeouts and cancels.
HANGING_BUILD = """import os
import subprocess
import sys
import time
from pathlib import Path

child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"])
Path(os.environ["PIDS_FILE"]).write_text(f"{os.getpid()} {child.pid}")
print("waiting", flush=True)
time.sleep(3600)
"""

# Prints a line, then waits until the file named by $GATE exists (the test opens it when it
# wants the build to go on), then builds as BUILD does: for cancels and restarts mid-build.
GATED_BUILD = """import os
import time
from pathlib import Path

print("waiting at the gate", flush=True)
while not Path(os.environ["GATE"]).exists():
    time.sleep(0.05)
Path("build-info.txt").write_text("built gated\\n")
print("through the gate", flush=True)
"""
GATED_BUILD_LINE = "waiting at the gate"


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True)
    return done.stdout.strip()


def head(repo: Path) -> str:
    return git(repo, "rev-parse", "HEAD")


def make_repo(path: Path, version: str = "v1") -> Path:
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "--quiet", "--initial-branch=main")
    git(path, "config", "user.name", "Stratus Tests")
    git(path, "config", "user.email", "tests@stratus.invalid")
    git(path, "config", "commit.gpgsign", "false")
    _commit(
        path,
        f"app {version}",
        {"app.py": APP.format(version=version, healthy=True), "build.py": BUILD.format(version=version)},
    )
    return path


def commit_version(repo: Path, version: str) -> str:
    files = {"app.py": APP.format(version=version, healthy=True), "build.py": BUILD.format(version=version)}
    return _commit(repo, f"app {version}", files)


def commit_failing_build(repo: Path) -> str:
    return _commit(repo, "a build that fails", {"build.py": FAILING_BUILD})


def commit_chatty_build(repo: Path, lines: int) -> str:
    return _commit(repo, f"a build printing {lines} lines", {"build.py": CHATTY_BUILD.format(lines=lines)})


def commit_hanging_build(repo: Path) -> str:
    """A build that never ends; it needs the variable PIDS_FILE (where it writes its pids)."""
    return _commit(repo, "a build that hangs", {"build.py": HANGING_BUILD})


def commit_gated_build(repo: Path) -> str:
    """A build that waits for the file named by the variable GATE."""
    return _commit(repo, "a build that waits at a gate", {"build.py": GATED_BUILD})


def chatty_line(n: int) -> str:
    """The text of line `n` (from 0) of `commit_chatty_build`'s build."""
    return f"line {n:06d}"


def commit_unhealthy_app(repo: Path) -> str:
    return _commit(
        repo, "an app that is never healthy", {"app.py": APP.format(version="sick", healthy=False)}
    )


def _commit(repo: Path, message: str, files: Mapping[str, str]) -> str:
    for name, text in files.items():
        (repo / name).write_text(text)
    git(repo, "add", "--all")
    git(repo, "commit", "--quiet", "-m", message)
    return head(repo)


def new_id(prefix: str = "dep") -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


def spec(
    repo: Path | str,
    *,
    deployment_id: str | None = None,
    env_id: str = "env_test",
    ref: str | None = None,
    sha: str | None = None,
    variables: Mapping[str, str] | None = None,
    build_command: str = BUILD_COMMAND,
    start_command: str = START_COMMAND,
    health_check_path: str = HEALTH_PATH,
) -> Spec:
    """A spec for this app; the repository by its file:// URL (a str is used as it is)."""
    return Spec(
        deployment_id=deployment_id or new_id(),
        project_id="prj_test",
        env_id=env_id,
        repo_url=repo if isinstance(repo, str) else Path(repo).resolve().as_uri(),
        ref=ref,
        sha=sha,
        build_command=build_command,
        start_command=start_command,
        health_check_path=health_check_path,
        variables=dict(variables or {}),
    )


async def get(url: str, path: str = "/", timeout: float = 5.0) -> tuple[int, str]:
    """(status, body) of a GET on a connection of its own (no pooling: each one is new)."""
    parts = urlsplit(url)
    async with asyncio.timeout(timeout):
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        try:
            writer.write(f"GET {path} HTTP/1.1\r\nHost: {parts.netloc}\r\nConnection: close\r\n\r\n".encode())
            await writer.drain()
            data = await reader.read()
        finally:
            writer.close()
    head_, _, body = data.partition(b"\r\n\r\n")
    status_line = head_.split(b"\r\n", 1)[0].split()
    if len(status_line) < 2:
        raise ConnectionError(f"no HTTP answer from {url}{path}: {data[:80]!r}")
    return int(status_line[1]), body.decode()
