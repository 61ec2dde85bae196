"""The rate limiter's token-bucket math, and its leases from a shared bucket, on a fake KV and a
clock the tests move (no sleeping)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError

from stratus_gateway import ratelimit
from stratus_gateway.ratelimit import BucketState, Limit, RateLimiter, give_back, level, load_plans, take

T0 = 1_800_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FakeKV:
    """JetStream KV's compare-and-set semantics: create fails on an existing key, update on a
    revision that is not the latest."""

    def __init__(self) -> None:
        self.entries: dict[str, tuple[bytes, int]] = {}
        self.sequence = 0
        self.writes = 0
        self.conflicts = 0

    async def get(self, key: str) -> SimpleNamespace:
        await asyncio.sleep(0)  # a round trip: other requests run meanwhile
        if key not in self.entries:
            raise KeyNotFoundError
        value, revision = self.entries[key]
        return SimpleNamespace(value=value, revision=revision)

    async def create(self, key: str, value: bytes) -> int:
        return await self.update(key, value, last=0)

    async def update(self, key: str, value: bytes, last: int | None = None) -> int:
        await asyncio.sleep(0)
        if self.entries.get(key, (b"", 0))[1] != (last or 0):
            self.conflicts += 1
            raise KeyWrongLastSequenceError
        self.sequence += 1
        self.writes += 1
        self.entries[key] = (value, self.sequence)
        return self.sequence


def replicas(n: int, clock: Clock, plans: ratelimit.Plans | None = None) -> tuple[FakeKV, list[RateLimiter]]:
    kv = FakeKV()
    return kv, [RateLimiter(kv, plans or load_plans(""), clock) for _ in range(n)]  # type: ignore[arg-type]


# -- the math --------------------------------------------------------------------------------

PER_MINUTE = Limit(limit=60)  # one token a second, 60 at most


def test_a_new_bucket_is_full_and_refills_at_the_plan_rate_up_to_its_capacity() -> None:
    assert level(None, PER_MINUTE, T0) == 60
    granted, state = take(None, PER_MINUTE, 50, T0)
    assert granted == 50 and state == BucketState(tokens=10, at=T0, capacity=60)
    assert level(state, PER_MINUTE, T0 + 5) == 15
    assert level(state, PER_MINUTE, T0 + 3600) == 60
    # Only whole tokens are granted; the fraction stays in the bucket.
    granted, after = take(state, PER_MINUTE, 100, T0 + 0.5)
    assert granted == 10 and after.tokens == pytest.approx(0.5)


def test_a_clock_behind_the_record_neither_refills_nor_moves_the_record_back() -> None:
    state = BucketState(tokens=3, at=T0, capacity=60)
    assert level(state, PER_MINUTE, T0 - 30) == 3
    granted, after = take(state, PER_MINUTE, 1, T0 - 30)
    assert granted == 1 and after.at == T0


def test_a_plan_change_keeps_what_was_spent() -> None:
    spent = BucketState(tokens=0, at=T0, capacity=60)
    bigger = Limit(limit=600)
    assert level(spent, bigger, T0) == 540  # the extra capacity, at once
    assert level(BucketState(tokens=50, at=T0, capacity=60), Limit(limit=10), T0) == 10


def test_tokens_given_back_never_overfill() -> None:
    state = BucketState(tokens=58, at=T0, capacity=60)
    assert give_back(state, PER_MINUTE, 5, T0).tokens == 60
    assert give_back(None, PER_MINUTE, 5, T0).tokens == 60


def test_plans_come_from_defaults_and_stratus_plans() -> None:
    plans = load_plans("")
    assert plans["free"] == Limit(limit=1000) and plans["pro"] == Limit(limit=10_000)
    assert plans["internal"] is None and plans["anonymous"] == Limit(limit=300)
    custom = load_plans('{"free": {"limit": 5, "period": 3600, "burst": 2}, "anonymous": null}')
    assert custom["free"].capacity == 2 and custom["free"].rate == pytest.approx(5 / 3600)
    assert custom["anonymous"] is None and custom["pro"] == Limit(limit=10_000)
    for wrong in ('{"gold": {"limit": 1}}', '{"free": {"limit": 0}}', '{"free": {"rate": 1}}', "nope"):
        with pytest.raises(ValueError, match="STRATUS_PLANS"):
            load_plans(wrong)


# -- leases from the shared bucket -----------------------------------------------------------

DAILY = Limit(limit=1000, period=86_400)  # no meaningful refill while a test runs


async def test_two_replicas_together_serve_exactly_the_capacity() -> None:
    clock = Clock()
    kv, (a, b) = replicas(2, clock)

    async def hammer(limiter: RateLimiter) -> int:
        results = await asyncio.gather(*(limiter.spend("key.k", DAILY) for _ in range(800)))
        return sum(d.allowed for d in results)

    served = await asyncio.gather(hammer(a), hammer(b))
    assert sum(served) == 1000 and min(served) > 0
    # Tokens move in leases of 0.5 % of the capacity: far fewer writes than requests.
    assert kv.writes <= 1000 // ratelimit.lease_size(DAILY) + 2
    assert kv.conflicts > 0  # the replicas did race, and compare-and-set sorted it out


async def test_an_idle_replica_gives_its_unspent_lease_back() -> None:
    clock = Clock()
    _, (a, b) = replicas(2, clock)
    for _ in range(501):
        assert (await a.spend("key.k", DAILY)).allowed
    await a.settled()  # the lease it took ahead, if one is under way
    stranded = a._buckets["key.k"].tokens
    # What one replica holds: at most the half batch it had left plus the batch it leased ahead.
    assert 0 < stranded <= ratelimit.lease_size(DAILY) + ratelimit.low_water(DAILY)
    served = 0
    while (await b.spend("key.k", DAILY)).allowed:
        served += 1
    assert served == 1000 - 501 - stranded
    await b.settled()
    clock.advance(ratelimit.LEASE_IDLE)
    await a.sweep()
    while (await b.spend("key.k", DAILY)).allowed:
        served += 1
    assert 501 + served == 1000


async def test_refusal_says_when_to_retry_and_moving_the_clock_refills() -> None:
    clock = Clock()
    _, (limiter,) = replicas(1, clock)
    first = await limiter.spend("key.k", PER_MINUTE)
    assert first == (True, 60, 59, 1, 0)  # allowed, limit, remaining, reset, retry_after
    remaining = [(await limiter.spend("key.k", PER_MINUTE)).remaining for _ in range(59)]
    assert remaining == list(range(58, -1, -1))
    refused = await limiter.spend("key.k", PER_MINUTE)
    assert not refused.allowed and refused.retry_after == 1 and refused.reset == 60
    clock.advance(1)
    assert (await limiter.spend("key.k", PER_MINUTE)).allowed
    assert not (await limiter.spend("key.k", PER_MINUTE)).allowed
    clock.advance(3600)
    assert (await limiter.spend("key.k", PER_MINUTE)).remaining == 59


async def test_a_refused_bucket_is_not_reread_on_every_request() -> None:
    clock = Clock()
    kv, (limiter,) = replicas(1, clock)
    tiny = Limit(limit=1, period=3600)
    assert (await limiter.spend("ip.x", tiny)).allowed
    writes = kv.writes
    for _ in range(100):
        assert not (await limiter.spend("ip.x", tiny)).allowed
    assert kv.writes == writes and (await limiter.spend("ip.x", tiny)).retry_after == 3600


async def test_plans_without_a_limit_cost_nothing() -> None:
    clock = Clock()
    kv, (limiter,) = replicas(1, clock, load_plans('{"anonymous": null}'))
    assert await limiter.for_key("key_1", "internal") is None
    assert await limiter.for_address("::1") is None
    assert kv.writes == 0
    # A plan this gateway does not know is limited like `free`.
    assert (await limiter.for_key("key_1", "platinum")).limit == 1000  # type: ignore[union-attr]


class GatedKV(FakeKV):
    """FakeKV whose writes wait until `gate` is set: a lease that stays under way."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.gate.set()
        self.attempts = 0

    async def update(self, key: str, value: bytes, last: int | None = None) -> int:
        self.attempts += 1
        await self.gate.wait()
        return await super().update(key, value, last)


async def test_the_next_lease_is_taken_ahead_and_requests_that_run_out_share_it() -> None:
    kv, clock = GatedKV(), Clock()
    limiter = RateLimiter(kv, load_plans(""), clock)  # type: ignore[arg-type]
    lease, low = ratelimit.lease_size(DAILY), ratelimit.low_water(DAILY)
    assert (await limiter.spend("key.k", DAILY)).allowed  # the first lease, then one spent
    kv.gate.clear()  # from now on a lease stays under way until the gate opens
    for _ in range(lease - 1 - low):  # spent from what is held, without suspending
        assert limiter.spend_held("key.k", DAILY) is not None
    # At half a batch left the next lease started; what is held is still spent meanwhile.
    await asyncio.sleep(0)
    assert kv.attempts == 2
    for _ in range(low):
        assert limiter.spend_held("key.k", DAILY) is not None
    assert limiter.spend_held("key.k", DAILY) is None  # nothing held: the caller must wait
    waiting = [asyncio.create_task(limiter.spend("key.k", DAILY)) for _ in range(lease)]
    await asyncio.sleep(0)
    assert not any(task.done() for task in waiting) and kv.attempts == 2  # one lease, shared
    kv.gate.set()
    assert all(decision.allowed for decision in await asyncio.gather(*waiting))
    await limiter.settled()
    assert kv.writes <= 4


async def test_a_token_spent_without_suspending_says_what_spend_would_say() -> None:
    clock = Clock()
    _, (limiter,) = replicas(1, clock)
    per_day = Limit(limit=1000, period=86_400, burst=400)
    await limiter.spend("key.k", per_day)
    for step in range(300):
        clock.advance(37 if step % 50 == 0 else 0.1)
        headers = limiter.spend_held("key.k", per_day) or []
        if not headers:
            await limiter.settled()  # a lease under way: `spend` would wait for it
            continue
        bucket = limiter._buckets["key.k"]
        expected = limiter._decision(bucket, per_day, clock(), allowed=True).headers()
        assert headers == expected, step
