"""The CLI's commands for users of the API: each talks HTTP through the Python SDK (`stratus`),
never NATS, with the key and gateway `session` finds. Tables by default, `--json` for scripts;
exit codes are `output`'s."""

from __future__ import annotations

import base64
import contextlib
import secrets
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import click
import httpx
import msgspec

from stratus_cli import output, session
from stratus_cli.output import DEPLOY_FAILED, NO_KEY, OK

F = TypeVar("F", bound=Callable[..., Any])
TERMINAL = frozenset({"ready", "failed", "canceled", "superseded"})
SCOPES = ("read", "write", "admin")


def _client(key: str | None, api_url: str | None, test: bool = False) -> Any:
    import stratus

    return stratus.Client(api_key=session.api_key(key, test), base_url=session.api_url(api_url))


@contextlib.contextmanager
def client_for(options: dict[str, Any]) -> Iterator[Any]:
    """An SDK client for the command's `--key`/`--api-url`/`--test`; API errors become exit codes."""
    import stratus

    try:
        with _client(options.get("key"), options.get("api_url"), options.get("test", False)) as client:
            yield client
    except stratus.AuthenticationError as exc:
        output.fail(_problem(exc), NO_KEY)
    except stratus.APIError as exc:
        output.fail(_problem(exc))
    except stratus.APIConnectionError as exc:
        output.fail(f"cannot reach the API at {session.api_url(options.get('api_url'))}: {exc}")


def _problem(exc: Any) -> str:
    where = f", request {exc.request_id}" if exc.request_id else ""
    return f"{exc.detail or exc.title} ({exc.code}, HTTP {exc.status}{where})"


def api_options(fn: F) -> F:
    """The options every HTTP command takes: --key, --api-url, --test, --json."""
    fn = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")(fn)
    fn = click.option(
        "--test", is_flag=True, help="Use the local stack's test-mode key (when no --key or STRATUS_API_KEY)."
    )(fn)
    fn = click.option("--api-url", help="The API's base URL (default: STRATUS_API_URL, login, local stack).")(
        fn
    )
    return click.option("--key", help="The API key (default: STRATUS_API_KEY, then `stratus login`).")(fn)


def done(code: int) -> None:
    if code:
        raise click.exceptions.Exit(code)


def register(cli: click.Group) -> None:
    """Add the user commands to the `stratus` command tree."""
    for command in (
        login,
        logout,
        whoami,
        projects,
        keys,
        deploy,
        logs,
        rollback,
        deployments,
        webhooks,
        listen,
        metrics,
    ):
        cli.add_command(command)


# -- login ---------------------------------------------------------------------------------


@click.command()
@click.option("--key", help="The API key (sk_live_… or sk_test_…); asked for when not given.")
@click.option("--api-url", help="The API's base URL (default: STRATUS_API_URL, else the local stack).")
@click.option("--json", "as_json", is_flag=True, help="Print the key's identity as JSON.")
def login(key: str | None, api_url: str | None, as_json: bool) -> None:
    """Check an API key against the API and store it for the other commands.

    The key and URL go to the user's config dir (config.json, mode 0600); STRATUS_API_KEY and
    --key still win over it.
    """
    import stratus

    if not key:
        key = click.prompt("API key", hide_input=True) if sys.stdin.isatty() else sys.stdin.readline().strip()
    url = session.api_url(api_url)
    try:
        with stratus.Client(api_key=key, base_url=url, max_retries=1) as client:
            me = client.me()
    except stratus.AuthenticationError as exc:
        output.fail(_problem(exc), NO_KEY)
    except stratus.APIError as exc:
        output.fail(_problem(exc))
    except stratus.APIConnectionError as exc:
        output.fail(f"cannot reach the API at {url}: {exc}")
    path = session.write_profile(url, key)
    if as_json:
        output.print_json(me)
        return
    data = output.builtins(me)
    account = data.get("account") or data.get("account_id")
    output.err.print(f"Logged in to {url} as {account} ({data.get('mode')} mode, key {data.get('key_id')}).")
    output.err.print(f"Saved to {path}.")


@click.command()
def logout() -> None:
    """Forget the key `stratus login` stored."""
    removed = session.forget_profile()
    output.err.print("Logged out." if removed else "Not logged in.")


@click.command()
@api_options
def whoami(**options: Any) -> None:
    """Show the calling key: account, mode, scopes."""
    with client_for(options) as client:
        output.fields(client.me(), as_json=options["as_json"])


# -- projects ------------------------------------------------------------------------------


@click.group()
def projects() -> None:
    """List, create, show and delete projects."""


@projects.command("list")
@api_options
def projects_list(**o: Any) -> int | None:
    """Every project (all pages), newest first."""
    with client_for(o) as client:
        return output.table(
            client.projects.list(limit=100),
            [
                ("ID", lambda p: p.id),
                ("NAME", lambda p: p.name),
                ("MODE", lambda p: p.mode),
                ("CREATED", lambda p: p.created),
            ],
            as_json=o["as_json"],
            empty="No projects.",
        )


@projects.command("create")
@click.argument("name")
@click.option("--description", help="What the project is for.")
@api_options
def projects_create(**o: Any) -> int | None:
    """Create project NAME (with its production and staging environments)."""
    import stratus

    with client_for(o) as client:
        made = client.projects.create(name=o["name"], description=o["description"] or stratus.UNSET)
        return output.fields(made, as_json=o["as_json"], order=("id", "name"))


@projects.command("get")
@click.argument("project_id")
@api_options
def projects_get(**o: Any) -> int | None:
    """Show project PROJECT_ID and its environments."""
    with client_for(o) as client:
        project = client.projects.get(o["project_id"])
        if o["as_json"]:
            output.print_json(
                {
                    **output.builtins(project),
                    "environments": output.builtins(list(client.envs.list(project.id))),
                }
            )
            return OK
        output.fields(project, as_json=False, order=("id", "name"))
        output.out.print()
        return output.table(
            client.envs.list(project.id),
            [
                ("ENV", lambda e: e.id),
                ("NAME", lambda e: e.name),
                ("BRANCH", lambda e: getattr(e, "branch", None)),
            ],
            as_json=False,
            empty="No environments.",
        )


@projects.command("delete")
@click.argument("project_id")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@api_options
def projects_delete(**o: Any) -> int | None:
    """Delete project PROJECT_ID (its environments, variables and deployments go with it)."""
    if not o["yes"]:
        click.confirm(f"Delete {o['project_id']}?", abort=True, err=True)
    with client_for(o) as client:
        gone = client.projects.delete(o["project_id"])
        if o["as_json"]:
            output.print_json(gone)
        else:
            output.err.print(f"Deleted {gone.id} ({gone.name}).")
        return OK


# -- keys ----------------------------------------------------------------------------------


@click.group()
def keys() -> None:
    """List, create, rotate and revoke API keys (admin scope)."""


KEY_COLUMNS: list[output.Column] = [
    ("ID", lambda k: k.id),
    ("NAME", lambda k: k.name),
    ("HINT", lambda k: k.hint),
    ("SCOPES", lambda k: k.scopes),
    ("CREATED", lambda k: k.created),
    ("REVOKED", lambda k: k.revoked),
]


@keys.command("list")
@click.option("--revoked/--active", default=None, help="Only revoked, or only active, keys.")
@api_options
def keys_list(**o: Any) -> int | None:
    """The keys of the calling key's mode."""
    with client_for(o) as client:
        return output.table(
            client.keys.list(revoked=o["revoked"]), KEY_COLUMNS, as_json=o["as_json"], empty="No keys."
        )


def _show_secret(made: Any, as_json: bool) -> int:
    if as_json:
        output.print_json(made)
        return OK
    output.fields(made, as_json=False, order=("id", "name", "secret"))
    output.err.print("The secret is shown once: store it now.")
    return OK


@keys.command("create")
@click.argument("name")
@click.option(
    "--scope", "scopes", multiple=True, type=click.Choice(SCOPES), help="Repeat for several (default: read)."
)
@click.option("--project", "project_ids", multiple=True, help="Restrict to this project (repeatable).")
@click.option("--env", "environments", multiple=True, help="Restrict to this environment name (repeatable).")
@api_options
def keys_create(**o: Any) -> int | None:
    """Create key NAME; its secret is printed once."""
    import stratus

    with client_for(o) as client:
        made = client.keys.create(
            name=o["name"],
            scopes=list(o["scopes"] or ("read",)),
            project_ids=list(o["project_ids"]) or stratus.UNSET,
            environments=list(o["environments"]) or stratus.UNSET,
        )
        return _show_secret(made, o["as_json"])


@keys.command("rotate")
@click.argument("key_id")
@click.option("--overlap", type=click.IntRange(min=0), help="Seconds the old secret keeps working.")
@api_options
def keys_rotate(**o: Any) -> int | None:
    """Give KEY_ID a new secret (printed once); the old one works for the overlap."""
    import stratus

    with client_for(o) as client:
        made = client.keys.rotate(
            o["key_id"], overlap_seconds=stratus.UNSET if o["overlap"] is None else o["overlap"]
        )
        return _show_secret(made, o["as_json"])


@keys.command("revoke")
@click.argument("key_id")
@api_options
def keys_revoke(**o: Any) -> int | None:
    """Revoke KEY_ID at once."""
    with client_for(o) as client:
        gone = client.keys.revoke(o["key_id"])
        if o["as_json"]:
            output.print_json(gone)
        else:
            output.err.print(f"Revoked {gone.id} ({gone.name}).")
        return OK


# -- deployments ---------------------------------------------------------------------------


def _finish(client: Any, deployment: Any, *, as_json: bool, quiet_logs: bool) -> int:
    """Follow a deployment's build log to its end, then wait for its final status."""
    status = (
        output.err.status(f"{deployment.id}: {deployment.status}", spinner="dots")
        if output.err.is_terminal
        else None
    )
    if status is not None:
        status.start()
    try:
        with client.deployments.logs(deployment.id) as lines:
            for line in lines:
                if not quiet_logs:
                    target = sys.stderr if as_json else sys.stdout
                    target.write(line.text.rstrip("\n") + "\n")
                    target.flush()
        current = client.deployments.get(deployment.id)
        while current.status not in TERMINAL:
            if status is not None:
                status.update(f"{current.id}: {current.status}")
            time.sleep(0.5)  # polling the API for the health check's verdict
            current = client.deployments.get(deployment.id)
    finally:
        if status is not None:
            status.stop()
    if as_json:
        output.print_json(current)
    elif current.status == "ready":
        output.err.print(
            f"[green]{current.id} is ready[/green]" + (f" at {current.url}" if current.url else "")
        )
    else:
        output.err.print(
            f"[red]{current.id} {current.status}[/red]" + (f": {current.reason}" if current.reason else "")
        )
    return OK if current.status == "ready" else DEPLOY_FAILED


@click.command()
@click.argument("project")
@click.option("--env", default="production", show_default=True, help="The environment's name.")
@click.option("--ref", help="The git ref to build (default: the environment's branch).")
@click.option("--sha", help="An exact commit to build.")
@click.option("--no-follow", is_flag=True, help="Print the queued deployment and return at once.")
@api_options
def deploy(**o: Any) -> int | None:
    """Deploy PROJECT: build, follow the build log, and wait until it is ready.

    Exits 0 when the deployment is ready, 3 when it failed or was canceled.
    """
    import stratus

    with client_for(o) as client:
        made = client.deployments.create(
            project=o["project"], env=o["env"], ref=o["ref"] or stratus.UNSET, sha=o["sha"] or stratus.UNSET
        )
        if o["no_follow"]:
            code = output.fields(made, as_json=o["as_json"], order=("id", "status"))
        else:
            if not o["as_json"]:
                output.err.print(f"Deploying {o['project']} ({o['env']}): {made.id}")
            code = _finish(client, made, as_json=o["as_json"], quiet_logs=False)
    if code:
        raise click.exceptions.Exit(code)


@click.command()
@click.argument("deployment_id")
@click.option("-f", "--follow", is_flag=True, help="Go on with the running app's lines.")
@api_options
def logs(**o: Any) -> int | None:
    """Print DEPLOYMENT_ID's log: the build, and with --follow the app's lines as they come."""
    with client_for(o) as client, client.deployments.logs(o["deployment_id"], follow=o["follow"]) as lines:
        try:
            for line in lines:
                if o["as_json"]:
                    output.print_json_line(line)
                else:
                    sys.stdout.write(line.text.rstrip("\n") + "\n")
                    sys.stdout.flush()
        except KeyboardInterrupt:
            return


@click.command()
@click.argument("deployment_id")
@click.option("--no-follow", is_flag=True, help="Return once the rollback is queued.")
@api_options
def rollback(**o: Any) -> int | None:
    """Deploy DEPLOYMENT_ID's artifact and config again (no rebuild), and wait until it is ready."""
    with client_for(o) as client:
        made = client.deployments.rollback(o["deployment_id"])
        if o["no_follow"]:
            code = output.fields(made, as_json=o["as_json"], order=("id", "status"))
        else:
            code = _finish(client, made, as_json=o["as_json"], quiet_logs=True)
    if code:
        raise click.exceptions.Exit(code)


@click.group()
def deployments() -> None:
    """List and show deployments."""


@deployments.command("list")
@click.option("--project", help="Only this project's.")
@click.option("--env", help="Only this environment's (with --project).")
@click.option(
    "--limit", type=click.IntRange(1, 1000), default=20, show_default=True, help="How many, newest first."
)
@api_options
def deployments_list(**o: Any) -> int | None:
    """The newest deployments."""
    import itertools

    with client_for(o) as client:
        found = client.deployments.list(project=o["project"], env=o["env"], limit=min(o["limit"], 100))
        return output.table(
            itertools.islice(found, o["limit"]),
            [
                ("ID", lambda d: d.id),
                ("PROJECT", lambda d: d.project),
                ("ENV", lambda d: d.env),
                ("STATUS", lambda d: d.status),
                ("URL", lambda d: d.url),
            ],
            as_json=o["as_json"],
            empty="No deployments.",
        )


@deployments.command("get")
@click.argument("deployment_id")
@api_options
def deployments_get(**o: Any) -> int | None:
    """Show DEPLOYMENT_ID."""
    with client_for(o) as client:
        return output.fields(
            client.deployments.get(o["deployment_id"]), as_json=o["as_json"], order=("id", "status")
        )


# -- webhooks ------------------------------------------------------------------------------


@click.group()
def webhooks() -> None:
    """Webhook endpoints, their deliveries, and redelivery."""


@webhooks.command("list")
@api_options
def webhooks_list(**o: Any) -> int | None:
    """Every webhook endpoint."""
    with client_for(o) as client:
        return output.table(
            client.webhooks.list(),
            [
                ("ID", lambda w: w.id),
                ("URL", lambda w: w.url),
                ("EVENTS", lambda w: w.events),
                ("STATUS", lambda w: w.status),
            ],
            as_json=o["as_json"],
            empty="No webhook endpoints.",
        )


@webhooks.command("create")
@click.argument("url")
@click.option(
    "--event", "events", multiple=True, help="An event type to send (repeatable; default: every type)."
)
@click.option("--project", help="Only this project's events.")
@click.option("--description", help="What the endpoint is for.")
@api_options
def webhooks_create(**o: Any) -> int | None:
    """Create an endpoint at URL; its signing secret is printed once."""
    import stratus

    with client_for(o) as client:
        made = client.webhooks.create(
            url=o["url"],
            events=list(o["events"] or ("*",)),
            project=o["project"] or stratus.UNSET,
            description=o["description"] or stratus.UNSET,
        )
        return _show_secret(made, o["as_json"])


@webhooks.command("deliveries")
@click.argument("webhook_id")
@click.option(
    "--status", type=click.Choice(["pending", "succeeded", "failed", "simulated"]), help="Only these."
)
@api_options
def webhooks_deliveries(**o: Any) -> int | None:
    """WEBHOOK_ID's deliveries, newest first, with their last attempt."""

    def last(d: Any) -> str:
        if not d.attempts:
            return "—"
        a = d.attempts[-1]
        return str(getattr(a, "status_code", None) or getattr(a, "error", None) or "—")

    with client_for(o) as client:
        return output.table(
            client.webhooks.deliveries.list(o["webhook_id"], status=o["status"]),
            [
                ("ID", lambda d: d.id),
                ("EVENT", lambda d: d.event_type),
                ("STATUS", lambda d: d.status),
                ("ATTEMPTS", lambda d: len(d.attempts)),
                ("LAST", last),
                ("CREATED", lambda d: d.created),
            ],
            as_json=o["as_json"],
            empty="No deliveries.",
        )


@webhooks.command("redeliver")
@click.argument("webhook_id")
@click.option("--delivery", "delivery_id", help="One delivery, again.")
@click.option("--event", "event_id", help="Every delivery of this event, again.")
@click.option("--since", type=click.DateTime(), help="Every failed delivery made since (with --until).")
@click.option("--until", type=click.DateTime(), help="… and before this time.")
@api_options
def webhooks_redeliver(**o: Any) -> int | None:
    """Send deliveries of WEBHOOK_ID again now: one, one event's, or every failed one in a range."""
    import stratus

    if not (o["delivery_id"] or o["event_id"] or o["since"]):
        raise click.UsageError("name --delivery, --event, or --since [--until]")
    with client_for(o) as client:
        queued = client.webhooks.redeliver(
            o["webhook_id"],
            delivery_id=o["delivery_id"] or stratus.UNSET,
            event_id=o["event_id"] or stratus.UNSET,
            since=_utc(o["since"]) or stratus.UNSET,
            until=_utc(o["until"]) or stratus.UNSET,
        )
        if o["as_json"]:
            output.print_json(queued)
        else:
            output.err.print(f"Queued {len(queued)} deliver{'y' if len(queued) == 1 else 'ies'}.")
        return OK


def _utc(value: Any) -> Any:
    from datetime import UTC

    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


# -- listen --------------------------------------------------------------------------------


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode("ascii")


@click.command()
@click.option("--forward-to", required=True, help="The local URL that receives each event, signed (POST).")
@click.option(
    "--event", "events", multiple=True, help="Only this event type (repeatable; `project.` for a prefix)."
)
@click.option("--project", help="Only this project's events.")
@click.option("--secret", help="The whsec_… secret to sign with (default: a new one, printed).")
@api_options
def listen(**o: Any) -> int | None:
    """Receive the account's events live and forward each, signed, to a local URL.

    Each POST carries the event object as the webhooks service sends it, with `webhook-id`,
    `webhook-timestamp` and `webhook-signature` (Standard Webhooks) under the printed secret,
    so a receiver checks it as it would a real delivery. Runs until Ctrl-C.
    """
    import stratus

    secret = o["secret"] or new_secret()
    wanted = tuple(o["events"])
    output.err.print(
        f"Ready. Forwarding events to {o['forward_to']}; "
        f"signing secret [bold]{secret}[/bold] (Ctrl-C to stop)."
    )
    with client_for(o) as client, httpx.Client(timeout=10.0, trust_env=False) as http:
        stream = client.events.stream(project=o["project"])
        try:
            for event in stream:
                if wanted and not any(
                    event.type == w or (w.endswith((".", "*")) and event.type.startswith(w.rstrip("*")))
                    for w in wanted
                ):
                    continue
                body = msgspec.json.encode(event)  # the event object, as a delivery carries it
                headers = stratus.webhooks.sign(body, secret, msg_id=event.id)
                headers = {
                    **headers,
                    "X-Signature": headers["webhook-signature"],
                    "Content-Type": "application/json",
                }
                try:
                    answer: Any = http.post(o["forward_to"], content=body, headers=headers).status_code
                except httpx.HTTPError as exc:
                    answer = f"error: {exc}"
                if o["as_json"]:
                    output.print_json_line({"event": event.id, "type": event.type, "status": answer})
                else:
                    output.out.print(
                        f"{event.created:%H:%M:%S}  {event.type:<28} {event.id}  → {answer}", markup=False
                    )
        except KeyboardInterrupt:
            pass
        finally:
            stream.close()


# -- metrics -------------------------------------------------------------------------------


@click.command()
@click.argument("what", type=click.Choice(["requests", "latency", "errors"]), default="requests")
@click.option("--range", "range_", default="1h", show_default=True, help="1m … 30d.")
@click.option("--step", help="Bucket size (default: chosen from the range).")
@click.option("--project", help="Only this project's requests.")
@click.option("--env", help="Only this environment's (a name).")
@click.option("--route", help="Only this route template.")
@click.option(
    "--group-by", type=click.Choice(["env", "route", "status", "method"]), help="A series per value."
)
@api_options
def metrics(**o: Any) -> int | None:
    """Request counts, latency percentiles or error rates over a range, as a table."""
    with client_for(o) as client:
        ask = {
            "requests": client.metrics.requests,
            "latency": client.metrics.latency,
            "errors": client.metrics.errors,
        }[o["what"]]
        result = ask(
            range=o["range_"],
            step=o["step"],
            project=o["project"],
            env=o["env"],
            route=o["route"],
            group_by=o["group_by"],
        )
        if o["as_json"]:
            output.print_json(result)
            return
        rows = [
            (", ".join(f"{k}={v}" for k, v in sorted(series.labels.items())) or "all", point)
            for series in result.series
            for point in series.points
            if any(v not in (None, 0) for v in point[1:])
        ]
        output.table(
            rows,
            [
                ("SERIES", lambda r: r[0]),
                ("TIME", lambda r: r[1][0]),
                ("VALUE", lambda r: r[1][1]),
            ],
            as_json=False,
            empty=f"No {o['what']} in the last {o['range_']}.",
        )
