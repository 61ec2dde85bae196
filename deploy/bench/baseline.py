"""Baseline for `make bench`: a bare Litestar app with one `GET /` route, served like the gateway.

Run as `python deploy/bench/baseline.py PORT`. It answers `{"status": "ok"}` and does nothing
else: no middleware, no auth, no bus. Its req/s is the ceiling that the gateway's routes are
compared against, so it is served with exactly the gateway's uvicorn options (see
`stratus_gateway.__main__`); any difference there would show up as a fake gateway cost.
"""

from __future__ import annotations

import sys

import uvicorn
from litestar import Litestar, get


@get("/")
async def index() -> dict[str, str]:
    return {"status": "ok"}


app = Litestar(route_handlers=[index], debug=False)


def main(argv: list[str]) -> int:
    if len(argv) != 2 or not argv[1].isdigit():
        print(f"usage: {argv[0]} PORT", file=sys.stderr)
        return 2
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=int(argv[1]),
        loop="uvloop",
        http="httptools",
        access_log=False,
        server_header=False,
        proxy_headers=False,
        log_config=None,
        timeout_graceful_shutdown=10,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
