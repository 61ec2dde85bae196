"""The TypeScript client (`clients/typescript`): its committed `src/schema.d.ts` is what
openapi-typescript makes of a running gateway's `/openapi.json`, it compiles under strict `tsc`,
and its smoke script (`src/smoke.ts`: /v1/me, a project created, listed through the paginator,
read, deleted, problem+json errors) passes against a real stack.

Needs Node.js and npm; `npm ci` runs when `node_modules` is missing or older than
`package-lock.json` (the first run downloads the packages from the npm registry)."""

from __future__ import annotations

import difflib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from stratus_testing import Stack

ROOT = Path(__file__).resolve().parents[2]
CLIENT = ROOT / "clients" / "typescript"
SCHEMA = CLIENT / "src" / "schema.d.ts"
NODE = shutil.which("node")
NPM = shutil.which("npm")

pytestmark = [
    pytest.mark.skipif(
        NODE is None or NPM is None,
        reason="node and npm are not installed: the TypeScript client needs Node.js 20+ to build and run",
    ),
    # The first run's `npm ci` downloads from the registry; later ones take well under a minute.
    pytest.mark.timeout(300),
]


def run(*args: str, env: dict[str, str] | None = None, timeout: float = 120.0) -> str:
    """Run a command in the client's directory; its output, or a failure that shows it."""
    done = subprocess.run(
        args,
        cwd=CLIENT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    output = f"$ {' '.join(args)}\n{done.stdout}{done.stderr}"
    assert done.returncode == 0, f"exit {done.returncode}\n{output}"
    return output


@pytest.fixture(scope="module")
def installed() -> None:
    lock = CLIENT / "package-lock.json"
    installed_lock = CLIENT / "node_modules" / ".package-lock.json"  # npm writes it on install
    if not installed_lock.exists() or installed_lock.stat().st_mtime < lock.stat().st_mtime:
        run(str(NPM), "ci", "--no-audit", "--no-fund", timeout=280.0)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with Stack(tmp_path_factory.mktemp("ts-client-stack")) as running:
        yield running


def test_committed_schema_matches_the_served_spec(installed: None, stack: Stack, tmp_path: Path) -> None:
    spec = tmp_path / "openapi.json"
    response = httpx.get(f"{stack.base_url}/openapi.json", timeout=10.0, trust_env=False)
    assert response.status_code == 200, response.text
    spec.write_bytes(response.content)
    fresh = tmp_path / "schema.d.ts"
    # The package's own generate script, so the flags are the ones `make ts-client` uses.
    run("sh", "scripts/generate.sh", str(spec), str(fresh))
    committed, generated = SCHEMA.read_text(), fresh.read_text()
    if committed != generated:
        diff = difflib.unified_diff(
            committed.splitlines(keepends=True),
            generated.splitlines(keepends=True),
            "clients/typescript/src/schema.d.ts (committed)",
            "generated from the served /openapi.json",
        )
        pytest.fail(
            "clients/typescript/src/schema.d.ts is not what the gateway's /openapi.json generates: "
            "run `make ts-client` and commit the result\n" + "".join(list(diff)[:80]),
            pytrace=False,
        )


def test_client_compiles_and_passes_its_smoke_script_against_the_stack(installed: None, stack: Stack) -> None:
    run(str(NPM), "run", "--silent", "build")  # tsc, strict: a type error fails here
    output = run(
        str(NODE),
        "dist/smoke.js",
        env={"STRATUS_API_URL": stack.base_url, "STRATUS_API_KEY": stack.live_key},
        timeout=60.0,
    )
    assert "smoke: ok" in output, output
