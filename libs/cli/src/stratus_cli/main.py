"""Entry point of the `stratus` console script: parses the command line and runs one command."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version

from stratus_contracts import services


def _version() -> str:
    try:
        return version("stratus-cli")
    except PackageNotFoundError:
        return "unknown"


def _up(args: argparse.Namespace) -> int:
    if args.replicas is not None:
        if args.replicas < 1:
            print("stratus: --replicas must be at least 1", file=sys.stderr)
            return 2
        os.environ["STRATUS_REPLICAS"] = str(args.replicas)
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


def _secrets_rotate(_: argparse.Namespace) -> int:
    from stratus_cli import masterkey

    return masterkey.main_rotate()


def _secrets_generate(_: argparse.Namespace) -> int:
    from stratus_cli import masterkey

    return masterkey.main_generate()


def _add_secrets(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    secrets = commands.add_parser(
        "secrets",
        help="manage the master key that protects environment variables",
        description="Operator commands for the master key (STRATUS_MASTER_KEY). They reach the "
        "running stack through $STRATUS_DATA_DIR/stack.json (or NATS_URL).",
    )
    verbs = secrets.add_subparsers(title="subcommands", dest="verb", metavar="SUBCOMMAND", required=True)
    rotate = verbs.add_parser(
        "rotate-master-key",
        help="re-wrap every data key under the services' current master key",
        description="Run after restarting the services with the new key in STRATUS_MASTER_KEY and "
        "the old one in STRATUS_MASTER_KEY_PREVIOUS (the local stack: master.key and "
        "master.key.previous in the data dir). The expected key is STRATUS_MASTER_KEY, else the data "
        "dir's master.key; a replica holding another key refuses. Prints the counts per mode as "
        "JSON; once `unavailable` is 0 everywhere the old key can go.",
    )
    rotate.set_defaults(handler=_secrets_rotate)
    generate = verbs.add_parser("generate-master-key", help="print a new random master key (base64)")
    generate.set_defaults(handler=_secrets_generate)


def _env_pull(args: argparse.Namespace) -> int:
    from stratus_cli import envcmd

    return envcmd.main_pull(args.env_id, args.key, args.test, args.reveal, args.output)


def _env_push(args: argparse.Namespace) -> int:
    from stratus_cli import envcmd

    return envcmd.main_push(args.env_id, args.key, args.test, args.file, args.prune)


def _add_env(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    env = commands.add_parser(
        "env",
        help="download or upload an environment's variables as a .env file",
        description="Talks to the HTTP API (STRATUS_URL, else the running stack's gateway) with "
        "--key, STRATUS_API_KEY or the local stack's admin key.",
    )
    verbs = env.add_subparsers(title="subcommands", dest="verb", metavar="SUBCOMMAND", required=True)
    pull = verbs.add_parser("pull", help="write an environment's variables as dotenv text")
    push = verbs.add_parser(
        "push", help="set an environment's variables from a .env file (a new config version)"
    )
    for parser in (pull, push):
        parser.add_argument("env_id", help="the environment id, env_…")
        parser.add_argument(
            "--key", help="the API key to use (default: STRATUS_API_KEY or the local stack's)"
        )
        parser.add_argument(
            "--test", action="store_true", help="use the local stack's test-mode key instead of the live one"
        )
    pull.add_argument("--reveal", action="store_true", help="include secret values (admin scope; audited)")
    pull.add_argument("-o", "--output", help="write to this file (mode 0600) instead of stdout")
    pull.set_defaults(handler=_env_pull)
    push.add_argument("file", help="the .env file, or - for stdin")
    push.add_argument(
        "--prune", action="store_true", help="also delete variables the file neither sets nor keeps"
    )
    push.set_defaults(handler=_env_push)


def _sandbox_reset(_: argparse.Namespace) -> int:
    from stratus_cli import sandboxcmd

    return sandboxcmd.main_reset()


def _add_sandbox(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sandbox = commands.add_parser(
        "sandbox",
        help="reset test mode's data on the running stack",
        description="Operator commands for the sandbox (test mode). They reach the running stack "
        "through $STRATUS_DATA_DIR/stack.json (or NATS_URL).",
    )
    verbs = sandbox.add_subparsers(title="subcommands", dest="verb", metavar="SUBCOMMAND", required=True)
    reset = verbs.add_parser(
        "reset",
        help="drop every service's test-mode data now; live data is untouched",
        description="Every service drops its test-mode data (event stores, read models, webhook "
        "endpoints and deliveries, deployments and their apps, audit rows, metrics partitions, "
        "the test-mode events on the stream); accounts and keys stay. Prints the new epoch and "
        "each service's as JSON; exit 1 if one has not followed within 30 s.",
    )
    reset.set_defaults(handler=_sandbox_reset)


def _config_check(args: argparse.Namespace) -> int:
    from stratus_cli import configcheck

    return configcheck.main(args.replicas, args.json)


def _add_config(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    config = commands.add_parser(
        "config",
        help="check this environment's settings for production",
        description="Judge the configuration in the environment before start-up.",
    )
    verbs = config.add_subparsers(title="subcommands", dest="verb", metavar="SUBCOMMAND", required=True)
    check = verbs.add_parser(
        "check",
        help="report missing or unsafe production settings (exit 1 on any error)",
        description="Report settings that are missing or unsafe in production: no master key, a "
        "live admin key fixed in the environment, private webhook targets allowed, SQLite or chDB "
        "with replicas, an embedded bus, test-only switches. Errors exit 1, warnings 0.",
    )
    check.add_argument(
        "--replicas", type=int, help="replicas of each service (default: STRATUS_REPLICAS, else 1)"
    )
    check.add_argument("--json", action="store_true", help='print {"ok", "findings": [...]} as JSON')
    check.set_defaults(handler=_config_check)


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
    up.add_argument(
        "--replicas",
        type=int,
        help="processes of each service and of the gateway (default: STRATUS_REPLICAS, else 1); "
        "the gateways share one port, the metrics service on embedded chDB stays one",
    )
    up.set_defaults(handler=_up)

    rebuild = commands.add_parser(
        "rebuild",
        help="rebuild a read model from the event log",
        description="Drop a service's read model and replay it from the event log; prints the "
        "number of rows per mode as JSON.",
    )
    rebuild.add_argument("view", choices=services.rebuildable(), help="whose read models to rebuild")
    rebuild.set_defaults(handler=_rebuild)
    _add_accounts(commands)
    _add_secrets(commands)
    _add_env(commands)
    _add_config(commands)
    _add_sandbox(commands)
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
