"""`stratus up --replicas 2` (here `STRATUS_REPLICAS=2`): two processes of every service and of
the gateway, the gateways behind one port (SO_REUSEPORT: the kernel spreads connections), the
metrics service on embedded chDB alone; the API works through both gateways, and with one
replica of each killed it still does."""

from __future__ import annotations

import os
import signal
import uuid
from pathlib import Path

import httpx

from stratus_contracts.services import PROCESSES
from stratus_testing import Stack, wait_until


def established_on(pid: int, port: int) -> int:
    """TCP connections accepted on `port` that process `pid` holds open."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local_port = int(fields[1].rsplit(":", 1)[1], 16)
            if local_port == port and fields[3] == "01" and fields[9] in inodes:  # 01: ESTABLISHED
                count += 1
    return count


def test_two_replicas_of_everything_behind_one_port(tmp_path: Path) -> None:
    with Stack(tmp_path / "data", env={"STRATUS_REPLICAS": "2", "STRATUS_LEASE_TTL": "2"}) as stack:
        children = stack.info()["services"]
        for spec in PROCESSES:
            expected = 1 if spec.name == "metrics" else 2  # chDB: one engine per process
            assert len([n for n in children if n == spec.name or n.startswith(f"{spec.name}-")]) == expected
        port = int(stack.base_url.rsplit(":", 1)[1])
        clients = [stack.client(stack.live_key) for _ in range(24)]
        try:
            made = [c.post("/v1/projects", json={"name": f"rep-{uuid.uuid4().hex[:8]}"}) for c in clients]
            assert all(r.status_code == 201 for r in made), [r.text for r in made if r.status_code != 201]
            # Each client keeps its connection open: both gateways hold some of them.
            held = [established_on(children[name], port) for name in ("gateway", "gateway-2")]
            assert all(held) and sum(held) == len(clients), held
            # Whichever gateway and projects replica a request meets, it reads what another wrote.
            for client, response in zip(clients, reversed(made), strict=True):
                project = response.json()["data"]
                assert client.get(f"/v1/projects/{project['id']}").json()["data"] == project
        finally:
            for c in clients:
                c.close()

        # One replica of each, killed: the others go on serving while they are restarted.
        for name in [s.name for s in PROCESSES if s.name != "metrics"]:
            os.kill(children[name], signal.SIGKILL)
        with stack.client(stack.live_key) as client:

            def serves() -> bool:
                try:
                    r = client.post("/v1/projects", json={"name": f"after-{uuid.uuid4().hex[:8]}"})
                except httpx.TransportError:
                    return False
                return r.status_code == 201

            wait_until(serves, timeout=30)
