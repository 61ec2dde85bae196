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


def _accounts_create(args: argparse.Namespace) -> int:
    from stratus_cli import accounts

    return accounts.main_create(args.name, args.plan, args.json)


def _accounts_set_plan(args: argparse.Namespace) -> int:
    from stratus_cli import accounts

    return accounts.main_set_plan(args.account, args.plan)


def _add_accounts(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    accounts = commands.add_parser(
        "accounts",
        help="create tenant accounts and change their plans on the running stack",
        description="Operator commands for accounts. They reach the running stack through "
        "$STRATUS_DATA_DIR/stack.json (or NATS_URL).",
    )
    verbs = accounts.add_subparsers(title="subcommands", dest="verb", metavar="SUBCOMMAND", required=True)
    plans = ["free", "pro", "internal"]
    create = verbs.add_parser(
        "create",
        help="create an account with one admin key per mode",
        description="Create an account and its first admin keys (one live, one test). The keys "
        "are printed once and stored nowhere else.",
    )
    create.add_argument("name", help="the account's name")
    create.add_argument("--plan", choices=plans, default="free", help="rate-limit plan (default: free)")
    create.add_argument(
        "--json",
        action="store_true",
        help='print {"id", "name", "plan", "keys": {"live", "test"}, "key_ids"} as JSON',
    )
    create.set_defaults(handler=_accounts_create)
    set_plan = verbs.add_parser(
        "set-plan",
        help="change an account's plan",
        description="Change an account's plan; gateways drop their cached view of its keys at once.",
    )
    set_plan.add_argument("account", help="the account id, acct_…")
    set_plan.add_argument("plan", choices=plans)
    set_plan.set_defaults(handler=_accounts_set_plan)


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
    rebuild.add_argument("view", choices=["projects", "audit"], help="which read model to rebuild")
    rebuild.set_defaults(handler=_rebuild)
    _add_accounts(commands)
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
