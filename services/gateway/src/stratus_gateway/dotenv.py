"""`.env` text in and out: parse an upload into variable changes, render a config version.

Parsing uses python-dotenv's parser (`KEY=value`, `export KEY=value`, single- and double-quoted
values, multi-line quoted values, `#` comments) without interpolation: `${X}` stays as written.
Rendering picks, per value, the plainest form that python-dotenv reads back exactly: bare when
the value is made of safe characters only, single quotes when it has no quote, backslash or
control character (literal in most dotenv readers), else double quotes with `\\`, `\"`, `\n`,
`\r` and `\t` escaped.

Two comment lines carry what `KEY=value` cannot (other tools see plain comments):

* `# stratus:secret` marks the next variable as secret;
* `# stratus:redacted KEY fingerprint=…` stands for a secret whose value an export did not show:
  an import keeps that variable as it is (and `prune` does not delete it).
"""

from __future__ import annotations

import io
import re
from typing import NamedTuple

from dotenv.parser import parse_stream

from stratus_contracts import envs
from stratus_contracts.errors import FieldError
from stratus_gateway.problems import ApiError

SECRET_MARK = "stratus:secret"  # noqa: S105 - a marker, not a password
REDACTED_MARK = "stratus:redacted"
_BARE = re.compile(r"[A-Za-z0-9_./:@%+,=-]+")
_NEEDS_DOUBLE = re.compile(r"['\\\x00-\x1f\x7f]")
_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_TO_ESCAPE = re.compile(r'[\\"\n\r\t]')
MAX_ERRORS = 20


class Parsed(NamedTuple):
    vars: list[envs.VarChange]  # in file order; `secret` True when marked, else None (keep flag)
    keep: list[str]  # keys a `# stratus:redacted` line stands for


def quote(value: str) -> str:
    if _BARE.fullmatch(value):
        return value
    if not _NEEDS_DOUBLE.search(value):
        return f"'{value}'"
    return '"' + _TO_ESCAPE.sub(lambda m: _ESCAPES[m.group(0)], value) + '"'


def render(version: envs.ConfigVersion) -> str:
    """The variables of a config version as dotenv text (redacted secrets as marker comments)."""
    lines = [
        f"# Stratus environment {version.environment} ({version.env_id}) of project "
        f"{version.project_id}, config version {version.number}.",
    ]
    if any(v.redacted for v in version.vars):
        lines.append("# Secret values are redacted; pull with `?reveal=true` (admin scope) to include them.")
    for var in version.vars:
        if var.redacted:
            lines.append(f"# {REDACTED_MARK} {var.key} fingerprint={var.fingerprint}")
            continue
        if var.secret:
            lines.append(f"# {SECRET_MARK}")
        lines.append(f"{var.key}={quote(var.value or '')}")
    return "\n".join(lines) + "\n"


def _line_of(original: str, line: int) -> int:
    """The line a binding's key is on (python-dotenv reports where its leading blank lines began)."""
    leading = original[: len(original) - len(original.lstrip())]
    return line + leading.count("\n") + leading.count("\r") - leading.count("\r\n")


def parse(text: str) -> Parsed:
    """Variables (and kept keys) of a dotenv upload, or 422 `validation_failed` naming each bad line."""
    errors: list[FieldError] = []
    changes: list[envs.VarChange] = []
    keep: list[str] = []
    seen: set[str] = set()
    secret_next = False

    def fail(line: int, message: str) -> None:
        errors.append(FieldError(field=f"line {line}", message=message))

    for binding in parse_stream(io.StringIO(text)):
        line = _line_of(binding.original.string, binding.original.line)
        if binding.error:
            fail(line, "Not a `KEY=value` line, a comment or a blank line (check the quotes).")
            continue
        if binding.key is None:
            comment = binding.original.string.strip().lstrip("#").strip()
            if comment == SECRET_MARK:
                secret_next = True
            elif comment.startswith(REDACTED_MARK + " "):
                key = comment.split()[1]
                if (problem := envs.key_problem(key)) is not None:
                    fail(line, problem)
                else:
                    keep.append(key)
            continue
        key, value = binding.key, binding.value
        if (problem := envs.key_problem(key)) is not None:
            fail(line, problem)
        elif value is None:
            fail(line, f"{key} has no `=`: write `{key}=` for an empty value.")
        elif key in seen:
            fail(line, f"{key} is set more than once.")
        elif (problem := envs.value_problem(value)) is not None:
            fail(line, problem)
        else:
            changes.append(envs.VarChange(key=key, value=value, secret=True if secret_next else None))
        seen.add(key)
        secret_next = False
    for key in keep:
        if key in seen:
            errors.append(FieldError(field=key, message=f"{key} is both set and marked redacted."))
    if len(changes) > envs.MAX_VARS:
        errors.append(FieldError(field="body", message=f"At most {envs.MAX_VARS} variables per environment."))
    if errors:
        raise ApiError("validation_failed", errors[0].message, errors=errors[:MAX_ERRORS])
    return Parsed(vars=changes, keep=keep)
