"""OpenLineage ingest through `sluice dev` (events/s, one event per request and batched) and the
SDK's `run(...).wait()` overhead over the run's own span (issue 15).

`sluice dev` runs in its own process with state in a temporary folder; the SDK is the client.
- single: START/COMPLETE pairs of runs with an input and an output dataset, one event per request;
- batched: the same shape in one request (50 jobs, 40 of them new, START + COMPLETE per run),
  then the same batch again (all duplicates), then new runs of the same 50 jobs (steady use);
- wait: a 3-node inline pipeline triggered and waited on; overhead = wall time from the trigger's
  answer to wait()'s return, less the run's own span (started_at -> finished_at);
- calls: DynamoDB calls per event of a 100-event batch, the handler in-process on moto (no bus:
  the execution.ended events are not published there).

    .venv/bin/python -m tests.perf.bench_sdk_openlineage [--quick]
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from sluice.client import Client
from tests.perf.common import fmt, markdown_table, percentile
from tests.perf.stack_process import ADMIN_KEY, launch, load_average, wait_for_background

PRODUCER = "https://example.com/bench-producer"
SCHEMA = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"
FACET = "https://openlineage.io/spec/facets/1-0-2/OutputStatisticsOutputDatasetFacet.json"
PIPELINE = {
    "name": "bench-wait",
    "sources": [{"name": "src", "type": "inline", "rows": [{"id": i, "v": i * 3} for i in range(20)]}],
    "transforms": [
        {"name": "t", "type": "sql", "inputs": ["src"], "sql": "SELECT id, v FROM src WHERE v > 9"}
    ],
    "destinations": [{"name": "bench_out", "type": "dataset", "inputs": ["t"]}],
}


def run_events(count_runs: int, jobs: int, t0: _dt.datetime) -> list[dict[str, Any]]:
    events = []
    for n in range(count_runs):
        run_id, job = str(uuid.uuid4()), f"job_{n % jobs}"
        inputs = [{"namespace": "s3://lake", "name": f"raw/{n % jobs}"}]
        outputs = [
            {
                "namespace": "s3://lake",
                "name": f"clean/{n % jobs}",
                "outputFacets": {
                    "outputStatistics": {"_producer": PRODUCER, "_schemaURL": FACET, "rowCount": n}
                },
            }
        ]
        for state, offset in (("START", 0.0), ("COMPLETE", 0.5)):
            events.append(
                {
                    "eventType": state,
                    "eventTime": (t0 + _dt.timedelta(seconds=n + offset)).isoformat(),
                    "producer": PRODUCER,
                    "schemaURL": SCHEMA,
                    "run": {"runId": run_id},
                    "job": {"namespace": "bench", "name": job},
                    "inputs": inputs,
                    "outputs": outputs,
                }
            )
    return events


def calls_per_event() -> dict[str, Any]:
    """DynamoDB calls of one 100-event batch (50 runs of 5 jobs), in-process on moto."""
    from sluice.domain import openlineage
    from sluice.store import openlineage as marks
    from tests.perf.common import api_event, call, load_function, moto_table, principal
    from tests.perf.dynamodb_calls import DynamoDBCalls

    # moto's DynamoDB is not thread-safe: the count runs the ingest with one worker and writer
    # (the calls are the same; only their overlap differs).
    openlineage.WORKERS, marks.WRITERS = 1, 1
    with moto_table():
        handler = load_function("LineageFunction")
        t0 = _dt.datetime.now(_dt.UTC) - _dt.timedelta(days=2)

        def post(events: list[dict[str, Any]]) -> tuple[int, Any]:
            event = api_event(
                "POST", "/api/v1/lineage", events, principal("editor"), route="POST /api/v1/lineage"
            )
            return call(handler, event)

        post(run_events(5, 5, t0))  # the jobs' pipelines, types and addresses exist, as in steady use
        events = run_events(50, 5, t0 + _dt.timedelta(hours=1))
        with DynamoDBCalls() as calls:
            status, _body = post(events)
            total = calls.total().calls
            by_operation = {op: tally.calls for op, tally in sorted(calls.by_operation().items())}
    assert status == 201
    return {
        "events": len(events),
        "calls": total,
        "per_event": total / len(events),
        "by_operation": by_operation,
    }


def parse(text: str) -> _dt.datetime:
    return _dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    single_runs, batch_events, waits = (20, 200, 3) if args.quick else (60, 1000, 5)
    results: dict[str, Any] = {"load_before": load_average(), "calls": calls_per_event()}
    with tempfile.TemporaryDirectory() as folder:
        stack = launch(Path(folder) / "state")
        try:
            with Client(stack.base_url, ADMIN_KEY, timeout=300) as client:
                t0 = _dt.datetime.now(_dt.UTC) - _dt.timedelta(days=1)
                singles = run_events(single_runs, 10, t0)
                latencies = []
                started = time.perf_counter()
                for event in singles:
                    begin = time.perf_counter()
                    client.lineage.send(event)
                    latencies.append((time.perf_counter() - begin) * 1000)
                single_seconds = time.perf_counter() - started
                wait_for_background(stack)

                batch = run_events(batch_events // 2, 50, t0 + _dt.timedelta(hours=2))
                started = time.perf_counter()
                answer = client.lineage.send(batch)
                batch_seconds = time.perf_counter() - started
                assert answer["applied"] == len(batch), answer["applied"]
                started = time.perf_counter()
                again = client.lineage.send(batch)
                replay_seconds = time.perf_counter() - started
                assert again["duplicates"] == len(batch)
                wait_for_background(stack)  # the first batch's 500 anomaly checks run meanwhile
                # Steady use: new runs of the same 50 jobs (pipelines and datasets exist).
                steady = run_events(batch_events // 2, 50, t0 + _dt.timedelta(hours=4))
                started = time.perf_counter()
                answer = client.lineage.send(steady)
                steady_seconds = time.perf_counter() - started
                assert answer["applied"] == len(steady), answer["applied"]
                wait_for_background(stack)

                client.pipelines.create(PIPELINE)
                overheads, spans, walls = [], [], []
                for _ in range(waits):
                    run = client.pipelines.run("bench-wait")
                    begin = time.perf_counter()
                    info = run.wait(timeout=120)
                    wall = time.perf_counter() - begin
                    span = (parse(info.finished_at) - parse(info.started_at)).total_seconds()
                    walls.append(wall * 1000)
                    spans.append(span * 1000)
                    overheads.append((wall - span) * 1000)
        finally:
            stack.stop()
    results.update(
        single={
            "events": len(singles),
            "seconds": single_seconds,
            "events_per_second": len(singles) / single_seconds,
            "p50_ms": percentile(latencies, 50),
            "p95_ms": percentile(latencies, 95),
        },
        batch={
            "events": len(batch),
            "seconds": batch_seconds,
            "events_per_second": len(batch) / batch_seconds,
            "replay_seconds": replay_seconds,
            "steady_seconds": steady_seconds,
        },
        wait={
            "runs": waits,
            "wall_p50_ms": statistics.median(walls),
            "span_p50_ms": statistics.median(spans),
            "overhead_p50_ms": statistics.median(overheads),
            "overhead_max_ms": max(overheads),
        },
        load_after=load_average(),
    )
    print(
        markdown_table(
            ["ingest", "events", "seconds", "events/s", "per request p50 / p95 ms"],
            [
                [
                    "one event per request",
                    len(singles),
                    fmt(single_seconds, 2),
                    fmt(results["single"]["events_per_second"]),
                    f"{fmt(results['single']['p50_ms'])} / {fmt(results['single']['p95_ms'])}",
                ],
                [
                    "one batch (40 of its 50 jobs new)",
                    len(batch),
                    fmt(batch_seconds, 2),
                    fmt(results["batch"]["events_per_second"]),
                    "",
                ],
                [
                    "the same batch again (all duplicates)",
                    len(batch),
                    fmt(replay_seconds, 2),
                    fmt(len(batch) / replay_seconds),
                    "",
                ],
                [
                    "a batch of new runs of the same 50 jobs",
                    len(steady),
                    fmt(steady_seconds, 2),
                    fmt(len(steady) / steady_seconds),
                    "",
                ],
            ],
        )
    )
    print()
    print(
        markdown_table(
            ["runs waited", "wait() wall p50 ms", "run span p50 ms", "overhead p50 ms", "overhead max ms"],
            [
                [
                    waits,
                    fmt(results["wait"]["wall_p50_ms"]),
                    fmt(results["wait"]["span_p50_ms"]),
                    fmt(results["wait"]["overhead_p50_ms"]),
                    fmt(results["wait"]["overhead_max_ms"]),
                ]
            ],
        )
    )
    counted = results["calls"]
    print(
        f"\nDynamoDB calls of a {counted['events']}-event batch (in-process, moto): {counted['calls']} "
        f"({counted['per_event']:.2f} per event): {counted['by_operation']}"
    )
    print(f"\nload average before/after: {results['load_before']} / {results['load_after']}")
    out = Path("tests/perf/results")
    out.mkdir(parents=True, exist_ok=True)
    (out / "sdk_openlineage.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
