"""`python -m stratus_kit.probe <service> [--live]`: a container's health check for a service.

Services have no HTTP port: they answer pings over NATS. The probe asks the ping of this host
alone (`subjects.host_ping`: a pod's or container's own process, never another replica in the
queue group) and exits

  0  the service on this host answered;
  1  NATS is reachable but the service on this host did not answer (stuck, or not started yet);
  2  NATS cannot be reached: the probe cannot judge the process.

`--live` (a liveness probe) counts 2 as alive: restarting every service during a NATS outage
would not bring NATS back, and the services reconnect on their own. A readiness check takes
both 1 and 2 as not ready. NATS_URL says where NATS is; the service name defaults to
STRATUS_SERVICE.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import sys
from collections.abc import Sequence

import nats

from stratus_bus import Bus, RemoteError, ServiceTimeout, ServiceUnavailable
from stratus_bus.bus import servers
from stratus_bus.config import nats_url
from stratus_contracts import subjects
from stratus_contracts.reply import Ping, Pong

ANSWERED, SILENT, NO_BUS = 0, 1, 2


async def probe(service: str, url: str, host: str, timeout: float) -> tuple[int, str]:
    """(exit code, what happened) of one ping of `service` on `host` through NATS at `url`."""
    try:
        nc = await nats.connect(
            servers(url),
            name=f"probe-{service}",
            connect_timeout=timeout,
            allow_reconnect=False,
            max_reconnect_attempts=1,
        )
    except (OSError, TimeoutError, nats.errors.Error) as exc:
        return NO_BUS, f"cannot reach NATS at {url}: {exc!r}"
    try:
        pong = await Bus(nc).call(
            Ping(), subject=subjects.host_ping(service, host), returns=Pong, timeout=timeout
        )
    except (ServiceUnavailable, ServiceTimeout, RemoteError) as exc:
        return SILENT, f"{service} on {host} did not answer: {type(exc).__name__}"
    finally:
        await nc.close()
    return ANSWERED, f"{pong.instance} answered"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stratus_kit.probe", description=__doc__.split("\n")[0])
    parser.add_argument("service", nargs="?", default=os.environ.get("STRATUS_SERVICE"))
    parser.add_argument("--live", action="store_true", help="liveness: NATS unreachable counts as alive")
    parser.add_argument("--timeout", type=float, default=3.0, help="seconds for each step (default 3)")
    args = parser.parse_args(argv)
    if not args.service:
        parser.error("name the service (or set STRATUS_SERVICE)")
    code, said = asyncio.run(probe(args.service, nats_url(), socket.gethostname(), args.timeout))
    (sys.stderr if code else sys.stdout).write(said + "\n")
    return ANSWERED if code == NO_BUS and args.live else code


if __name__ == "__main__":
    sys.exit(main())
