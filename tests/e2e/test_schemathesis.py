"""Schemathesis against the running stack: every operation of `/openapi.json`, in its examples,
coverage (positive and negative values), fuzzing and stateful phases, with a fixed example budget
and seed. It fails on a server error, a status the document does not declare, a body that
violates its schema, a content type or response header the document does not declare, and an
`Allow` that disagrees with the document.

It runs as a tenant of its own (`stratus accounts create --plan internal`: no rate limit, and no
data shared with the other tests), with that account's live admin key. The key is protected from
itself: a write aimed at its own id (revoke, rotate, narrow) goes to an id that does not exist.
"""

from __future__ import annotations

import ast
import contextlib
import importlib
import inspect
import json
import pkgutil
import time
import uuid
import warnings
from typing import Any

import httpx
import pytest
import schemathesis
from schemathesis.config import SchemathesisConfig
from schemathesis.engine import Status, events, from_schema
from schemathesis.hooks import GLOBAL_HOOK_DISPATCHER

from stratus_testing import Stack

EXAMPLES = 25  # per operation and phase
SEED = 20260428
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "response_headers_conformance",
    "allow_header_conformance",
    "unsupported_method",
)
PHASES = ("examples", "coverage", "fuzzing", "stateful")
# A hard stop, far above what the budget above takes (about a minute on an idle 2-core machine).
# Not Schemathesis's `max-time`, which makes fuzzing and stateful testing repeat until it is spent.
BUDGET_SECONDS = 300
# CPython 3.11.7's AST validator can miscount its recursion depth when Hypothesis parses a
# module's source deep in a worker's stack (see `_prime_hypothesis_lambda_cache`): the
# interpreter's bug, in the test tool, so it is reported, not failed on.
INTERPRETER_BUG = "AST constructor recursion depth mismatch"


def _prime_hypothesis_lambda_cache() -> None:
    """Parse the coverage module's source for Hypothesis once, here, on a shallow stack.

    Hypothesis describes a filter lambda by parsing its module's source; on CPython 3.11.7 that
    parse, made deep inside a worker's stack, can fail with `SystemError: AST constructor
    recursion depth mismatch` (an interpreter bug), which Schemathesis reports as an error of
    whichever operation it was generating. Parsed here first, the source is cached and never
    parsed there. Best effort: a Schemathesis or Hypothesis without these names runs as it is."""
    try:
        from hypothesis.internal import lambda_sources
        from schemathesis.specs.openapi.coverage import _schema

        lines = tuple(inspect.findsource(_schema)[0])
        parsed = lambda_sources.extract_all_lambdas(ast.parse("".join(lines)))
        lambda_sources.AST_LAMBDAS_CACHE[lines] = parsed
    except (ImportError, AttributeError, OSError):
        pass


def _import_hypothesis() -> None:
    """Import Hypothesis's modules here, in one thread. It imports some lazily, on first use; two
    Schemathesis workers making that first use at once can see a module half imported
    (`ImportError: cannot import name 'RandomStrategy'`, seen in CI), reported as an error of
    whichever operation was being generated. `hypothesis.extra` needs optional packages: left out."""
    import hypothesis

    for found in pkgutil.walk_packages(hypothesis.__path__, "hypothesis."):
        if not found.name.startswith("hypothesis.extra"):
            with contextlib.suppress(ImportError):
                importlib.import_module(found.name)


@pytest.fixture(scope="module")
def tenant(stack: Stack) -> dict[str, str]:
    made = json.loads(
        stack.cli("accounts", "create", f"fuzz-{uuid.uuid4().hex[:8]}", "--json", "--plan", "internal").stdout
    )
    key = made["keys"]["live"]
    me = httpx.get(f"{stack.base_url}/v1/me", headers={"Authorization": f"Bearer {key}"}, trust_env=False)
    return {"key": key, "key_id": me.json()["data"]["key_id"]}


@pytest.mark.timeout(BUDGET_SECONDS)
def test_the_server_keeps_to_its_openapi_document(stack: Stack, tenant: dict[str, str]) -> None:
    own_key, nowhere = tenant["key_id"], "key_" + "0" * 26

    def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
        # The run's own key must survive it: revoking, rotating or narrowing it would turn the
        # rest of the run into 401s.
        if (case.path_parameters or {}).get("key_id") == own_key and case.method.upper() != "GET":
            case.path_parameters["key_id"] = nowhere

    config = SchemathesisConfig.from_dict(
        {
            "seed": SEED,
            "headers": {"Authorization": f"Bearer {tenant['key']}"},
            "workers": 2,
            "request-timeout": 10,
            "generation": {"max-examples": EXAMPLES, "mode": "all", "database": "none"},
            "phases": {
                **{phase: {"enabled": True} for phase in PHASES},
                "stateful": {"enabled": True, "max-steps": 8},
            },
            "checks": {"enabled": False, **{check: {"enabled": True} for check in CHECKS}},
            "cache": {"enabled": False},
        }
    )
    _import_hypothesis()
    _prime_hypothesis_lambda_cache()
    schemathesis.hook(before_call)
    failures: list[str] = []
    errors: list[str] = []
    scenarios: dict[str, int] = {}
    began = time.monotonic()
    try:
        schema = schemathesis.openapi.from_url(f"{stack.base_url}/openapi.json", config=config)
        for event in from_schema(schema).execute():
            if isinstance(event, events.NonFatalError):
                if INTERPRETER_BUG in repr(event.value):
                    warnings.warn(f"{event.label}: {event.value!r}", stacklevel=1)
                else:
                    errors.append(f"{event.label}: {event.value!r}")
            elif isinstance(event, events.FatalError):
                errors.append(f"fatal: {event.exception!r}")
            recorder = getattr(event, "recorder", None)
            if recorder is None:
                continue
            phase = str(getattr(event, "phase", None) or "fuzzing")
            scenarios[phase] = scenarios.get(phase, 0) + 1
            for case_id, checks in recorder.checks.items():
                for check in checks:
                    if check.status != Status.FAILURE or check.failure_info is None:
                        continue
                    case = recorder.cases[case_id].value
                    interaction = recorder.interactions.get(case_id)
                    body = interaction.response.content[:300] if interaction and interaction.response else b""
                    failure = check.failure_info.failure
                    failures.append(
                        f"{check.name} {case.operation.label}: {failure.title}: {failure.message[:300]}\n"
                        f"    sent {case.method} {case.formatted_path} query={case.query} "
                        f"headers={ {k: v for k, v in (case.headers or {}).items() if k != 'Authorization'} }"
                        f"\n    got {body!r}"
                    )
    finally:
        GLOBAL_HOOK_DISPATCHER.unregister(before_call)
    elapsed = time.monotonic() - began
    print(f"schemathesis: {elapsed:.1f} s, scenarios by phase {scenarios}")
    assert not errors, "\n".join(errors)
    assert not failures, f"{len(failures)} failures:\n" + "\n".join(dict.fromkeys(failures))
    # The run did test something in every phase, and the key it ran with still works.
    assert set(scenarios) >= set(PHASES), scenarios
    me = httpx.get(
        f"{stack.base_url}/v1/me", headers={"Authorization": f"Bearer {tenant['key']}"}, trust_env=False
    )
    assert me.status_code == 200, me.text
