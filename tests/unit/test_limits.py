"""Admission control under real asyncio and real (short) time.

Timing assertions are lower bounds taken from the limiter's own arithmetic, with a small
margin, and upper bounds that are generous: a slow machine may admit late, never early.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from paragents.runtime.limits import AdmissionControl, EndpointLimiter, Limits


async def _let_tasks_reach_the_limiter() -> None:
    """Give tasks just created time to enter ``admit`` and start waiting."""
    await asyncio.sleep(0.01)


async def _admit_and_time(limiter: EndpointLimiter, tokens: int = 0) -> float:
    async with limiter.admit(tokens=tokens):
        return time.monotonic()


async def test_concurrency_never_exceeds_limit_and_reaches_it() -> None:
    limiter = EndpointLimiter("e", Limits(max_concurrency=4))
    current = 0
    observed_max = 0

    async def call() -> None:
        nonlocal current, observed_max
        async with limiter.admit():
            current += 1
            observed_max = max(observed_max, current)
            assert limiter.in_flight <= 4
            await asyncio.sleep(0.005)
            current -= 1

    async with asyncio.TaskGroup() as group:
        for _ in range(50):
            group.create_task(call())

    assert observed_max == 4
    assert limiter.peak_in_flight == 4
    assert limiter.admitted == 50
    assert limiter.in_flight == 0
    assert limiter.throttled_s > 0


async def admission_times(limiter: EndpointLimiter, n: int) -> list[float]:
    """Start ``n`` callers at once; the times at which each was admitted, in order."""
    starts: list[float] = []

    async def call() -> None:
        async with limiter.admit():
            starts.append(time.monotonic())

    async with asyncio.TaskGroup() as group:
        for _ in range(n):
            group.create_task(call())
    return starts


async def test_requests_per_minute_spaces_admissions() -> None:
    # 600/min is one request every 0.1 s; burst_s=0.1 makes the bucket hold exactly one.
    limiter = EndpointLimiter("e", Limits(requests_per_minute=600, burst_s=0.1))
    starts = await admission_times(limiter, 6)

    gaps = [later - earlier for earlier, later in zip(starts, starts[1:], strict=False)]
    assert all(gap >= 0.09 for gap in gaps), gaps
    assert 0.45 <= starts[-1] - starts[0] <= 1.5


async def test_burst_admits_bucket_capacity_at_once_then_paces() -> None:
    # 600/min with burst_s=0.5: five requests at once, the sixth 0.1 s later.
    limiter = EndpointLimiter("e", Limits(requests_per_minute=600, burst_s=0.5))
    starts = await admission_times(limiter, 6)

    assert starts[4] - starts[0] < 0.05
    assert starts[5] - starts[0] >= 0.09


async def test_retry_after_delays_the_next_start() -> None:
    limiter = EndpointLimiter("e", Limits())
    asked = time.monotonic()
    limiter.retry_after(0.2)
    limiter.retry_after(0.05)  # a shorter block never shortens the one in force
    async with limiter.admit():
        started = time.monotonic()

    assert started - asked >= 0.2
    assert started - asked < 1.0
    assert limiter.retry_after_events == 2


async def test_retry_after_arriving_while_head_waits_extends_its_wait() -> None:
    limiter = EndpointLimiter("e", Limits())
    limiter.retry_after(0.05)
    asked = time.monotonic()
    waiter = asyncio.create_task(_admit_and_time(limiter))
    await asyncio.sleep(0.02)
    limiter.retry_after(0.15)
    started = await waiter

    assert started - asked >= 0.17


async def test_cancelled_waiter_frees_nothing_and_later_waiters_proceed() -> None:
    limiter = EndpointLimiter("e", Limits(max_concurrency=1))
    release = asyncio.Event()
    entered: list[str] = []

    async def call(name: str) -> None:
        async with limiter.admit():
            entered.append(name)
            await release.wait()

    holder = asyncio.create_task(call("holder"))
    await _let_tasks_reach_the_limiter()
    head = asyncio.create_task(call("head"))
    middle = asyncio.create_task(call("middle"))
    last = asyncio.create_task(call("last"))
    await _let_tasks_reach_the_limiter()

    middle.cancel()
    head.cancel()
    with pytest.raises(asyncio.CancelledError):
        await middle
    with pytest.raises(asyncio.CancelledError):
        await head
    assert limiter.in_flight == 1
    assert entered == ["holder"]

    release.set()
    await asyncio.wait_for(asyncio.gather(holder, last), timeout=1.0)
    assert entered == ["holder", "last"]
    assert limiter.in_flight == 0
    assert limiter.admitted == 2


async def test_waiter_cancelled_just_as_its_slot_frees_passes_the_turn_on() -> None:
    limiter = EndpointLimiter("e", Limits(max_concurrency=1))
    holder = limiter.admit()
    await holder.__aenter__()
    head = asyncio.create_task(_admit_and_time(limiter))
    nxt = asyncio.create_task(_admit_and_time(limiter))
    await _let_tasks_reach_the_limiter()

    await holder.__aexit__(None, None, None)  # the slot frees and the head is woken...
    head.cancel()  # ...and cancelled before it can run
    with pytest.raises(asyncio.CancelledError):
        await head
    await asyncio.wait_for(nxt, timeout=1.0)

    assert limiter.admitted == 2  # the holder and ``nxt``
    assert limiter.in_flight == 0


async def test_admission_is_fifo_under_concurrency_one() -> None:
    limiter = EndpointLimiter("e", Limits(max_concurrency=1))
    order: list[int] = []

    async def call(index: int) -> None:
        async with limiter.admit():
            order.append(index)
            await asyncio.sleep(0.001)

    async with asyncio.TaskGroup() as group:
        for index in range(20):
            group.create_task(call(index))

    assert order == list(range(20))


async def test_big_call_at_the_head_is_not_overtaken_by_small_ones() -> None:
    # 6000 tokens/min = 100 per s; burst_s=0.5 gives a 50-token bucket.
    limiter = EndpointLimiter("e", Limits(tokens_per_minute=6000, burst_s=0.5))
    order: list[str] = []

    async def call(name: str, tokens: int) -> None:
        async with limiter.admit(tokens=tokens):
            order.append(name)

    async with asyncio.TaskGroup() as group:
        group.create_task(call("drain", 40))
        group.create_task(call("big", 30))
        group.create_task(call("small", 1))

    assert order == ["drain", "big", "small"]


async def test_tokens_per_minute_budget_is_corrected_by_settle() -> None:
    # 6000 tokens/min = 100 per s; burst_s=0.2 gives a 20-token bucket.
    limiter = EndpointLimiter("e", Limits(tokens_per_minute=6000, burst_s=0.2))

    began = time.monotonic()
    await _admit_and_time(limiter, tokens=20)  # bucket drained
    limiter.settle(estimated=20, actual=5)  # 15 tokens refunded
    refunded = await _admit_and_time(limiter, tokens=15)
    assert refunded - began < 0.1

    limiter.settle(estimated=15, actual=35)  # 20 tokens overrun: the bucket is in debt
    asked = time.monotonic()
    started = await _admit_and_time(limiter, tokens=10)
    # Without the overrun the wait would be 0.1 s; with 20 tokens of debt it is 0.3 s.
    assert started - asked >= 0.27
    assert started - asked < 1.5


async def test_refund_wakes_a_waiting_head_early() -> None:
    limiter = EndpointLimiter("e", Limits(tokens_per_minute=600, burst_s=1.0))  # 10 tokens, 10/s
    await _admit_and_time(limiter, tokens=10)
    asked = time.monotonic()
    waiter = asyncio.create_task(_admit_and_time(limiter, tokens=10))  # would wait 1 s
    await _let_tasks_reach_the_limiter()
    limiter.settle(estimated=10, actual=0)
    started = await asyncio.wait_for(waiter, timeout=1.0)

    assert started - asked < 0.5


async def test_call_bigger_than_the_bucket_passes_then_leaves_debt() -> None:
    # 60000 tokens/min = 1000 per s; burst_s=0.02 gives a 20-token bucket.
    limiter = EndpointLimiter("e", Limits(tokens_per_minute=60000, burst_s=0.02))
    asked = time.monotonic()
    big = await _admit_and_time(limiter, tokens=100)
    small = await _admit_and_time(limiter, tokens=1)

    assert big - asked < 0.05
    assert small - big >= 0.07  # 80 tokens of debt plus one, at 1000 per s


async def test_raising_concurrency_admits_a_waiter_at_once() -> None:
    control = AdmissionControl({"e": Limits(max_concurrency=1)})
    limiter = control.for_endpoint("e")
    release = asyncio.Event()

    async def hold() -> None:
        async with limiter.admit():
            await release.wait()

    holder = asyncio.create_task(hold())
    await asyncio.sleep(0)
    waiter = asyncio.create_task(_admit_and_time(limiter))
    await _let_tasks_reach_the_limiter()
    control.set_limits("e", Limits(max_concurrency=2))
    await asyncio.wait_for(waiter, timeout=1.0)

    assert limiter.in_flight == 1
    assert limiter.peak_in_flight == 2
    release.set()
    await holder


async def test_admission_control_shares_one_limiter_per_endpoint() -> None:
    control = AdmissionControl({"http://a": Limits(max_concurrency=2)})
    a = control.for_endpoint("http://a")
    assert control.for_endpoint("http://a") is a
    assert a.limits == Limits(max_concurrency=2)
    b = control.for_endpoint("http://b")
    assert b is not a
    assert b.limits == Limits()

    async with a.admit(), a.admit(), b.admit():
        assert (a.in_flight, b.in_flight) == (2, 1)
    a.retry_after(0)

    stats = control.stats()
    assert set(stats) == {"http://a", "http://b"}
    assert stats["http://a"]["admitted"] == 2
    assert stats["http://a"]["peak_in_flight"] == 2
    assert stats["http://a"]["retry_after_events"] == 1
    assert stats["http://b"]["admitted"] == 1
    assert set(stats["http://b"]) == {"admitted", "peak_in_flight", "throttled_s", "retry_after_events"}


async def test_limits_set_before_first_use_apply_to_the_new_limiter() -> None:
    control = AdmissionControl()
    control.set_limits("e", Limits(requests_per_minute=60))
    assert control.for_endpoint("e").limits == Limits(requests_per_minute=60)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_concurrency": 0},
        {"requests_per_minute": 0},
        {"tokens_per_minute": -1},
        {"requests_per_minute": float("inf")},
        {"burst_s": 0},
    ],
)
def test_invalid_limits_are_rejected_with_the_field_named(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        Limits(**kwargs)


def test_negative_retry_after_and_token_counts_are_rejected() -> None:
    limiter = EndpointLimiter("e", Limits())
    with pytest.raises(ValueError, match="retry_after"):
        limiter.retry_after(-1)
    with pytest.raises(ValueError, match="tokens"):
        limiter.admit(tokens=-1)
    with pytest.raises(ValueError, match="token counts"):
        limiter.settle(estimated=-1, actual=0)
