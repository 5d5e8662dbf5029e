"""The local stack, started in this process for the gateway benchmarks, and timed request loops."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from tests.perf.common import api_event, offline_aws_environment, percentile

ADMIN_KEY = "df_key_" + "perfGatewayAdminKey0123456789abcdefghij"


@contextmanager
def running_stack(loop_per_thread: bool = True) -> Iterator[tuple[Any, str]]:
    """`sluice dev --ephemeral` in this process on a free port: (the LocalStack, the gateway's URL).

    The admin key belongs to project `default`. With `loop_per_thread`, every thread that invokes a
    function gets an asyncio event loop first: the gateway runs handlers on AnyIO worker threads,
    and Mangum only finds a loop in the thread that imported the function, so without this
    concurrent requests answer 500 (reported in docs/performance.md; not fixed here).
    """
    offline_aws_environment()
    from sluice.local.stack import LocalStack, StackOptions

    logging.getLogger("sluice.local").setLevel(logging.WARNING)
    stack = LocalStack(StackOptions(port=0, ephemeral=True, admin_key=ADMIN_KEY, log_level="WARNING"))
    stack.start()
    try:
        if loop_per_thread:
            give_each_thread_an_event_loop(stack)
        yield stack, stack.serve_in_thread()
    finally:
        stack.stop()


def give_each_thread_an_event_loop(stack: Any) -> Callable[[], None]:
    """Wrap this stack's function invocations (this instance only); returns the undo."""
    original = stack.registry.invoke

    def invoke(name_or_arn: str, event: Any) -> Any:
        ensure_event_loop()
        return original(name_or_arn, event)

    stack.registry.invoke = invoke

    def undo() -> None:
        stack.registry.invoke = original

    return undo


def authorizer_event(key: str = ADMIN_KEY) -> dict[str, Any]:
    """What the gateway hands the authorizer for `GET /pipeline/{id}` with this bearer key."""
    from sluice.local.gateway import authorizer_event as to_authorizer

    event = api_event("GET", "/pipeline/1", route="GET /pipeline/{pipeline_id}", params={"pipeline_id": "1"})
    event["headers"]["authorization"] = f"Bearer {key}"
    return to_authorizer(event)


def default_admin() -> Any:
    """The principal the authorizer makes of ADMIN_KEY (put in events that skip the gateway)."""
    from sluice.auth.principal import Principal, Role

    return Principal(
        project="default", role=Role.admin, subject="key:bootstrap-admin", key_id="bootstrap-admin"
    )


def ensure_event_loop() -> None:
    import asyncio

    try:
        asyncio.get_event_loop_policy().get_event_loop()
    except RuntimeError:
        asyncio.set_event_loop(asyncio.new_event_loop())


class Timings:
    """Latencies (seconds) per step name, collected from any number of threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.samples: dict[str, list[float]] = {}
        self.elapsed = 0.0
        self.cycles = 0
        self.errors: list[str] = []

    def error(self, what: str) -> bool:
        """Record a failed request; the cycle returns this (False) and is not timed."""
        with self._lock:
            self.errors.append(what)
        return False

    def merge(self, other: Timings) -> None:
        """Add another run's samples (runs done in blocks, interleaved with other paths)."""
        with self._lock:
            for step, values in other.samples.items():
                self.samples.setdefault(step, []).extend(values)
            self.elapsed += other.elapsed
            self.cycles += other.cycles
            self.errors.extend(other.errors)

    def record(self, step: str, seconds: float) -> None:
        with self._lock:
            self.samples.setdefault(step, []).append(seconds)

    def timed(self, step: str, action: Callable[[], Any]) -> Any:
        started = time.perf_counter()
        result = action()
        self.record(step, time.perf_counter() - started)
        return result

    def p(self, step: str, q: float) -> float:
        """Percentile q of a step, in ms."""
        return percentile(self.samples.get(step, []), q) * 1000

    def rate(self) -> float:
        """Cycles per second over the whole run."""
        return self.cycles / self.elapsed if self.elapsed else float("nan")

    def as_json(self) -> dict[str, Any]:
        return {
            "cycles": self.cycles,
            "errors": len(self.errors),
            "first_errors": self.errors[:3],
            "elapsed_s": self.elapsed,
            "cycles_per_s": self.rate(),
            "steps_ms": {
                step: {"p50": self.p(step, 50), "p99": self.p(step, 99), "n": len(values)}
                for step, values in self.samples.items()
            },
        }


def run_cycles(cycle: Callable[[int, Timings], Any], count: int, clients: int = 1) -> Timings:
    """`count` cycles spread over `clients` threads; each calls `cycle(index, timings)`, which
    returns False (Timings.error) when a request failed: failed cycles are counted, not timed."""
    timings = Timings()
    indexes = iter(range(count))
    lock = threading.Lock()
    failures: list[BaseException] = []

    def worker() -> None:
        ensure_event_loop()
        while True:
            with lock:
                index = next(indexes, None)
            if index is None or failures:
                return
            try:
                started = time.perf_counter()
                if cycle(index, timings) is not False:
                    timings.record("cycle", time.perf_counter() - started)
            except BaseException as exc:  # surface it in the caller, not silently in a thread
                failures.append(exc)
                return

    started = time.perf_counter()
    threads = [threading.Thread(target=worker, name=f"perf-client-{n}") for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    timings.elapsed = time.perf_counter() - started
    timings.cycles = len(timings.samples.get("cycle", []))
    if failures:
        raise failures[0]
    return timings
