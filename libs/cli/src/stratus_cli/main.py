"""Entry point of the `stratus` console script: the command tree (Click), each command a thin
call into the module that does its work, imported only when that command runs (a `--help`
stays quick). Usage errors exit 2, failures 1, success 0."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version

import click

from stratus_cli import api
from stratus_contracts import services

PLANS = ("free", "pro", "internal")
OPERATOR = "They reach the running stack through $STRATUS_DATA_DIR/stack.json (or NATS_URL)."


def _version() -> str:
    try:
        return version("stratus-cli")
    except PackageNotFoundError:
        return "unknown"


def _exit(code: int) -> None:
    if code:
        sys.exit(code)


@click.group(
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog="Configuration comes from the environment: STRATUS_DATA_DIR (default .stratus), "
    "STRATUS_HOST, STRATUS_PORT (default 127.0.0.1:8080), NATS_URL (default: run an embedded "
    "nats-server), STRATUS_ADMIN_KEY.",
)
@click.version_option(_version(), prog_name="stratus", message="%(prog)s %(version)s")
def cli() -> None:
    """Stratus: a self-hostable cloud platform API."""


@cli.command()
@click.option(
    "--replicas",
    type=click.IntRange(min=1),
    help="Processes of each service and of the gateway (default: STRATUS_REPLICAS, else 1); the "
    "gateways share one port, the metrics service on embedded chDB stays one.",
)
def up(replicas: int | None) -> None:
    """Run the whole stack locally (bus, services, gateway) until Ctrl-C.

    Start nats-server (unless NATS_URL is set), every service and the gateway; create the first
    account and its admin keys on first run; restart crashed services; stop everything on
    SIGINT/SIGTERM.
    """
    if replicas is not None:
        os.environ["STRATUS_REPLICAS"] = str(replicas)
    # Importing the supervisor takes a moment; a Ctrl-C or SIGTERM meanwhile must still mean
    # "stop cleanly", so note it now and let the supervisor act on it once it runs.
    early: list[int] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda signum, _frame: early.append(signum))
    from stratus_cli import supervisor

    _exit(supervisor.main(early))


@cli.command()
@click.argument("view", type=click.Choice(services.rebuildable()))
def rebuild(view: str) -> None:
    """Rebuild VIEW's read models from the event log.

    Drop a service's read model and replay it from the event log; prints the number of rows per
    mode as JSON.
    """
    from stratus_cli import rebuild as rebuilding

    _exit(rebuilding.main(view))


@cli.group(help=f"Create tenant accounts and change their plans on the running stack. {OPERATOR}")
def accounts() -> None:
    pass


@accounts.command("create")
@click.argument("name")
@click.option("--plan", type=click.Choice(PLANS), default="free", show_default=True, help="Rate-limit plan.")
@click.option("--json", "as_json", is_flag=True, help="Print the account, its keys and key ids as JSON.")
def accounts_create(name: str, plan: str, as_json: bool) -> None:
    """Create an account NAME with one admin key per mode.

    The keys are printed once and stored nowhere else.
    """
    from stratus_cli import accounts as accounting

    _exit(accounting.main_create(name, plan, as_json))


@accounts.command("set-plan")
@click.argument("account")
@click.argument("plan", type=click.Choice(PLANS))
def accounts_set_plan(account: str, plan: str) -> None:
    """Change ACCOUNT's (acct_…) plan; gateways drop their cached view of its keys at once."""
    from stratus_cli import accounts as accounting

    _exit(accounting.main_set_plan(account, plan))


@cli.group(help=f"Manage the master key that protects environment variables. {OPERATOR}")
def secrets() -> None:
    pass


@secrets.command("rotate-master-key")
def secrets_rotate() -> None:
    """Re-wrap every data key under the services' current master key.

    Run after restarting the services with the new key in STRATUS_MASTER_KEY and the old one in
    STRATUS_MASTER_KEY_PREVIOUS (the local stack: master.key and master.key.previous in the data
    dir). The expected key is STRATUS_MASTER_KEY, else the data dir's master.key; a replica
    holding another key refuses. Prints the counts per mode as JSON; once `unavailable` is 0
    everywhere the old key can go.
    """
    from stratus_cli import masterkey

    _exit(masterkey.main_rotate())


@secrets.command("generate-master-key")
def secrets_generate() -> None:
    """Print a new random master key (base64)."""
    from stratus_cli import masterkey

    _exit(masterkey.main_generate())


@cli.group(help="Download or upload an environment's variables as a .env file.")
def env() -> None:
    pass


def _key_options(command: click.Command) -> click.Command:
    command = click.option(
        "--test", is_flag=True, help="Use the local stack's test-mode key instead of the live one."
    )(command)
    return click.option("--key", help="The API key to use (default: STRATUS_API_KEY or the local stack's).")(
        command
    )


@env.command("pull")
@click.argument("env_id")
@_key_options
@click.option("--reveal", is_flag=True, help="Include secret values (admin scope; audited).")
@click.option("-o", "--output", help="Write to this file (mode 0600) instead of stdout.")
def env_pull(env_id: str, key: str | None, test: bool, reveal: bool, output: str | None) -> None:
    """Write ENV_ID's (env_…) variables as dotenv text."""
    from stratus_cli import envcmd

    _exit(envcmd.main_pull(env_id, key, test, reveal, output))


@env.command("push")
@click.argument("env_id")
@click.argument("file")
@_key_options
@click.option("--prune", is_flag=True, help="Also delete variables the file neither sets nor keeps.")
def env_push(env_id: str, file: str, key: str | None, test: bool, prune: bool) -> None:
    """Set ENV_ID's variables from FILE (a .env file, or - for stdin): a new config version."""
    from stratus_cli import envcmd

    _exit(envcmd.main_push(env_id, key, test, file, prune))


@cli.group(help=f"Reset test mode's data on the running stack. {OPERATOR}")
def sandbox() -> None:
    pass


@sandbox.command("reset")
def sandbox_reset() -> None:
    """Drop every service's test-mode data now; live data is untouched.

    Every service drops its test-mode data (event stores, read models, webhook endpoints and
    deliveries, deployments and their apps, audit rows, metrics partitions, the test-mode events
    on the stream); accounts and keys stay. Prints the new epoch and each service's as JSON;
    exit 1 if one has not followed within 30 s.
    """
    from stratus_cli import sandboxcmd

    _exit(sandboxcmd.main_reset())


@cli.group(help="Check this environment's settings for production.")
def config() -> None:
    pass


@config.command("check")
@click.option("--replicas", type=int, help="Replicas of each service (default: STRATUS_REPLICAS, else 1).")
@click.option("--json", "as_json", is_flag=True, help='Print {"ok", "findings": [...]} as JSON.')
def config_check(replicas: int | None, as_json: bool) -> None:
    """Report missing or unsafe production settings (exit 1 on any error).

    No master key, a live admin key fixed in the environment, private webhook targets allowed,
    SQLite or chDB with replicas, an embedded bus, test-only switches. Errors exit 1, warnings 0.
    """
    from stratus_cli import configcheck

    _exit(configcheck.main(replicas, as_json))


api.register(cli)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; the exit code (Click's own for usage errors: 2)."""
    try:
        # Outside standalone mode Click returns an `Exit`'s code (or the command's return value).
        code = cli.main(
            args=list(argv) if argv is not None else None, prog_name="stratus", standalone_mode=False
        )
    except click.exceptions.Exit as done:
        return done.exit_code
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.Abort:
        click.echo("Aborted.", err=True)
        return 130
    except SystemExit as done:
        return done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    return code if isinstance(code, int) else 0


if __name__ == "__main__":
    sys.exit(main())
