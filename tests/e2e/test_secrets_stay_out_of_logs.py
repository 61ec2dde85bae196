"""Key secrets and tokens never appear in any process's logs, whatever happens to them."""

from __future__ import annotations

import httpx

from stratus_contracts import keys
from stratus_testing import Stack, wait_until


def test_no_secret_reaches_the_logs(stack: Stack, live: httpx.Client, anon: httpx.Client) -> None:
    unknown = keys.generate("live")
    token = live.post("/v1/tokens", json={"ttl_seconds": 60}).json()["data"]["token"]
    for bearer in [stack.live_key, stack.test_key, unknown, token, "sk_live_" + "x" * 10, token + "x"]:
        anon.get("/v1/me", headers={"Authorization": f"Bearer {bearer}"})
        anon.post("/v1/projects", headers={"Authorization": f"Bearer {bearer}"}, json={"name": "x"})
    marker = live.get("/v1/me").headers["x-request-id"]
    # The stack's processes write their JSON logs to its stderr file; wait until ours got there.
    wait_until(lambda: marker in stack.stderr_path.read_text(errors="replace"), timeout=10, message="logs")
    logs = stack.stderr_path.read_text(errors="replace")
    # stdout is the supervisor's banner, which prints the bootstrap admin keys once, by design.
    banner = stack.stdout_path.read_text(errors="replace")
    for secret in [stack.live_key, stack.test_key, unknown, token]:
        body = secret.split("_", 2)[-1]
        assert body not in logs, "a secret leaked into the logs"
        assert keys.hash_secret(secret) not in logs + banner
    for secret in [unknown, token]:
        assert secret.split("_", 2)[-1] not in banner
