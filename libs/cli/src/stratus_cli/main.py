"""Entry point of the `stratus` console script: parses the command line and runs one command."""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version


def _version() -> str:
    try:
        return version("stratus-cli")
    except PackageNotFoundError:
        return "unknown"


def _up(_: argparse.Namespace) -> int:
    # Importing the supervisor takes a moment; a Ctrl-C or SIGTERM meanwhile must still mean
    # "stop cleanly", so note it now and let the supervisor act on it once it runs.
    early: list[int] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda signum, _frame: early.append(signum))
    from stratus_cli import supervisor

    return supervisor.main(early)


def _rebuild(args: argparse.Namespace) -> int:
    from stratus_cli import rebuild

    return rebuild.main(args.view)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stratus",
        description="Stratus: a self-hostable cloud platform API.",
        epilog="Configuration comes from the environment: STRATUS_DATA_DIR (default .stratus), "
        "STRATUS_HOST, STRATUS_PORT (default 127.0.0.1:8080), NATS_URL (default: run an "
        "embedded nats-server), STRATUS_ADMIN_KEY.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(title="commands", dest="command", metavar="COMMAND")

    up = commands.add_parser(
        "up",
        help="run the whole stack locally (bus, services, gateway) until Ctrl-C",
        description="Start nats-server (unless NATS_URL is set), every service and the gateway; "
        "create the first account and its admin keys on first run; restart crashed services; "
        "stop everything on SIGINT/SIGTERM.",
    )
    up.set_defaults(handler=_up)

    rebuild = commands.add_parser(
        "rebuild",
        help="rebuild a read model from the event log",
        description="Drop a service's read model and replay it from the event log; prints the "
        "number of rows per mode as JSON.",
    )
    rebuild.add_argument("view", choices=["projects"], help="which read model to rebuild")
    rebuild.set_defaults(handler=_rebuild)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    return int(args.handler(args))


if __name__ == "__main__":
    sys.exit(main())
