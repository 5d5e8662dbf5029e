"""Run latency (issue 6): trigger-to-first-node latency and per-node overhead of a 20-node chain of
trivial nodes, through the local stack (`sluice dev` in a subprocess, driven over HTTP: gateway,
run queue, dispatcher, the Run state machine interpreted by moto, node Lambdas on DuckDB + S3).

    .venv/bin/python -m tests.perf.bench_run_latency [--runs N] [--nodes 20]

- trigger-to-first-node: the first node run's `started_at` minus the run's `started_at` (the moment
  the trigger wrote it pending), i.e. queue + dispatch + execution start + plan + first step.
- per-node overhead: for each pair of consecutive nodes, the next node's `started_at` minus the
  previous node's `finished_at` (state machine step, Lambda invoke, reading the run and the node).
- run overhead per node: (run end - first node start - sum of node durations) / nodes.

Runs are sequential (one at a time), so no slot waits are counted. Prints a markdown table and
one JSON line.
"""

from __future__ import annotations

import argparse
import json
import secrets
import statistics
import time

import pendulum

from tests.e2e.conftest import jwt_for, start_stack

FINISHED = ("success", "failed", "cancelled")
# The stack records every timestamp itself, so polling slower changes no figure; polling every 50 ms
# (as this did at first) made the benchmark's own GETs compete with the run for the stack's one
# interpreter and inflated the gaps it measures.
POLL_SECONDS = 0.25


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def at(text: str) -> float:
    return pendulum.parse(text).timestamp()


def run_once(client, pipeline_id: int) -> dict:
    """Trigger the pipeline, wait for the run to end, and return it (it must have succeeded)."""
    triggered = client.post(f"/api/pipelines/{pipeline_id}/run", json={})
    assert triggered.status_code == 202, triggered.text
    run_id = triggered.json()["id"]
    deadline = time.monotonic() + 600
    while True:
        run = client.get(f"/api/runs/{run_id}").json()
        if run["status"] in FINISHED or time.monotonic() > deadline:
            break
        time.sleep(POLL_SECONDS)
    assert run["status"] == "success", run
    return run


def chain(nodes: int) -> tuple[list, list]:
    spec = [{"id": "n0", "nodeType": "source", "config": {"kind": "inline", "rows": [{"a": 1}, {"a": 2}]}}]
    edges = []
    for i in range(1, nodes):
        spec.append({"id": f"n{i}", "nodeType": "transform", "config": {"sql": f"SELECT a FROM n{i - 1}"}})
        edges.append({"source": f"n{i - 1}", "target": f"n{i}"})
    return spec, edges


def measure(runs: int, nodes: int) -> dict:
    stack = start_stack("--ephemeral")
    try:
        project = "perf-" + secrets.token_hex(3)
        with stack.client(jwt_for(project, "admin")) as client:
            spec, edges = chain(nodes)
            created = client.post(
                "/api/v1/pipelines",
                json={"name": "chain", "nodes": spec, "edges": edges, "executionConfig": {"parallelism": 1}},
            )
            assert created.status_code == 201, created.text
            pipeline_id = created.json()["data"]["id"]
            first_node, gaps, per_node, totals = [], [], [], []
            for attempt in range(runs + 1):  # the first run warms the Lambdas up and is not counted
                run = run_once(client, pipeline_id)
                if attempt == 0:
                    continue
                ordered = sorted(run["node_runs"], key=lambda n: at(n["started_at"]))
                first_node.append(at(ordered[0]["started_at"]) - at(run["started_at"]))
                gaps += [
                    at(b["started_at"]) - at(a["finished_at"])
                    for a, b in zip(ordered, ordered[1:], strict=False)
                ]
                busy = sum(n["duration_ms"] for n in ordered) / 1000
                span = at(run["finished_at"]) - at(ordered[0]["started_at"])
                per_node.append((span - busy) / nodes)
                totals.append(at(run["finished_at"]) - at(run["started_at"]))
    finally:
        stack.stop()

    def stats(values: list[float]) -> dict:
        return {
            "median_ms": round(statistics.median(values) * 1000, 1),
            "p95_ms": round(percentile(values, 95) * 1000, 1),
            "n": len(values),
        }

    return {
        "nodes": nodes,
        "runs": runs,
        "trigger_to_first_node": stats(first_node),
        "gap_between_nodes": stats(gaps),
        "run_overhead_per_node": stats(per_node),
        "trigger_to_end": stats(totals),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--nodes", type=int, default=20)
    args = parser.parse_args()
    result = measure(args.runs, args.nodes)
    print(f"| figure ({result['nodes']}-node chain, {result['runs']} runs) | median ms | p95 ms | samples |")
    print("|---|---|---|---|")
    for name in ("trigger_to_first_node", "gap_between_nodes", "run_overhead_per_node", "trigger_to_end"):
        row = result[name]
        print(f"| {name.replace('_', ' ')} | {row['median_ms']} | {row['p95_ms']} | {row['n']} |")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
