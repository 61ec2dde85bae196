"""How the CLI's HTTP commands print: a table for people (Rich), JSON with `--json` for scripts,
and one shape for errors on stderr.

Exit codes (documented in the README): 0 done; 1 the API refused or could not be reached; 2 a
usage error; 3 a deployment ended other than `ready`; 4 no usable API key (none found, or the
API answered 401).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

import click
import msgspec
from rich.console import Console
from rich.markup import escape
from rich.table import Table

OK, FAILED, USAGE, DEPLOY_FAILED, NO_KEY = 0, 1, 2, 3, 4

out = Console(soft_wrap=True, highlight=False)
err = Console(stderr=True, soft_wrap=True, highlight=False)


def builtins(value: Any) -> Any:
    return msgspec.to_builtins(value)


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(builtins(value), indent=2, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def print_json_line(value: Any) -> None:
    sys.stdout.write(json.dumps(builtins(value), ensure_ascii=False) + "\n")
    sys.stdout.flush()


def cell(value: Any) -> str:
    if value is None or value is msgspec.UNSET:
        return "—"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ", ".join(cell(v) for v in value) or "—"
    return str(value)


Column = tuple[str, Callable[[Any], Any]]


def table(rows: Iterable[Any], columns: Sequence[Column], *, as_json: bool, empty: str) -> int:
    """Print `rows` as a table of `columns` (header, getter), or as a JSON array."""
    items = list(rows)
    if as_json:
        print_json(items)
        return OK
    if not items:
        err.print(empty)
        return OK
    grid = Table(show_edge=False, box=None, pad_edge=False, header_style="bold")
    for header, _ in columns:
        grid.add_column(header, overflow="fold")
    for item in items:
        grid.add_row(*(escape(cell(get(item))) for _, get in columns))
    out.print(grid)
    return OK


def fields(value: Any, *, as_json: bool, order: Sequence[str] = ()) -> int:
    """Print one object: its fields one per line, or JSON."""
    if as_json:
        print_json(value)
        return OK
    data = builtins(value)
    keys = [k for k in order if k in data] + [k for k in data if k not in order]
    width = max(len(k) for k in keys) if keys else 0
    for key in keys:
        shown = data[key]
        if isinstance(shown, dict | list) and shown and not all(isinstance(v, str) for v in shown):
            shown = json.dumps(shown, ensure_ascii=False)
        out.print(f"[bold]{escape(key.ljust(width))}[/bold]  {escape(cell(shown))}")
    return OK


def fail(message: str, code: int = FAILED) -> None:
    """Stop the command with `message` on stderr and exit `code`."""
    err.print(f"[red]stratus:[/red] {escape(message)}")
    raise click.exceptions.Exit(code)
