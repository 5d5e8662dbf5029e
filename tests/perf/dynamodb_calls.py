"""Counts the DynamoDB calls Sluice makes, per operation, with botocore's event hooks.

`sluice.aws.add_client_hook` hands every client Sluice makes (and every cached one) to us; we
register `before-call.dynamodb` / `after-call.dynamodb` on it. Per operation we keep the calls,
the items read (GetItem's Item, Query's and Scan's ScannedCount, BatchGetItem's Responses), the
items returned, the items written (one per Put/Update/Delete, the requests of a BatchWriteItem or
TransactWriteItems), failed calls, botocore's retries inside calls, and the time from before-call
to after-call.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

from sluice import aws

_WRITES_ONE = ("PutItem", "UpdateItem", "DeleteItem")


@dataclass
class Tally:
    calls: int = 0
    items_read: int = 0
    items_returned: int = 0
    items_written: int = 0
    failed: int = 0
    retries: int = 0  # botocore's own retries inside the calls (ResponseMetadata.RetryAttempts)
    seconds: float = 0.0

    def add(self, other: Tally) -> None:
        self.calls += other.calls
        self.items_read += other.items_read
        self.items_returned += other.items_returned
        self.items_written += other.items_written
        self.failed += other.failed
        self.retries += other.retries
        self.seconds += other.seconds


def items_read(operation: str, parsed: dict[str, Any]) -> tuple[int, int]:
    """(items read, items returned) by one response: what DynamoDB charged reads for, what came back."""
    if operation == "GetItem":
        found = 1 if parsed.get("Item") else 0
        return found, found
    if operation in ("Query", "Scan"):
        returned = int(parsed.get("Count", 0))
        return int(parsed.get("ScannedCount", returned)), returned
    if operation == "BatchGetItem":
        returned = sum(len(items) for items in (parsed.get("Responses") or {}).values())
        return returned, returned
    if operation == "TransactGetItems":
        returned = sum(1 for r in parsed.get("Responses") or [] if r.get("Item"))
        return returned, returned
    return 0, 0


def items_written(operation: str, request: dict[str, Any]) -> int:
    """Items one request writes; `request` is botocore's request dict (its body is the JSON sent)."""
    if operation in _WRITES_ONE:
        return 1
    if operation not in ("BatchWriteItem", "TransactWriteItems"):
        return 0
    body = request.get("body") or b"{}"
    params = json.loads(body.decode() if isinstance(body, bytes) else body)
    if operation == "BatchWriteItem":
        return sum(len(requests) for requests in (params.get("RequestItems") or {}).values())
    if operation == "TransactWriteItems":
        return len(params.get("TransactItems") or [])
    return 0


class DynamoDBCalls:
    """A context manager: while open, every DynamoDB call of every Sluice client is counted.

    with DynamoDBCalls() as calls:
        ...            # requests
        calls.reset()  # start a new count
        ...
        calls.total().calls, calls.by_operation()
    """

    def __init__(self, background_threads: tuple[str, ...] = ()) -> None:
        """Calls from threads whose names start with `background_threads` (the local stack's
        asynchronous invocations, "sluice-lambda") are kept apart, in `background()`."""
        self._lock = threading.Lock()
        self._local = threading.local()
        self._background_threads = background_threads
        self._tallies: dict[str, Tally] = {}
        self._background: dict[str, Tally] = {}
        self._clients: list[Any] = []
        self._open = False

    # -- lifecycle ----------------------------------------------------------------------------------
    def __enter__(self) -> DynamoDBCalls:
        self._open = True
        aws.add_client_hook(self._attach)
        return self

    def __exit__(self, *_exc: object) -> None:
        self._open = False
        aws.remove_client_hook(self._attach)
        for client in self._clients:
            client.meta.events.unregister("before-call.dynamodb", self._before)
            client.meta.events.unregister("after-call.dynamodb", self._after)
            client.meta.events.unregister("after-call-error.dynamodb", self._error)
        self._clients.clear()

    def _attach(self, service: str, client: Any) -> None:
        if service != "dynamodb" or any(c is client for c in self._clients):
            return
        client.meta.events.register("before-call.dynamodb", self._before)
        client.meta.events.register("after-call.dynamodb", self._after)
        client.meta.events.register("after-call-error.dynamodb", self._error)
        self._clients.append(client)

    # -- the hooks -------------------------------------------------------------------------------------
    def _before(self, model: Any, params: dict[str, Any], **_: Any) -> None:
        stack = getattr(self._local, "stack", None)
        if stack is None:
            stack = self._local.stack = []
        stack.append((time.perf_counter(), items_written(model.name, params)))

    def _after(self, model: Any, parsed: dict[str, Any], http_response: Any = None, **_: Any) -> None:
        stack = getattr(self._local, "stack", None) or [(time.perf_counter(), 0)]
        started, written = stack.pop()
        read, returned = items_read(model.name, parsed or {})
        status = getattr(http_response, "status_code", 200)
        background = bool(self._background_threads) and threading.current_thread().name.startswith(
            self._background_threads
        )
        with self._lock:
            tallies = self._background if background else self._tallies
            tally = tallies.setdefault(model.name, Tally())
            tally.calls += 1
            tally.items_read += read
            tally.items_returned += returned
            tally.items_written += written
            tally.failed += 1 if status >= 300 else 0
            tally.retries += int(((parsed or {}).get("ResponseMetadata") or {}).get("RetryAttempts", 0))
            tally.seconds += time.perf_counter() - started

    def _error(self, **_: Any) -> None:
        """The call never got a response (connection error): forget its start, count nothing."""
        stack = getattr(self._local, "stack", None)
        if stack:
            stack.pop()

    # -- reading the count ---------------------------------------------------------------------------------
    def reset(self) -> None:
        with self._lock:
            self._tallies = {}
            self._background = {}

    def by_operation(self) -> dict[str, Tally]:
        with self._lock:
            return {op: Tally(**asdict(t)) for op, t in sorted(self._tallies.items())}

    def background(self) -> dict[str, Tally]:
        with self._lock:
            return {op: Tally(**asdict(t)) for op, t in sorted(self._background.items())}

    def total(self) -> Tally:
        total = Tally()
        for tally in self.by_operation().values():
            total.add(tally)
        return total

    @contextmanager
    def counting(self) -> Iterator[DynamoDBCalls]:
        """`with calls.counting(): request()` counts that block alone (resets first)."""
        self.reset()
        yield self

    def describe(self) -> str:
        """`2 (Query 1, GetItem 1)` — calls in total, then per operation."""
        parts = ", ".join(f"{op} {t.calls}" for op, t in self.by_operation().items())
        return f"{self.total().calls} ({parts})" if parts else "0"

    def as_json(self) -> dict[str, Any]:
        return tallies_json(self.by_operation())


def accumulate(into: dict[str, Tally], more: dict[str, Tally]) -> dict[str, Tally]:
    """Add per-operation tallies (counts taken in several blocks) into `into`."""
    for operation, tally in more.items():
        into.setdefault(operation, Tally()).add(tally)
    return into


def tallies_json(by_operation: dict[str, Tally]) -> dict[str, Any]:
    total = Tally()
    for tally in by_operation.values():
        total.add(tally)
    return {"total": asdict(total), "by_operation": {op: asdict(t) for op, t in sorted(by_operation.items())}}
