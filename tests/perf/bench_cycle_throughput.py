"""Start -> end cycles per second through `sluice dev` (issue 10): 1 and 8 clients, with 0 and with
100,000 executions already in the table, anomaly detection keeping up.

`sluice dev` runs as a user runs it (its own process, state on disk in a temporary folder); the
clients are threads of this process, each with its own keep-alive connection and its own pipeline,
which has a total_rows anomaly rule, so every end also runs detection in the stack (EventBridge
-> AnomalyDetectionFunction). Each block of cycles gets fresh pipelines, so every block starts
from the same baseline, and is timed from its first request to the moment the stack reports no
pending background work: the figure includes detection catching up. The detection lag (event to
end of detection) is the stack's own measure (`GET /_local/stats`). CPU per cycle is the stack's
and DynamoDB Local's /proc times over the block.

    .venv/bin/python -m tests.perf.bench_cycle_throughput [--quick] [--history 100000]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from tests.perf.common import fmt, markdown_table, percentile
from tests.perf.stack_process import (
    admin_client,
    cpu_seconds,
    launch,
    load_average,
    seed_history,
    stats,
    wait_for_background,
)

CLIENTS = (1, 8)
PROJECT = "default"  # the admin key's project


def iso(moment: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(moment)) + f".{int(moment % 1 * 1e6):06d}Z"


def make_pipelines(client: Any, count: int, tag: str) -> list[int]:
    ids = []
    for n in range(count):
        created = client.post(
            "/pipeline", json={"name": f"cycle-{tag}-{n}", "pipeline_type_name": "extraction"}
        )
        assert created.status_code in (200, 201), created.text
        rule = {"pipeline_id": created.json()["id"], "metric_field": "total_rows", "z_threshold": 3.0}
        assert client.post("/anomaly_detection_rule", json={**rule, "minimum_executions": 5}).status_code in (
            200,
            201,
        )
        ids.append(created.json()["id"])
    return ids


def cycles(stack: Any, pipelines: list[int], per_client: int) -> dict[str, Any]:
    """`per_client` cycles on each of len(pipelines) concurrent clients; latencies and errors."""
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(len(pipelines))

    def client_loop(pipeline_id: int) -> None:
        with admin_client(stack) as client:
            client.get("/health")
            barrier.wait()
            for index in range(per_client):
                began = time.perf_counter()
                started = client.post(
                    "/start_pipeline_execution",
                    json={"pipeline_id": pipeline_id, "start_date": iso(time.time() - 300)},
                )
                if started.status_code != 201:
                    with lock:
                        errors.append(f"start {started.status_code} {started.text[:80]}")
                    continue
                body = {
                    "id": started.json()["id"],
                    "end_date": iso(time.time()),
                    "completed_successfully": True,
                    "total_rows": 1000 + index % 7,
                    "inserts": 10,
                    "updates": 0,
                    "soft_deletes": 0,
                }
                ended = client.post("/end_pipeline_execution", json=body)
                with lock:
                    if ended.status_code != 204:
                        errors.append(f"end {ended.status_code} {ended.text[:80]}")
                    else:
                        latencies.append(time.perf_counter() - began)

    threads = [threading.Thread(target=client_loop, args=(p,)) for p in pipelines]
    stack_cpu, java_cpu = cpu_seconds(stack.process.pid), cpu_seconds(stack.java_pid)
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    requests_done = time.perf_counter() - began
    caught_up = wait_for_background(stack)
    elapsed = time.perf_counter() - began
    done = len(latencies)
    background = stats(stack, reset=True)["background"]
    detection = background["lag_ms"].get("AnomalyDetectionFunction") or background["lag_ms"].get(
        next(iter(background["lag_ms"]), ""), {}
    )
    return {
        "clients": len(pipelines),
        "cycles": done,
        "errors": errors[:5],
        "error_count": len(errors),
        "cycles_per_s": done / elapsed,
        "cycles_per_s_requests_only": done / requests_done,
        "detection_caught_up_after_s": caught_up,
        "cycle_p50_ms": percentile(latencies, 50) * 1000,
        "cycle_p99_ms": percentile(latencies, 99) * 1000,
        "stack_cpu_ms_per_cycle": (cpu_seconds(stack.process.pid) - stack_cpu) * 1000 / max(done, 1),
        "dynamodb_local_cpu_ms_per_cycle": (cpu_seconds(stack.java_pid) - java_cpu) * 1000 / max(done, 1),
        "detection_lag_ms": detection,
        "load_average": load_average(),
    }


def measure(history: int, per_client: dict[int, int], rounds: int) -> dict[str, Any]:
    results: dict[str, Any] = {"history": history, "per_client": per_client, "rounds": rounds, "blocks": []}
    with tempfile.TemporaryDirectory(prefix="sluice-bench-") as folder:
        stack = launch(Path(folder) / "data")
        stack.java_pid = stats(stack)["dynamodb_local"]["pid"]
        try:
            with admin_client(stack) as client:
                warm = make_pipelines(client, max(CLIENTS), "warm")
                cycles(stack, warm, 20)  # load every function, warm DynamoDB Local's JIT
                for phase, executions in (("empty", 0), ("history", history)):
                    if executions:
                        seeded = make_pipelines(client, max(CLIENTS), "seeded")
                        results["seed_seconds"] = seed_history(stack, PROJECT, seeded, executions)
                    for round_ in range(rounds):
                        for clients in CLIENTS:
                            pipelines = make_pipelines(client, clients, f"{phase}-{round_}-{clients}")
                            block = cycles(stack, pipelines, per_client[clients])
                            block.update(phase=phase, executions_in_table=executions, round=round_)
                            results["blocks"].append(block)
                            print(
                                f"{phase} {clients} clients: {block['cycles_per_s']:.1f} cycles/s, "
                                f"lag p99 {block['detection_lag_ms'].get('p99')} ms, load {block['load_average']}",
                                flush=True,
                            )
                results["final_stats"] = stats(stack)
        finally:
            stack.stop()
    return results


def report(results: dict[str, Any]) -> str:
    rows = []
    for block in results["blocks"]:
        lag = block["detection_lag_ms"]
        rows.append(
            [
                f"{block['executions_in_table']:,}",
                str(block["clients"]),
                str(block["round"] + 1),
                fmt(block["cycles"]),
                fmt(block["cycles_per_s"]),
                fmt(block["cycle_p50_ms"]),
                fmt(block["cycle_p99_ms"]),
                fmt(block["stack_cpu_ms_per_cycle"]),
                fmt(block["dynamodb_local_cpu_ms_per_cycle"]),
                f"{lag.get('p50', '-')} / {lag.get('p99', '-')}",
                fmt(block["error_count"]),
                " ".join(str(x) for x in block["load_average"]),
            ]
        )
    return markdown_table(
        [
            "executions in table",
            "clients",
            "round",
            "cycles",
            "cycles/s",
            "cycle p50 ms",
            "cycle p99 ms",
            "stack CPU ms/cycle",
            "DynamoDB Local CPU ms/cycle",
            "detection lag p50 / p99 ms",
            "failed",
            "load average",
        ],
        rows,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,000 executions of history, short blocks")
    parser.add_argument("--history", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    per_client = {1: 40, 8: 20} if args.quick else {1: 400, 8: 100}
    results = measure(1000 if args.quick else args.history, per_client, 1 if args.quick else args.rounds)
    print(report(results))
    print(json.dumps(results, default=str))


if __name__ == "__main__":
    main()
