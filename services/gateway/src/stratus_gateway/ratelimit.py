"""Rate limits: a token bucket per API key, and per client address for requests that do not
authenticate, shared by every gateway replica through the JetStream KV bucket `stratus_rate_limits`.

A bucket's record in KV (tokens left, when, capacity) is the truth. A replica does not spend it
one request at a time: it leases a small batch of tokens with a compare-and-set update
(`kv.update(key, value, last=revision)`) and spends them from memory, so most requests cost no bus
round trip. A batch is 0.5 % of the bucket's capacity (at most `MAX_LEASE`). When what a replica
holds falls to half a batch, it leases the next one in the background (the requests meanwhile
spend what is left), so that a busy key's requests do not all wait for a KV round trip whenever
a batch runs out; those that still run out wait for that same lease. A replica therefore holds
at most one and a half batches of a bucket: tokens leased but not yet spent stay within 1.5 % of
the limit with two replicas; a replica gives back what a bucket it stopped using still holds
after `LEASE_IDLE` seconds. A replica that dies loses at most a batch and a half per bucket,
which the refill brings back. Leasing never creates tokens, so the total served across replicas
never exceeds capacity + refill; and a replica refuses only when it holds no token, so once
every replica refuses, every token leased has been served.

Capacity and refill come from the account's plan (`STRATUS_PLANS`, see `load_plans`); the
`internal` plan has no limit and costs nothing. Time comes from one injectable clock (wall-clock
seconds, because replicas compare the stored timestamps).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import re
import time
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, NamedTuple

import msgspec
import nats
from litestar import Litestar
from litestar.types import Send
from nats.js.api import KeyValueConfig
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from stratus_bus import Bus, kv_create
from stratus_contracts.identity import PLANS
from stratus_gateway.clientip import client_ip
from stratus_gateway.envelope import RESPONSE_HEADERS
from stratus_gateway.problems import ApiError, send_problem

log = logging.getLogger("stratus.gateway.ratelimit")

BUCKET = "stratus_rate_limits"
# A record untouched this long is dropped: the bucket is full again by then for every plan whose
# full refill (period × burst / limit) takes at most a day.
RECORD_TTL = 86_400
LEASE_FRACTION = 0.005  # of the capacity per lease and replica
MAX_LEASE = 100
LEASE_IDLE = 1.0  # seconds without a request before a replica gives unspent tokens back
FORGET_IDLE = 60.0  # seconds without a request before a replica forgets a bucket
DENIAL_RECHECK = 1.0  # a refused bucket is re-read from KV at most this often per replica
MAX_ATTEMPTS = 10  # compare-and-set retries before giving up on one lease
ANONYMOUS = "anonymous"  # the pseudo-plan of unauthenticated and failed-auth requests, per address
EXEMPT_PATHS = frozenset({"/healthz", "/readyz"})  # probes are never limited

# -- plans ----------------------------------------------------------------------------------


class Limit(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """`limit` requests per `period` seconds, with bursts up to `burst` (default: `limit`)."""

    limit: Annotated[int, msgspec.Meta(gt=0)]
    period: Annotated[float, msgspec.Meta(gt=0)] = 60.0
    burst: Annotated[int, msgspec.Meta(gt=0)] | None = None

    @property
    def capacity(self) -> int:
        return self.burst if self.burst is not None else self.limit

    @property
    def rate(self) -> float:
        """Tokens per second."""
        return self.limit / self.period


Plans = dict[str, Limit | None]  # None: no limit
DEFAULT_PLANS: Plans = {
    "free": Limit(limit=1_000),
    "pro": Limit(limit=10_000),
    "internal": None,
    ANONYMOUS: Limit(limit=300),
}
_PLANS_DECODER = msgspec.json.Decoder(dict[str, Limit | None])


def load_plans(raw: str | None = None) -> Plans:
    """The defaults, with whole plans replaced by `STRATUS_PLANS` (a JSON object), e.g.
    `{"free": {"limit": 100, "period": 60}, "internal": null}`; ValueError when it is wrong."""
    text = raw if raw is not None else os.environ.get("STRATUS_PLANS", "")
    if not text.strip():
        return dict(DEFAULT_PLANS)
    try:
        overrides = _PLANS_DECODER.decode(text)
    except msgspec.DecodeError as exc:
        raise ValueError(f"STRATUS_PLANS is not valid: {exc}") from None
    unknown = sorted(set(overrides) - set(DEFAULT_PLANS))
    if unknown:
        names = ", ".join((*PLANS, ANONYMOUS))
        raise ValueError(f"STRATUS_PLANS names unknown plans {unknown}; the plans are {names}")
    return {**DEFAULT_PLANS, **overrides}


# -- the bucket math (pure) -----------------------------------------------------------------


class BucketState(msgspec.Struct, frozen=True, array_like=True):
    """A bucket's record in KV: tokens left at time `at`, for a bucket of `capacity`."""

    tokens: float
    at: float
    capacity: int


def level(state: BucketState | None, limit: Limit, now: float) -> float:
    """Tokens in the bucket at `now`. No record is a full bucket. A plan change keeps what was
    spent: a larger capacity adds the difference at once, a smaller one caps the level."""
    capacity = limit.capacity
    if state is None:
        return float(capacity)
    # Plain comparisons rather than min/max: this runs on every rate-limited request.
    tokens = state.tokens
    if capacity > state.capacity:
        tokens += capacity - state.capacity
    if now > state.at:
        tokens += (now - state.at) * limit.rate
    return float(capacity) if tokens > capacity else tokens


def take(state: BucketState | None, limit: Limit, want: int, now: float) -> tuple[int, BucketState]:
    """Take up to `want` whole tokens: how many were granted, and the record after."""
    have = level(state, limit, now)
    granted = max(0, min(want, math.floor(have)))
    at = now if state is None else max(state.at, now)  # a clock behind the record never refills twice
    return granted, BucketState(tokens=have - granted, at=at, capacity=limit.capacity)


def give_back(state: BucketState | None, limit: Limit, tokens: int, now: float) -> BucketState:
    """Return unspent leased tokens (never above capacity)."""
    have = min(float(limit.capacity), level(state, limit, now) + tokens)
    at = now if state is None else max(state.at, now)
    return BucketState(tokens=have, at=at, capacity=limit.capacity)


def seconds_until(tokens: float, have: float, limit: Limit) -> int:
    """Whole seconds until the bucket holds `tokens`, from `have` now (at least 0)."""
    return math.ceil((tokens - have) / limit.rate) if have < tokens else 0


def lease_size(limit: Limit) -> int:
    return max(1, min(MAX_LEASE, int(limit.capacity * LEASE_FRACTION)))


def low_water(limit: Limit) -> int:
    """Tokens held at which the next lease is taken in the background: half a batch. It is a
    head start on the KV round trip, not a guarantee: on a saturated event loop the round trip
    can outlast half a batch, and the requests that run out then wait for that one lease."""
    return lease_size(limit) // 2


# -- decisions and headers --------------------------------------------------------------------


class Decision(NamedTuple):
    allowed: bool
    limit: int  # the bucket's capacity
    remaining: int  # requests left now (across replicas, as of this replica's last lease)
    reset: int  # seconds until the bucket is full again
    retry_after: int  # when refused: seconds until the next request may pass

    def headers(self) -> list[tuple[bytes, bytes]]:
        return [
            (b"x-ratelimit-limit", b"%d" % self.limit),
            (b"x-ratelimit-remaining", b"%d" % self.remaining),
            (b"x-ratelimit-reset", b"%d" % self.reset),
        ]


_RESET_NOW = (b"x-ratelimit-reset", b"0")
# How a lease ended: tokens granted or the bucket found empty; replicas kept racing; no KV.
_DONE, _CONTENDED, _UNREACHABLE = object(), object(), object()


class _Bucket:
    """One replica's view of one shared bucket: its lease and the last record it saw."""

    __slots__ = (
        "denied_until",
        "lease",
        "limit",
        "limit_header",
        "lock",
        "low",
        "revision",
        "state",
        "tokens",
        "used",
    )

    def __init__(self, limit: Limit) -> None:
        self.tokens = 0  # leased, not yet spent
        self.lease: asyncio.Task[object] | None = None  # the lease under way, if any
        self.set_limit(limit)
        self.state: BucketState | None = None  # the record as of `revision`
        self.revision: int | None = None  # None: unknown, read before writing; 0: no record
        self.denied_until = 0.0
        self.used = 0.0
        self.lock = asyncio.Lock()

    def set_limit(self, limit: Limit) -> None:
        self.limit = limit
        self.low = low_water(limit)
        self.limit_header = (b"x-ratelimit-limit", b"%d" % limit.capacity)


class RateLimiter:
    def __init__(self, kv: KeyValue, plans: Plans, clock: Callable[[], float] = time.time) -> None:
        self.kv = kv
        self.plans = plans
        self.clock = clock
        self._buckets: dict[str, _Bucket] = {}
        self._sweeper: asyncio.Task[None] | None = None
        self._leases: set[asyncio.Task[object]] = set()  # leases under way
        self._decoder = msgspec.msgpack.Decoder(BucketState)
        self._encoder = msgspec.msgpack.Encoder()

    @classmethod
    async def open(
        cls, bus: Bus, plans: Plans | None = None, clock: Callable[[], float] = time.time
    ) -> RateLimiter:
        kv = await bus.key_value(KeyValueConfig(bucket=BUCKET, history=1, ttl=RECORD_TTL))
        return cls(kv, load_plans() if plans is None else plans, clock)

    def start(self) -> None:
        self._sweeper = asyncio.create_task(self._sweep_forever())

    async def stop(self) -> None:
        """Stop sweeping and give every unspent lease back."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        await self.settled()
        with contextlib.suppress(nats.errors.Error):
            await self.sweep(idle=0.0)

    async def settled(self) -> None:
        """Wait for the leases under way."""
        while self._leases:
            await asyncio.gather(*self._leases, return_exceptions=True)

    def limit_of(self, plan: str) -> Limit | None:
        """A plan's limit; a plan this configuration does not know is limited as `free`."""
        return self.plans[plan] if plan in self.plans else self.plans["free"]

    async def for_key(self, key_id: str, plan: str) -> Decision | None:
        """Spend one token of an API key's bucket; None when its plan has no limit."""
        limit = self.limit_of(plan)
        return None if limit is None else await self.spend(f"key.{key_id}", limit)

    async def for_address(self, ip: str) -> Decision | None:
        limit = self.plans.get(ANONYMOUS)
        return None if limit is None else await self.spend(f"ip.{_kv_safe(ip)}", limit)

    def spend_held(self, name: str, limit: Limit) -> list[tuple[bytes, bytes]] | None:
        """One request paid from a token this replica holds, without suspending: its
        `X-RateLimit-*` headers, or None when it holds none (then `spend` it). The common case of
        every rate-limited request, so it is `spend` and `Decision.headers` written out: no
        coroutine, no Decision, the bucket arithmetic inline (docs/performance.md)."""
        bucket = self._buckets.get(name)
        if bucket is None or bucket.tokens <= 0 or bucket.limit is not limit:
            return None
        now = bucket.used = self.clock()
        tokens = bucket.tokens = bucket.tokens - 1
        if tokens <= bucket.low and bucket.lease is None and now >= bucket.denied_until:
            self._start_lease(name, bucket, limit)
        # What `level` + `seconds_until` compute: the bucket's level now, plus what is held.
        capacity, state = limit.capacity, bucket.state
        if state is None:
            have = capacity + tokens
        else:
            have = state.tokens + tokens
            if capacity > state.capacity:
                have += capacity - state.capacity
            if now > state.at:
                have += (now - state.at) * limit.rate
        if have >= capacity:
            return [bucket.limit_header, (b"x-ratelimit-remaining", b"%d" % capacity), _RESET_NOW]
        reset = b"%d" % math.ceil((capacity - have) / limit.rate)
        return [bucket.limit_header, (b"x-ratelimit-remaining", b"%d" % have), (b"x-ratelimit-reset", reset)]

    async def spend(self, name: str, limit: Limit) -> Decision:
        bucket = self._buckets.get(name)
        if bucket is None:
            bucket = self._buckets[name] = _Bucket(limit)
        if bucket.limit is not limit:
            bucket.set_limit(limit)
        now = bucket.used = self.clock()
        # Out of tokens: wait for the lease under way, or start one. Every request that runs out
        # waits for the same lease and resumes when it lands (an asyncio.Lock resumed them one
        # loop turn after another); one that finds the tokens taken again waits for the next.
        # It ends with a token, or a refusal once a lease finds the shared bucket empty.
        while bucket.tokens <= 0 and now >= bucket.denied_until:
            lease = bucket.lease
            if lease is None or lease.done():  # done: cancelled before it ran
                lease = self._start_lease(name, bucket, limit)
            outcome = await asyncio.shield(lease)
            if outcome is _UNREACHABLE:
                # Without the shared bucket, serve rather than refuse: the bus is the platform's
                # spine, and a gateway that cannot reach it fails requests on its own.
                return self._decision(bucket, limit, now, allowed=True)
            now = self.clock()
            if outcome is _CONTENDED:
                break
        if bucket.tokens > 0:
            bucket.tokens -= 1
            if bucket.tokens <= bucket.low and bucket.lease is None and now >= bucket.denied_until:
                self._start_lease(name, bucket, limit)
            return self._decision(bucket, limit, now, allowed=True)
        return self._decision(bucket, limit, now, allowed=False)

    def _start_lease(self, name: str, bucket: _Bucket, limit: Limit) -> asyncio.Task[object]:
        """Lease the next batch in a task of its own: requests that still hold tokens go on
        spending them, and those that ran out wait for it (`spend`)."""
        lease = bucket.lease = asyncio.get_running_loop().create_task(self._run_lease(name, bucket, limit))
        self._leases.add(lease)
        lease.add_done_callback(self._leases.discard)
        return lease

    async def _run_lease(self, name: str, bucket: _Bucket, limit: Limit) -> object:
        """Lease a batch, or learn that the bucket is empty: _DONE, _CONTENDED or _UNREACHABLE."""
        try:
            async with bucket.lock:  # a give-back of this bucket may be under way
                return _DONE if await self._lease(name, bucket, limit, lease_size(limit)) else _CONTENDED
        except nats.errors.Error as exc:
            log.warning("rate-limit bucket unreachable; requests not limited", extra={"error": repr(exc)})
            bucket.revision = None
            return _UNREACHABLE
        finally:
            # Cleared before the task is done, so that no request ever waits for a finished one
            # (awaiting it would not suspend, and the request would spin).
            bucket.lease = None

    def _decision(self, bucket: _Bucket, limit: Limit, now: float, *, allowed: bool) -> Decision:
        capacity = limit.capacity
        have = level(bucket.state, limit, now) + bucket.tokens
        if have > capacity:
            have = capacity
        reset = seconds_until(capacity, have, limit)
        if allowed:
            return Decision(True, capacity, int(have), reset, 0)
        return Decision(False, capacity, 0, reset, max(1, seconds_until(1, have, limit)))

    async def _lease(self, name: str, bucket: _Bucket, limit: Limit, want: int) -> bool:
        """Add up to `want` tokens from the shared bucket to what `bucket` holds, or learn that it
        is empty (`denied_until`); False when replicas kept racing for it (MAX_ATTEMPTS)."""
        fresh = False
        for _ in range(MAX_ATTEMPTS):
            if bucket.revision is None:
                bucket.state, bucket.revision = await self._read(name)
                fresh = True
            now = self.clock()
            granted, after = take(bucket.state, limit, want, now)
            if granted == 0:
                if not fresh:  # our copy may be stale (tokens given back, a plan change): re-read
                    bucket.revision = None
                    continue
                wait = seconds_until(1, level(bucket.state, limit, now), limit)
                bucket.denied_until = now + min(DENIAL_RECHECK, max(wait, 0.05))
                return True
            try:
                bucket.revision = await self._write(name, after, bucket.revision)
            except KeyWrongLastSequenceError:
                bucket.revision = None  # another replica wrote first: read and decide again
                continue
            bucket.state = after
            bucket.tokens += granted
            return True
        log.warning("rate-limit bucket contended; requests refused", extra={"bucket": name})
        return False

    async def _read(self, name: str) -> tuple[BucketState | None, int]:
        try:
            entry = await self.kv.get(name)
        except KeyNotFoundError:
            return None, 0
        if not entry.value:
            return None, entry.revision or 0
        try:
            return self._decoder.decode(entry.value), entry.revision or 0
        except msgspec.DecodeError:
            return None, entry.revision or 0  # an unreadable record is a full bucket

    async def _write(self, name: str, state: BucketState, revision: int | None) -> int:
        value = self._encoder.encode(state)
        if not revision:
            return await kv_create(self.kv, name, value)
        return await self.kv.update(name, value, last=revision)

    # -- giving leases back -------------------------------------------------------------------

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(LEASE_IDLE)
            try:
                await self.sweep()
            except nats.errors.Error as exc:
                log.warning("could not give rate-limit leases back", extra={"error": repr(exc)})

    async def sweep(self, idle: float = LEASE_IDLE) -> None:
        """Give back what buckets unused for `idle` seconds still hold; forget long-idle ones."""
        now = self.clock()
        for name, bucket in list(self._buckets.items()):
            if bucket.lock.locked() or bucket.lease is not None or now - bucket.used < idle:
                continue
            if bucket.tokens > 0:
                tokens, bucket.tokens = bucket.tokens, 0
                await self._give_back(name, bucket, tokens)
            if now - bucket.used >= FORGET_IDLE and not bucket.tokens and not bucket.lock.locked():
                self._buckets.pop(name, None)

    async def _give_back(self, name: str, bucket: _Bucket, tokens: int) -> None:
        async with bucket.lock:
            for _ in range(MAX_ATTEMPTS):
                if bucket.revision is None:
                    bucket.state, bucket.revision = await self._read(name)
                after = give_back(bucket.state, bucket.limit, tokens, self.clock())
                try:
                    bucket.revision = await self._write(name, after, bucket.revision)
                except KeyWrongLastSequenceError:
                    bucket.revision = None
                    continue
                bucket.state = after
                return


def _kv_safe(text: str) -> str:
    """An address as a KV key token (IPv6 colons and zone ids are not allowed there)."""
    return _UNSAFE.sub("_", text) or "unknown"


_UNSAFE = re.compile(r"[^A-Za-z0-9.\-]")

# -- the HTTP side ----------------------------------------------------------------------------

CHARGED_STATE = "stratus.ratelimit.charged"  # "key" | "address": the request has been counted


def _limiter(scope: Any) -> RateLimiter:
    return scope["app"].state["rate_limiter"]


def charge_key(scope: Any, limiter: RateLimiter, key_id: str, plan: str) -> Awaitable[None] | None:
    """After authentication: one request against the key's bucket (a token pays from its parent
    key's), or 429 `rate_limited`. What to await, or None when that was not needed: the plan has
    no limit, or a token this replica holds paid (the common case: no coroutine at all)."""
    scope[CHARGED_STATE] = "key"
    limit = limiter.limit_of(plan)
    if limit is None:
        return None
    name = "key." + key_id
    headers = limiter.spend_held(name, limit)
    if headers is None:
        return _charge_key(scope, limiter, name, limit)
    extra = scope.get(RESPONSE_HEADERS)
    if extra is None:
        scope[RESPONSE_HEADERS] = headers
    else:
        extra += headers
    return None


async def _charge_key(scope: Any, limiter: RateLimiter, name: str, limit: Limit) -> None:
    decision = await limiter.spend(name, limit)
    scope.setdefault(RESPONSE_HEADERS, []).extend(decision.headers())
    if not decision.allowed:
        raise ApiError(
            "rate_limited",
            f"This API key's plan allows {decision.limit} requests at once, refilled over time; "
            f"retry in {decision.retry_after} s.",
            headers={"Retry-After": str(decision.retry_after)},
        )


async def charge_address(scope: Any, limiter: RateLimiter | None = None) -> Decision | None:
    """One unauthenticated (or failed-auth) request against the client address's bucket, once
    per request; the decision, or None when it was counted already or addresses are unlimited."""
    if CHARGED_STATE in scope:
        return None
    scope[CHARGED_STATE] = "address"
    decision = await (limiter or _limiter(scope)).for_address(client_ip(scope))
    if decision is not None:
        scope.setdefault(RESPONSE_HEADERS, []).extend(decision.headers())
    return decision


async def refuse_failed_auth(scope: Any) -> None:
    """Count a failed authentication against the client address; 429 instead once it is over."""
    decision = await charge_address(scope)
    if decision is not None and not decision.allowed:
        raise ApiError(
            "rate_limited", _address_detail(decision), headers={"Retry-After": str(decision.retry_after)}
        )


def _address_detail(decision: Decision) -> str:
    return f"Too many requests without a valid API key from this address; retry in {decision.retry_after} s."


async def send_refusal(send: Send, decision: Decision) -> None:
    """429 for a request without credentials over its address's limit. `send` is the outer
    middleware's, which adds the bucket's `X-RateLimit-*` headers."""
    retry = [(b"retry-after", str(decision.retry_after).encode())]
    await send_problem(send, "rate_limited", _address_detail(decision), retry)


async def start(app: Litestar, bus: Bus) -> RateLimiter:
    """Open the shared buckets with the configured plans (a wrong `STRATUS_PLANS` stops here)."""
    limiter = await RateLimiter.open(bus)
    limiter.start()
    app.state.rate_limiter = limiter
    log.info("rate limits", extra={"plans": msgspec.to_builtins(limiter.plans)})
    return limiter


__all__ = [
    "DEFAULT_PLANS",
    "BucketState",
    "Decision",
    "Limit",
    "RateLimiter",
    "charge_address",
    "charge_key",
    "level",
    "load_plans",
    "refuse_failed_auth",
    "send_refusal",
    "start",
    "take",
]
