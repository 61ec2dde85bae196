"""One stack per test module (`stratus up` as a subprocess); a module sets `STACK_ENV` for its
own settings. Clients of the SDK under test point at it with the module's keys."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import stratus
from stratus_testing import Stack


@pytest.fixture(scope="module")
def stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    env = getattr(request.module, "STACK_ENV", {})
    with Stack(tmp_path_factory.mktemp("sdk-stack"), env=env) as running:
        yield running


@pytest.fixture
def client(stack: Stack) -> Iterator[stratus.Client]:
    with stratus.Client(stack.test_key, base_url=stack.base_url) as made:
        yield made


@pytest.fixture
def live(stack: Stack) -> Iterator[stratus.Client]:
    with stratus.Client(stack.live_key, base_url=stack.base_url) as made:
        yield made
