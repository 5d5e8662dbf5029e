"""A start -> end cycle (`POST /start_pipeline_execution` then `POST /end_pipeline_execution`) through
the local gateway, with one client and with 8 concurrent clients, against calling the RunsFunction
handler in-process (issue 4, figure 4).

The local stack runs in this process (as in bench_gateway). Each client thread reports to its own
pipeline, which has an anomaly rule on total_rows, so every successful end also runs anomaly
detection asynchronously in the stack (EventBridge rule -> AnomalyDetectionFunction), as it would in
AWS; those DynamoDB calls are counted apart ("background"). Gateway and in-process runs alternate in
blocks, and each block waits for the background work it caused, so neither path runs on a bigger
table or behind the other's backlog.

    .venv/bin/python -m tests.perf.bench_execution_cycle [--quick]
"""

from __future__ import annotations

import contextlib
import io
import itertools
import threading
import time
import warnings
from typing import Any

from tests.perf.bench_gateway import table_items
from tests.perf.common import Report, api_event, bench_main, fmt, markdown_table, status_and_body
from tests.perf.dynamodb_calls import DynamoDBCalls, Tally, accumulate, tallies_json
from tests.perf.local_stack import (
    ADMIN_KEY,
    Timings,
    default_admin,
    give_each_thread_an_event_loop,
    run_cycles,
    running_stack,
)

CLIENTS = (1, 8)
BACKGROUND = ("sluice-lambda",)


def _iso(moment: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(moment)) + f".{int(moment % 1 * 1e6):06d}Z"


def start_body(pipeline_id: int) -> dict[str, Any]:
    return {"pipeline_id": pipeline_id, "start_date": _iso(time.time() - 300)}


def end_body(run_id: int, index: int) -> dict[str, Any]:
    # total_rows in a narrow band: the rule judges every end, none is an anomaly.
    return {
        "id": run_id,
        "end_date": _iso(time.time()),
        "completed_successfully": True,
        "total_rows": 1000 + index % 7,
        "inserts": 10,
        "updates": 0,
        "soft_deletes": 0,
    }


class PerThread:
    """Each client thread gets its own pipeline (and, through the gateway, its own httpx.Client)."""

    def __init__(self, pipelines: list[int], base_url: str | None = None):
        self.pipelines = pipelines
        self.base_url = base_url
        self._local = threading.local()
        self._next = itertools.count()
        self._clients: list[Any] = []
        self._lock = threading.Lock()

    def pipeline(self) -> int:
        if not hasattr(self._local, "pipeline"):
            self._local.pipeline = self.pipelines[next(self._next) % len(self.pipelines)]
        return self._local.pipeline

    def client(self) -> Any:
        import httpx

        if not hasattr(self._local, "client"):
            client = httpx.Client(
                base_url=self.base_url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=60
            )
            self._local.client = client
            with self._lock:
                self._clients.append(client)
        return self._local.client

    def close(self) -> None:
        for client in self._clients:
            client.close()


def gateway_cycles(base_url: str, pipelines: list[int], count: int, clients: int) -> Timings:
    threads = PerThread(pipelines, base_url)

    def cycle(index: int, timings: Timings) -> bool:
        client = threads.client()
        started = timings.timed(
            "start", lambda: client.post("/start_pipeline_execution", json=start_body(threads.pipeline()))
        )
        if started.status_code != 201:
            return timings.error(f"start {started.status_code} {started.text[:100]}")
        ended = timings.timed(
            "end", lambda: client.post("/end_pipeline_execution", json=end_body(started.json()["id"], index))
        )
        if ended.status_code != 204:
            return timings.error(f"end {ended.status_code} {ended.text[:100]}")
        return True

    try:
        return run_cycles(cycle, count, clients)
    finally:
        threads.close()


def in_process_cycles(stack: Any, pipelines: list[int], count: int, clients: int) -> Timings:
    threads = PerThread(pipelines)
    caller = default_admin()

    def cycle(index: int, timings: Timings) -> bool:
        start = api_event(
            "POST",
            "/start_pipeline_execution",
            start_body(threads.pipeline()),
            caller,
            "POST /start_pipeline_execution",
        )
        status, body = status_and_body(timings.timed("start", lambda: stack.invoke("RunsFunction", start)))
        if status != 201:
            return timings.error(f"start {status} {str(body)[:100]}")
        end = api_event(
            "POST",
            "/end_pipeline_execution",
            end_body(body["id"], index),
            caller,
            "POST /end_pipeline_execution",
        )
        status, body = status_and_body(timings.timed("end", lambda: stack.invoke("RunsFunction", end)))
        if status != 204:
            return timings.error(f"end {status} {str(body)[:100]}")
        return True

    return run_cycles(cycle, count, clients)


def settle(calls: DynamoDBCalls, quiet: float = 0.3, limit: float = 30.0) -> None:
    """Wait until the asynchronous work the cycles caused (anomaly detection) has finished."""
    deadline = time.monotonic() + limit
    seen = -1
    while time.monotonic() < deadline:
        now = sum(t.calls for t in calls.background().values())
        if now == seen:
            return
        seen = now
        time.sleep(quiet)


def make_pipelines(stack: Any, count: int) -> list[int]:
    caller = default_admin()
    ids = []
    for n in range(count):
        event = api_event(
            "POST",
            "/pipeline",
            {"name": f"cycle-{n}", "pipeline_type_name": "extraction"},
            caller,
            "POST /pipeline",
        )
        status, body = status_and_body(stack.invoke("PipelinesFunction", event))
        assert status in (200, 201), body
        ids.append(body["id"])
        rule = {
            "pipeline_id": body["id"],
            "metric_field": "total_rows",
            "z_threshold": 3.0,
            "minimum_executions": 5,
        }
        event = api_event("POST", "/anomaly_detection_rule", rule, caller, "POST /anomaly_detection_rule")
        status, body = status_and_body(stack.invoke("MonitorFunction", event))
        assert status in (200, 201), body
    return ids


def measure(quick: bool) -> dict[str, Any]:
    cycles = {1: 10, 8: 40} if quick else {1: 30, 8: 80}
    blocks = {1: 10, 8: 40}
    results: dict[str, Any] = {"cycles": {str(k): v for k, v in cycles.items()}}
    printed = io.StringIO()
    warnings.filterwarnings("ignore", message="No application metrics to publish")
    with (
        contextlib.redirect_stdout(printed),
        running_stack(loop_per_thread=False) as (stack, base_url),
        DynamoDBCalls(background_threads=BACKGROUND) as calls,
    ):
        pipelines = make_pipelines(stack, max(CLIENTS))
        # The gateway as it is (functions loaded on this thread, served from AnyIO worker threads).
        probe = gateway_cycles(base_url, pipelines, 8 * max(CLIENTS), max(CLIENTS))
        results["as_is"] = {"clients": max(CLIENTS), "cycles_tried": 8 * max(CLIENTS), "failed": len(probe.errors),
                            "first_errors": probe.errors[:3]}  # fmt: skip
        give_each_thread_an_event_loop(stack)
        settle(calls)
        gateway_cycles(base_url, pipelines, 10, 1)  # warm-up: handlers, clients, connections
        in_process_cycles(stack, pipelines, 10, 1)
        settle(calls)
        results["table_items_before"] = table_items(stack)
        for clients in CLIENTS:
            block = blocks[clients]
            timings = {"gateway": Timings(), "in_process": Timings()}
            counted: dict[str, dict[str, Tally]] = {"gateway": {}, "in_process": {}}
            background: dict[str, dict[str, Tally]] = {"gateway": {}, "in_process": {}}
            for _ in range(max(1, cycles[clients] // block)):
                for path in ("gateway", "in_process"):
                    with calls.counting():
                        if path == "gateway":
                            timings[path].merge(gateway_cycles(base_url, pipelines, block, clients))
                        else:
                            timings[path].merge(in_process_cycles(stack, pipelines, block, clients))
                        settle(calls)
                    accumulate(counted[path], calls.by_operation())
                    accumulate(background[path], calls.background())
            for path in ("gateway", "in_process"):
                done = timings[path].cycles
                foreground, behind = tallies_json(counted[path]), tallies_json(background[path])
                results[f"{path}_{clients}"] = {
                    **timings[path].as_json(),
                    "clients": clients,
                    "dynamodb": foreground,
                    "dynamodb_calls_per_cycle": foreground["total"]["calls"] / done,
                    "background_dynamodb": behind,
                    "background_calls_per_cycle": behind["total"]["calls"] / done,
                }
        results["table_items_after"] = table_items(stack)
    return results


def run(quick: bool) -> Report:
    report = Report("execution_cycle", "Execution start -> end cycles, local gateway against in-process")
    results = measure(quick)
    report.data.update(results)
    probe = results["as_is"]
    report.add(
        f"**The gateway as shipped fails under concurrency:** {probe['failed']} of {probe['cycles_tried']} "
        f"cycles from {probe['clients']} concurrent clients failed (first: `{(probe['first_errors'] or ['-'])[0]}`). "
        "The gateway runs handlers on AnyIO worker threads and Mangum finds an asyncio event loop only in "
        "the thread that imported the function. The figures below give each invoking thread a loop first "
        "(tests/perf/local_stack.py), as a fix in sluice.local would."
    )
    rows = []
    for clients in CLIENTS:
        for path, label in (("gateway", "through the gateway"), ("in_process", "in-process handler")):
            entry = results[f"{path}_{clients}"]
            steps = entry["steps_ms"]
            rows.append(
                [
                    label,
                    str(clients),
                    fmt(entry["cycles"]),
                    fmt(entry["cycles_per_s"]),
                    fmt(steps["cycle"]["p50"]),
                    fmt(steps["cycle"]["p99"]),
                    fmt(steps["start"]["p50"]),
                    fmt(steps["end"]["p50"]),
                    fmt(entry["dynamodb_calls_per_cycle"]),
                    fmt(entry["background_calls_per_cycle"]),
                    fmt(entry["errors"]),
                ]
            )
    report.add(
        "Cycles of `POST /start_pipeline_execution` then `POST /end_pipeline_execution` (success, with "
        "counts); each client thread reports to its own pipeline, which has a total_rows anomaly rule. "
        f"The table grew from {results['table_items_before']:,} to {results['table_items_after']:,} items. "
        "Latencies in ms.\n\n"
        + markdown_table(
            [
                "path",
                "clients",
                "cycles",
                "cycles/s",
                "cycle p50",
                "cycle p99",
                "start p50",
                "end p50",
                "DynamoDB calls per cycle",
                "background calls per cycle (anomaly detection)",
                "failed cycles",
            ],
            rows,
        )
    )
    rows = []
    for clients in CLIENTS:
        for path in ("gateway", "in_process"):
            entry = results[f"{path}_{clients}"]
            for where, key in (("request", "dynamodb"), ("background", "background_dynamodb")):
                for operation, tally in entry[key]["by_operation"].items():
                    rows.append(
                        [
                            path.replace("_", "-"),
                            str(clients),
                            where,
                            operation,
                            fmt(tally["calls"] / entry["cycles"], 1),
                            fmt(tally["seconds"] * 1000 / tally["calls"], 1),
                            fmt(tally["retries"]),
                        ]
                    )
    report.add(
        "DynamoDB calls (moto's server over HTTP, in the same process) per cycle:\n\n"
        + markdown_table(
            ["path", "clients", "where", "operation", "calls per cycle", "ms per call", "retries"], rows
        )
    )
    rows = []
    for clients in CLIENTS:
        gateway, local = results[f"gateway_{clients}"], results[f"in_process_{clients}"]
        rows.append(
            [
                str(clients),
                f"{gateway['steps_ms']['cycle']['p50'] / local['steps_ms']['cycle']['p50']:.2f}x",
                f"{local['cycles_per_s'] / gateway['cycles_per_s']:.2f}x",
                f"{gateway['cycles_per_s'] / results['gateway_1']['cycles_per_s']:.2f}x",
            ]
        )
    report.add(
        markdown_table(
            [
                "clients",
                "gateway / in-process (p50 cycle)",
                "in-process / gateway (cycles/s)",
                "gateway speed-up over 1 client",
            ],
            rows,
        )
    )
    return report


if __name__ == "__main__":
    bench_main(__doc__.splitlines()[0], run)
