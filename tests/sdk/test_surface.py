"""The SDK's surface against the running gateway's `/openapi.json`: every operation has an SDK
method (sync and async) whose parameters are the operation's path, query and body parameters and
headers, no method calls an operation the spec does not have, and the generated modules (models,
operation table, the sync client) are what their generators make now."""

from __future__ import annotations

import ast
import importlib.util
import inspect
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest

import stratus
from stratus import _async_resources, _sync_resources
from stratus._common import READ_POSTS
from stratus._operations import OPERATIONS
from stratus_testing import Stack

PACKAGE = Path(stratus.__file__).parent
SCRIPTS = PACKAGE.parents[1] / "scripts"
HEADERS = {"If-Match": "if_match", "If-None-Match": "if_none_match", "Idempotency-Key": "idempotency_key"}
# Parameters of an SDK method that are not the operation's: where a stream resumes from.
SDK_ONLY = {"last_event_id"}
SOURCES = {
    "async": ("_async_client.py", "_async_resources.py"),
    "sync": ("_sync_client.py", "_sync_resources.py"),
}


def script(name: str) -> ModuleType:
    if str(SCRIPTS) not in sys.path:
        sys.path.insert(0, str(SCRIPTS))
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def spec(stack: Stack) -> dict[str, Any]:
    response = httpx.get(f"{stack.base_url}/openapi.json", timeout=30, trust_env=False)
    assert response.status_code == 200
    return response.json()


def spec_operations(spec: dict[str, Any]) -> Iterator[tuple[str, str, str, dict[str, Any]]]:
    for path, item in spec["paths"].items():
        for method, op in item.items():
            if method in ("get", "post", "put", "patch", "delete"):
                yield op["operationId"], method.upper(), path, op


def resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    return spec["components"]["schemas"][ref.rsplit("/", 1)[-1]] if ref else schema


def expected_parameters(spec: dict[str, Any], op_id: str, op: dict[str, Any]) -> dict[str, bool]:
    """The operation's parameters as SDK argument names, each with whether it is required."""
    names: dict[str, bool] = {}
    for param in op.get("parameters", []):
        where, wire = param["in"], param["name"]
        if where == "header":
            if wire == "Idempotency-Key" and op_id in READ_POSTS:
                continue  # a read sent as a POST: the SDK sends no key (stratus._common)
            names[HEADERS[wire]] = False
        else:
            python = wire.replace("[", "_").replace("]", "")  # created[gte] → created_gte
            names[python] = bool(param.get("required"))
    body = op.get("requestBody")
    if body:
        content = body["content"]
        if "text/plain" in content:
            names["text"] = True
        else:
            schema = content["application/json"]["schema"]
            options = [resolve(spec, o) for o in schema.get("oneOf", [schema])]
            objects = [o for o in options if o.get("type") != "null"]
            if len(objects) == 1 and "properties" in objects[0]:
                required = set(objects[0].get("required", []))
                for prop in objects[0]["properties"]:
                    names[prop] = prop in required
            else:  # a map of arbitrary keys: one argument
                names["vars"] = True
    return names


def methods_by_operation(flavour: str) -> dict[str, list[tuple[str, str]]]:
    """operationId → [(class, method)] of the SDK source that calls it (by its string literal)."""
    found: dict[str, list[tuple[str, str]]] = {}
    for name in SOURCES[flavour]:
        tree = ast.parse((PACKAGE / name).read_text())
        for cls in (n for n in tree.body if isinstance(n, ast.ClassDef)):
            for fn in cls.body:
                if not isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef) or fn.name.startswith("_"):
                    continue
                for node in ast.walk(fn):
                    if isinstance(node, ast.Constant) and node.value in OPERATIONS:
                        found.setdefault(node.value, []).append((cls.name, fn.name))
    return found


def client_of(flavour: str) -> Any:
    cls = stratus.AsyncClient if flavour == "async" else stratus.Client
    return cls("sk_test_surface", base_url="http://127.0.0.1:9")  # never connects


def resource_paths(client: Any) -> dict[str, str]:
    """Resource class name → where it hangs on a client (`projects.members`)."""
    bases = (_async_resources._Resource, _sync_resources._Resource)
    paths = {type(client).__name__: "client"}

    def walk(obj: Any, prefix: str) -> None:
        for name, value in vars(obj).items():
            if isinstance(value, bases):
                paths[type(value).__name__] = f"{prefix}{name}"
                walk(value, f"{prefix}{name}.")

    walk(client, "")
    return paths


def method(client: Any, paths: dict[str, str], cls: str, name: str) -> Any:
    target = client
    if paths[cls] != "client":
        for part in paths[cls].split("."):
            target = getattr(target, part)
    return getattr(target, name)


@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_every_operation_has_a_method_with_the_operations_parameters(
    spec: dict[str, Any], flavour: str
) -> None:
    client = client_of(flavour)
    paths = resource_paths(client)
    by_op = methods_by_operation(flavour)
    problems = []
    seen = set()
    for op_id, http_method, path, op in spec_operations(spec):
        seen.add(op_id)
        expected = expected_parameters(spec, op_id, op)
        methods = by_op.get(op_id, [])
        if not methods:
            problems.append(f"{op_id} ({http_method} {path}): no SDK method")
            continue
        covered: set[str] = set()
        for cls, name in methods:
            where = f"{op_id} → {paths[cls]}.{name}"
            signature = inspect.signature(method(client, paths, cls, name))
            params = signature.parameters
            covered |= set(params)
            for extra in set(params) - set(expected) - SDK_ONLY:
                problems.append(f"{where}: parameter {extra!r} is not in the spec")
            for pname, param in params.items():
                if pname in expected and expected[pname] != (param.default is inspect.Parameter.empty):
                    problems.append(f"{where}: {pname!r} required={expected[pname]} in the spec")
            path_params = [p["name"] for p in op.get("parameters", []) if p["in"] == "path"]
            positional = [n for n, p in params.items() if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD][
                : len(path_params)
            ]
            if positional != path_params:
                problems.append(f"{where}: path parameters {path_params} are not its first arguments")
        for missing in set(expected) - covered:
            problems.append(f"{op_id}: the spec's parameter {missing!r} has no SDK argument")
    for stale in set(by_op) - seen:
        problems.append(f"{stale}: called by {by_op[stale]} but not in /openapi.json")
    assert not problems, "\n".join(problems)


def test_sync_and_async_clients_have_the_same_methods() -> None:
    bases = (_async_resources._Resource, _sync_resources._Resource)

    def surface(client: Any) -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}

        def walk(obj: Any, prefix: str) -> None:
            for name in dir(obj):
                value = getattr(obj, name)
                if name.startswith("_"):
                    continue
                if isinstance(value, bases):
                    walk(value, f"{prefix}{name}.")
                elif callable(value):
                    # The one name that differs: closing is `aclose` in async code, as in httpx.
                    found[prefix + ("close" if name == "aclose" else name)] = list(
                        inspect.signature(value).parameters
                    )

        walk(client, "")
        return found

    sync_surface, async_surface = surface(client_of("sync")), surface(client_of("async"))
    assert sync_surface == async_surface
    assert len(sync_surface) > len(OPERATIONS)  # every operation, and the client's own methods


def test_the_generated_modules_are_what_this_spec_generates(spec: dict[str, Any]) -> None:
    """`_operations.py` and `models.py` match the running gateway's spec (otherwise: run
    `clients/python/scripts/generate.py <url>/openapi.json`)."""
    rendered = script("generate").render(spec)
    for name, text in rendered.items():
        assert (PACKAGE / name).read_text() == text, f"{name} is out of date: run scripts/generate.py"


def test_the_sync_client_is_generated_from_the_async_one() -> None:
    for name, text in script("unasync").render().items():
        assert (PACKAGE / name).read_text() == text, f"{name} is out of date: run scripts/unasync.py"
