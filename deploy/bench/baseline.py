"""Baseline for `make bench`: a bare Litestar app with one `GET /` route, served like the gateway.

Run as `python deploy/bench/baseline.py PORT [granian|uvicorn]` (default: the gateway's default
server). It answers `{"status": "ok"}` and does nothing else: no middleware, no auth, no bus.
Its req/s is the ceiling that the gateway's routes are compared against, so it is served by the
gateway's own `serve` (`stratus_gateway.__main__`) with exactly the gateway's server options; any
difference there would show up as a fake gateway cost.
"""

from __future__ import annotations

import sys

from litestar import Litestar, get

from stratus_gateway.__main__ import DEFAULT_SERVER, SERVERS, serve


@get("/")
async def index() -> dict[str, str]:
    return {"status": "ok"}


app = Litestar(route_handlers=[index], debug=False)


def main(argv: list[str]) -> int:
    server = argv[2] if len(argv) == 3 else DEFAULT_SERVER
    if len(argv) not in (2, 3) or not argv[1].isdigit() or server not in SERVERS:
        print(f"usage: {argv[0]} PORT [{'|'.join(SERVERS)}]", file=sys.stderr)
        return 2
    serve(app, "127.0.0.1", int(argv[1]), server)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
