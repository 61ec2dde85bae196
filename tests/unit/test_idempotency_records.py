"""The gateway's idempotency records in JetStream KV (a real nats-server, a clock the tests move):
one winner among racing replicas, replays, reuse, leases taken over exactly once, a replica whose
lease was taken over neither stores nor deletes over the new owner, and the sandbox reset purges
the test-mode records only (a request in flight then still answers)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterator

import msgspec
import nats
import pytest

from stratus_bus import Bus
from stratus_contracts import subjects
from stratus_gateway.idempotency import Attempt, IdempotencyStore, Record, kv_key, redacted, valid_key
from stratus_gateway.problems import ApiError
from stratus_kit import sandbox
from stratus_testing import NatsServer

LEASE = 10.0
JSON = [(b"content-type", b"application/json")]


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def nats_server() -> Iterator[NatsServer]:
    with NatsServer() as server:
        yield server


@pytest.fixture
async def bus(nats_server: NatsServer) -> AsyncIterator[Bus]:
    bus = await Bus.connect(nats_server.url, name="idempotency-test")
    # Emptied, not deleted: a bucket deleted and at once created again sometimes still holds the
    # old records, and a test would then find its key in use.
    with contextlib.suppress(nats.js.errors.NotFoundError):
        await bus.js.purge_stream(subjects.IDEMPOTENCY_STREAM)
    yield bus
    await bus.drain()


@pytest.fixture
def clock() -> Clock:
    return Clock()


async def replicas(bus: Bus, clock: Clock, n: int = 2) -> list[IdempotencyStore]:
    first = await IdempotencyStore.open(bus)
    return [IdempotencyStore(first.kv, clock=clock, lease=LEASE) for _ in range(n)]


def code(exc: pytest.ExceptionInfo[ApiError]) -> str:
    return exc.value.code


async def test_one_of_many_racing_replicas_wins_and_the_rest_are_told_to_wait(bus: Bus, clock: Clock) -> None:
    stores = await replicas(bus, clock, 10)
    outcomes = await asyncio.gather(*(s.begin("k", "fp") for s in stores), return_exceptions=True)
    assert sum(isinstance(o, Attempt) for o in outcomes) == 1
    refused = [o for o in outcomes if isinstance(o, ApiError)]
    assert len(refused) == 9 and {e.code for e in refused} == {"idempotency_key_in_use"}
    assert all(e.headers["Retry-After"] == "1" for e in refused)


async def test_a_finished_answer_is_replayed_and_guards_its_fingerprint(bus: Bus, clock: Clock) -> None:
    a, b = await replicas(bus, clock)
    attempt = await a.begin("k", "fp")
    assert isinstance(attempt, Attempt)
    await a.finish(attempt, 201, [*JSON, (b"location", b"/v1/x"), (b"x-other", b"no")], b'{"data":1}')
    replay = await b.begin("k", "fp")
    assert replay == Record(
        fingerprint="fp",
        started=clock.now,
        lease=LEASE,
        status=201,
        headers=[("content-type", "application/json"), ("location", "/v1/x")],
        body=b'{"data":1}',
    )
    with pytest.raises(ApiError) as info:
        await b.begin("k", "another request")
    assert code(info) == "idempotency_key_reused"


@pytest.mark.parametrize("status", [401, 403, 429, 500, 503, 504])
async def test_answers_worth_retrying_free_the_key(bus: Bus, clock: Clock, status: int) -> None:
    a, b = await replicas(bus, clock)
    attempt = await a.begin("k", "fp")
    await a.finish(attempt, status, JSON, b"{}")
    assert isinstance(await b.begin("k", "fp"), Attempt)


async def test_an_abandoned_lease_is_taken_over_once(
    bus: Bus, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    dead, *others = await replicas(bus, clock, 6)
    stale = await dead.begin("k", "fp")
    clock.now += LEASE - 0.1
    with pytest.raises(ApiError):
        await others[0].begin("k", "fp")  # still within the lease
    clock.now += 0.2
    outcomes = await asyncio.gather(*(s.begin("k", "fp") for s in others), return_exceptions=True)
    [winner] = [o for o in outcomes if isinstance(o, Attempt)]
    assert all(
        isinstance(o, ApiError) and o.code == "idempotency_key_in_use" for o in outcomes if o is not winner
    )
    # The presumed-dead replica wakes up: it may neither store its answer nor free the key.
    await dead.finish(stale, 201, JSON, b'{"late":true}')
    await dead.finish(stale, 500, JSON, b"{}")
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]  # nothing went wrong
    with pytest.raises(ApiError):
        await others[0].begin("k", "fp")  # the winner's attempt still holds the key
    await others[0].finish(winner, 201, JSON, b'{"winner":true}')
    replay = await dead.begin("k", "fp")
    assert isinstance(replay, Record) and replay.body == b'{"winner":true}'


def test_the_kv_key_leads_with_the_mode() -> None:
    test, live = kv_key("acct_1", "test", "k"), kv_key("acct_1", "live", "k")
    assert test.startswith("test.") and live.startswith("live.")
    assert test.removeprefix("test.") != live.removeprefix("live.")  # the mode is in the digest too
    assert kv_key("acct_1", "test", "k") == test != kv_key("acct_2", "test", "k")


async def test_the_sandbox_reset_purges_the_test_mode_records_only(bus: Bus, clock: Clock) -> None:
    a, b = await replicas(bus, clock)
    keys = {mode: kv_key("acct_1", mode, "k") for mode in ("test", "live")}
    for key in keys.values():
        await a.finish(await a.begin(key, "fp"), 201, JSON, b'{"data":1}')
        assert isinstance(await b.begin(key, "fp"), Record)
    await sandbox.reset(bus)
    assert isinstance(await b.begin(keys["test"], "fp"), Attempt)  # runs again, in the new sandbox
    replay = await b.begin(keys["live"], "fp")
    assert isinstance(replay, Record) and replay.body == b'{"data":1}'


async def test_a_request_whose_record_a_reset_purged_still_answers(
    bus: Bus, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    a, b = await replicas(bus, clock)
    done = await a.begin(kv_key("acct_1", "test", "done"), "fp")
    failed = await a.begin(kv_key("acct_1", "test", "failed"), "fp")
    assert isinstance(done, Attempt) and isinstance(failed, Attempt)
    await sandbox.reset(bus)
    with caplog.at_level(logging.INFO, logger="stratus.gateway.idempotency"):
        await a.finish(done, 201, JSON, b'{"data":1}')  # returns, so the middleware sends it
        await a.finish(failed, 503, JSON, b"{}")
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.INFO] == [
        "idempotency record taken over or purged before this answer was stored"
    ]
    # Neither answer was stored nor a claim left behind: both keys run afresh.
    assert isinstance(await b.begin(done.key, "fp"), Attempt)
    assert isinstance(await b.begin(failed.key, "fp"), Attempt)


async def test_a_reset_before_any_record_was_stored(bus: Bus) -> None:
    with contextlib.suppress(nats.js.errors.NotFoundError):
        await bus.js.delete_key_value(subjects.IDEMPOTENCY_BUCKET)
    with pytest.raises(nats.js.errors.NotFoundError):
        await bus.js.stream_info(subjects.IDEMPOTENCY_STREAM)
    await sandbox.reset(bus)  # nothing to purge, and no bucket made


async def test_secrets_and_tokens_are_not_stored(bus: Bus, clock: Clock) -> None:
    a, _ = await replicas(bus, clock)
    body = msgspec.json.encode({"data": {"id": "key_1", "secret": "sk_live_x", "name": "n"}, "meta": {}})
    attempt = await a.begin("k", "fp")
    await a.finish(attempt, 201, JSON, body)
    stored = (await a.kv.get("k")).value
    assert b"sk_live_x" not in stored
    assert msgspec.json.decode(redacted(body)) == {
        "data": {"id": "key_1", "secret": None, "name": "n"},
        "meta": {},
    }
    token = msgspec.json.encode({"data": {"id": "tok_1", "token": "tok_abc.sig"}})
    assert b"tok_abc" not in redacted(token)
    plain = b'{"data":{"name":"secret"}}'  # the word alone changes nothing
    assert redacted(plain) == plain


@pytest.mark.parametrize(
    ("values", "ok"),
    [
        ([b"a"], True),
        ([b"~" * 255], True),
        ([b"with space and !\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"], True),
        ([b""], False),
        ([b"k" * 256], False),
        ([b"caf\xc3\xa9"], False),
        ([b"tab\there"], False),
        ([b"del\x7f"], False),
        ([b"a", b"b"], False),
    ],
)
def test_key_syntax(values: list[bytes], ok: bool) -> None:
    if ok:
        assert valid_key(values) == values[0].decode()
    else:
        with pytest.raises(ApiError) as info:
            valid_key(values)
        assert code(info) == "idempotency_key_invalid"
