"""Engine throughput end to end (issue 6): a Parquet source of N rows -> SQL transform (a filter and
a group by) -> dataset target, run through the local stack (`sluice dev` in a subprocess, driven over
HTTP: trigger, run queue, dispatcher, the Run state machine interpreted by moto, one node Lambda per
node on DuckDB, Parquet in moto's S3), against the floor: the same SQL in one DuckDB process on the
same local file.

    .venv/bin/python -m tests.perf.bench_run_throughput [--rows 1000000,4000000] [--runs 3]

Per size, after a warm-up run: the run's span (the trigger writing it pending -> its end), the nodes'
own durations (what execute_node took, summed), rows per second over the span, and the ratio to the
floor. With two or more sizes, the marginal cost of a million more rows, for the run and for the
floor: what the engine adds per row, with the fixed per-run cost (queue, state machine, Lambda
invokes, DynamoDB writes) taken out. Runs are sequential. Prints a markdown table and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import secrets
import statistics
import tempfile
from pathlib import Path

from tests.e2e.conftest import jwt_for, moto_client, start_stack
from tests.perf.bench_engine_throughput import SQL, floor_seconds, make_parquet
from tests.perf.bench_run_latency import at, run_once


def pipeline(bucket: str, key: str) -> dict:
    return {
        "name": "throughput",
        "nodes": [
            {
                "id": "sales",
                "nodeType": "source",
                "config": {"kind": "s3", "uri": f"s3://{bucket}/{key}", "format": "parquet"},
            },
            {"id": "summary", "nodeType": "transform", "config": {"sql": SQL.format(table="sales")}},
            {"id": "out", "nodeType": "target", "config": {"kind": "dataset", "name": "region_revenue"}},
        ],
        "edges": [{"source": "sales", "target": "summary"}, {"source": "summary", "target": "out"}],
    }


def measure(sizes: list[int], runs: int) -> dict:
    results: dict[str, dict] = {}
    stack = start_stack("--ephemeral")
    try:
        project = "perf-" + secrets.token_hex(3)
        bucket = f"landing-{project}"
        s3 = moto_client(stack, "s3")
        s3.create_bucket(Bucket=bucket)
        with stack.client(jwt_for(project, "admin")) as client, tempfile.TemporaryDirectory() as folder:
            for rows in sizes:
                path = Path(folder) / f"sales-{rows}.parquet"
                make_parquet(path, rows)
                key = f"sales/{rows}.parquet"
                s3.upload_file(str(path), bucket, key)
                floor, floor_written = floor_seconds(path, 5)
                spec = pipeline(bucket, key) | {"name": f"throughput-{rows}"}
                created = client.post("/api/v1/pipelines", json=spec)
                assert created.status_code == 201, created.text
                pipeline_id = created.json()["data"]["id"]
                spans, busy, per_node = [], [], {"sales": [], "summary": [], "out": []}
                for attempt in range(runs + 1):  # the first run warms the Lambdas up
                    run = run_once(client, pipeline_id)
                    if attempt == 0:
                        continue
                    nodes = {node["node_id"]: node for node in run["node_runs"]}
                    assert nodes["sales"]["row_count"] == rows
                    spans.append(at(run["finished_at"]) - at(run["started_at"]))
                    busy.append(sum(node["duration_ms"] for node in nodes.values()) / 1000)
                    for node_id, values in per_node.items():
                        values.append(nodes[node_id]["duration_ms"] / 1000)
                span = statistics.median(spans)
                results[str(rows)] = {
                    "rows": rows,
                    "parquet_mb": round(path.stat().st_size / 1e6, 1),
                    "floor_s": round(floor, 4),
                    "floor_written_s": round(floor_written, 4),
                    "run_span_s": round(span, 3),
                    "nodes_busy_s": round(statistics.median(busy), 3),
                    "node_s": {name: round(statistics.median(v), 3) for name, v in per_node.items()},
                    "rows_per_s": round(rows / span),
                    "floor_rows_per_s": round(rows / floor),
                    "ratio_to_floor": round(span / floor, 1),
                    "nodes_ratio_to_floor": round(statistics.median(busy) / floor, 1),
                }
    finally:
        stack.stop()
    summary: dict = {"runs": runs, "sizes": results}
    if len(sizes) >= 2:
        small, large = results[str(min(sizes))], results[str(max(sizes))]
        extra = (large["rows"] - small["rows"]) / 1e6
        summary["per_million_more_rows"] = {
            "run_s": round((large["run_span_s"] - small["run_span_s"]) / extra, 3),
            "nodes_s": round((large["nodes_busy_s"] - small["nodes_busy_s"]) / extra, 3),
            "floor_s": round((large["floor_s"] - small["floor_s"]) / extra, 4),
        }
        marginal = summary["per_million_more_rows"]
        marginal["run_ratio_to_floor"] = round(marginal["run_s"] / marginal["floor_s"], 1)
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="1000000,4000000", help="comma-separated source sizes")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    sizes = sorted({int(size) for size in args.rows.split(",") if size.strip()})
    result = measure(sizes, args.runs)
    print("| rows | run span s | nodes busy s | source / transform / target s | rows/s | floor s | x floor |")
    print("|---|---|---|---|---|---|---|")
    for row in result["sizes"].values():
        nodes = row["node_s"]
        print(
            f"| {row['rows']:,} | {row['run_span_s']} | {row['nodes_busy_s']} | "
            f"{nodes['sales']} / {nodes['summary']} / {nodes['out']} | {row['rows_per_s']:,} | "
            f"{row['floor_s']} | {row['ratio_to_floor']} |"
        )
    if "per_million_more_rows" in result:
        print(f"\nper million more rows: {result['per_million_more_rows']}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
