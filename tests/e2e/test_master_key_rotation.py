"""Master-key rotation on a stack of its own, exactly as the README's procedure says: the stack
generates `master.key`; the operator moves it to `master.key.previous` and restarts (a new key is
generated, both are held); `stratus secrets rotate-master-key` re-wraps every data key while
requests keep being served; after a restart with only the new key every secret still decrypts."""

from __future__ import annotations

import json
import stat
import subprocess
import threading
import uuid
from pathlib import Path

import httpx

from stratus_contracts import masterkey
from stratus_testing import Stack, stratus_command


def _secret() -> str:
    return f"rot-{uuid.uuid4().hex}"


def _env_with_secret(client: httpx.Client, value: str) -> str:
    project = client.post("/v1/projects", json={"name": f"rot-{uuid.uuid4().hex[:8]}"}).json()["data"]
    env = client.get(f"/v1/projects/{project['id']}/envs").json()["data"][0]["id"]
    made = client.post(f"/v1/envs/{env}/vars", json={"key": "SECRET", "value": value, "secret": True})
    assert made.status_code == 201, made.text
    return env


def _revealed(client: httpx.Client, env_id: str) -> str | None:
    response = client.get(f"/v1/envs/{env_id}/vars", params={"reveal": "true"})
    assert response.status_code == 200, response.text
    return response.json()["data"][0]["value"]


def _rotate(stack: Stack, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        stratus_command("secrets", "rotate-master-key"),
        env={**stack.env, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_rotating_the_master_key_keeps_every_secret(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first_value, test_value, second_value = _secret(), _secret(), _secret()
    with Stack(data) as stack:
        key_file = data / "master.key"
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        old_key = key_file.read_text().strip()
        with stack.client(stack.live_key) as live, stack.client(stack.test_key) as test:
            first = _env_with_secret(live, first_value)
            sandbox = _env_with_secret(test, test_value)

    # Step 1: the current key becomes the previous one; the restart generates a new current key.
    key_file.rename(data / "master.key.previous")
    with Stack(data) as stack, stack.client(stack.live_key) as live:
        new_key = key_file.read_text().strip()
        assert new_key != old_key
        assert _revealed(live, first) == first_value  # unwrapped with the previous key
        second = _env_with_secret(live, second_value)  # wrapped with the new key already

        # A rotation that expects another key than the services hold is refused.
        wrong = _rotate(stack, STRATUS_MASTER_KEY=masterkey.generate())
        assert wrong.returncode == 1 and "master_key_mismatch" in wrong.stderr

        # Step 2: re-wrap, while secrets keep being read.
        failures: list[str] = []
        stop = threading.Event()

        def keep_reading() -> None:
            with stack.client(stack.live_key) as reader:
                while not stop.is_set():
                    response = reader.get(f"/v1/envs/{first}/vars", params={"reveal": "true"})
                    if response.status_code != 200:
                        failures.append(response.text)

        reader = threading.Thread(target=keep_reading)
        reader.start()
        try:
            rotated = _rotate(stack)
        finally:
            stop.set()
            reader.join()
        assert rotated.returncode == 0, rotated.stderr
        result = json.loads(rotated.stdout)
        assert result["kek_id"] == masterkey.key_id(masterkey.parse(new_key))
        assert result["modes"]["live"]["rewrapped"] >= 1 and result["modes"]["test"]["rewrapped"] >= 1
        assert all(m["unavailable"] == 0 for m in result["modes"].values())
        assert failures == []
        again = json.loads(_rotate(stack).stdout)
        assert all(m["rewrapped"] == 0 for m in again["modes"].values())

    # Step 3: the old key is gone; every secret still decrypts.
    (data / "master.key.previous").unlink()
    with Stack(data) as stack, stack.client(stack.live_key) as live, stack.client(stack.test_key) as test:
        assert _revealed(live, first) == first_value
        assert _revealed(live, second) == second_value
        assert _revealed(test, sandbox) == test_value
        assert old_key not in stack.stderr_path.read_text(errors="replace")
        assert new_key not in stack.stderr_path.read_text(errors="replace")


def test_explicit_keys_in_the_environment_work_the_same(tmp_path: Path) -> None:
    data = tmp_path / "data"
    old_key, new_key = masterkey.generate(), masterkey.generate()
    value = _secret()
    with Stack(data, env={"STRATUS_MASTER_KEY": old_key}) as stack, stack.client(stack.live_key) as live:
        env = _env_with_secret(live, value)
    assert not (data / "master.key").exists()  # an explicit key is not written anywhere
    rotating = {"STRATUS_MASTER_KEY": new_key, "STRATUS_MASTER_KEY_PREVIOUS": old_key}
    with Stack(data, env=rotating) as stack:
        rotated = _rotate(stack)
        assert rotated.returncode == 0, rotated.stderr
        assert json.loads(rotated.stdout)["modes"]["live"] == {"total": 1, "rewrapped": 1, "unavailable": 0}
    with Stack(data, env={"STRATUS_MASTER_KEY": new_key}) as stack, stack.client(stack.live_key) as live:
        assert _revealed(live, env) == value
    with Stack(data, env={"STRATUS_MASTER_KEY": old_key}) as stack, stack.client(stack.live_key) as live:
        # The old key alone no longer opens anything: 503, never a wrong value or a 500.
        response = live.get(f"/v1/envs/{env}/vars", params={"reveal": "true"})
        assert response.status_code == 503 and response.json()["code"] == "encryption_unavailable"
