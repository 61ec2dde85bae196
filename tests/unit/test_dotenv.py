"""dotenv text: what the export writes, python-dotenv reads back exactly (quotes, escapes, newlines,
`#`, `$`, unicode), and what an upload may hold (markers, errors by line)."""

from __future__ import annotations

import io
import random
import string
from datetime import UTC, datetime

import pytest
from dotenv import dotenv_values

from stratus_contracts import envs
from stratus_gateway import dotenv
from stratus_gateway.problems import ApiError

TRICKY = [
    "",
    "plain",
    "with space",
    "  leading and trailing  ",
    "it's",
    'say "hi"',
    "both ' and \"",
    "back\\slash",
    "trailing backslash\\",
    "\\'",
    '\\"',
    "\\n is not a newline",
    "line one\nline two",
    "crlf\r\nend",
    "tab\there",
    "# not a comment",
    "value # with hash",
    "a=b=c",
    "${HOME} and $PATH stay literal",
    "`backticks`",
    "ünïcödé ✓ 秘密",
    "\x01control\x7f",
    "ends with newline\n",
    "'single quoted'",
    '"double quoted"',
    "=",
    "export X=1",
]


def _version(values: dict[str, tuple[str | None, bool]]) -> envs.ConfigVersion:
    now = datetime.now(UTC)
    items = [
        envs.EnvVar(key=k, value=v, secret=secret, redacted=v is None, fingerprint="f" * 32, updated=now)
        for k, (v, secret) in sorted(values.items())
    ]
    return envs.ConfigVersion(
        number=3,
        env_id="env_x",
        project_id="prj_x",
        environment="production",
        created=now,
        changed=[],
        removed=[],
        var_count=len(items),
        vars=items,
        env_version=4,
        current=True,
    )


@pytest.mark.parametrize("value", TRICKY)
def test_every_rendered_value_reads_back_exactly(value: str) -> None:
    text = dotenv.render(_version({"KEY": (value, False)}))
    assert dotenv_values(stream=io.StringIO(text), interpolate=False) == {"KEY": value}
    assert dotenv.parse(text).vars == [envs.VarChange(key="KEY", value=value)]


def test_random_values_round_trip() -> None:
    rng = random.Random(5)
    alphabet = string.printable + "é✓\x00\x0b'\"\\$#="
    values = {f"K{i}": "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40))) for i in range(300)}
    text = dotenv.render(_version({k: (v, False) for k, v in values.items()}))
    assert {c.key: c.value for c in dotenv.parse(text).vars} == values
    assert dotenv_values(stream=io.StringIO(text), interpolate=False) == values


def test_simple_values_stay_bare_and_others_get_the_plainest_quotes() -> None:
    assert dotenv.quote("postgres://u@h:5432/db") == "postgres://u@h:5432/db"
    assert dotenv.quote("a b") == "'a b'"
    assert dotenv.quote("${X}") == "'${X}'"  # single quotes: no interpolation in other readers
    assert dotenv.quote("it's") == '"it\'s"'
    assert dotenv.quote("a\nb") == '"a\\nb"'


def test_secrets_are_marked_and_redacted_ones_kept() -> None:
    text = dotenv.render(_version({"SHOWN": ("s3cret", True), "HIDDEN": (None, True), "PLAIN": ("p", False)}))
    assert "# stratus:redacted HIDDEN fingerprint=" in text
    assert "# stratus:secret\nSHOWN=s3cret" in text
    parsed = dotenv.parse(text)
    assert parsed.keep == ["HIDDEN"]
    assert {(c.key, c.value, c.secret) for c in parsed.vars} == {
        ("SHOWN", "s3cret", True),
        ("PLAIN", "p", None),
    }
    # Other readers see the markers as comments, and no value for the redacted secret.
    assert dotenv_values(stream=io.StringIO(text)) == {"SHOWN": "s3cret", "PLAIN": "p"}


def test_uploads_accept_what_people_write() -> None:
    text = (
        "\ufeff# comment\n\nexport A=1\nB = two words # trailing comment\nC='x'  \n"
        'D="multi\nline"\nE=\n# stratus:secret\n\nF=marked\nG=after\n'
    )
    parsed = dotenv.parse(text)
    assert [(c.key, c.value, c.secret) for c in parsed.vars] == [
        ("A", "1", None),
        ("B", "two words", None),
        ("C", "x", None),
        ("D", "multi\nline", None),
        ("E", "", None),
        ("F", "marked", True),
        ("G", "after", None),
    ]


def _errors(text: str) -> list[tuple[str, str]]:
    with pytest.raises(ApiError) as info:
        dotenv.parse(text)
    assert info.value.code == "validation_failed"
    return [(e.field, e.message) for e in info.value.errors or []]


def test_bad_lines_are_named() -> None:
    errors = _errors("OK=1\n\n1BAD=x\nNO_EQUALS\nDUP=1\nDUP=2\nQ='unterminated\n")
    fields = [f for f, _ in errors]
    assert fields == ["line 3", "line 4", "line 6", "line 7"]
    assert "start with a letter" in errors[0][1]
    assert "no `=`" in errors[1][1]
    assert "more than once" in errors[2][1]
    assert _errors("K=" + "x" * (envs.VALUE_MAX_BYTES + 1))[0][0] == "line 1"
    assert _errors("a.b=1")[0][0] == "line 1"
