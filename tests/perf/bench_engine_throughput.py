"""Engine throughput (issue 6): a 1,000,000-row Parquet source -> SQL transform (a filter and a group
by) -> dataset target through execute_node on moto S3, one node per call as the state machine runs
them, against the floor: the same SQL in one DuckDB process on the same local file. The same chain
on a local folder standing in for S3 separates the engine's own cost from moto's transfers. Also
the peak memory (ru_maxrss) of the process running the nodes on moto.

    .venv/bin/python -m tests.perf.bench_engine_throughput [--rows N] [--repeat K]

Self-contained (only the offline environment of tests/perf/common.py): prints a markdown table and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import tempfile
import time
from pathlib import Path

from tests.perf.common import offline_aws_environment

offline_aws_environment()

import duckdb  # noqa: E402

BUCKET = "sluice-perf-data"
LANDING = "sluice-perf-landing"
SQL = (
    "SELECT region, count(*) AS orders, sum(amount) AS revenue, avg(amount) AS average "
    "FROM {table} WHERE status = 'paid' AND amount > 10 GROUP BY region ORDER BY region"
)


def make_parquet(path: Path, rows: int) -> None:
    duckdb.sql(
        f"""
        COPY (
            SELECT i AS id,
                   'region-' || (i % 20) AS region,
                   ['paid', 'open', 'void'][1 + (i % 3)] AS status,
                   round((i * 7919 % 100000) / 100.0, 2) AS amount,
                   TIMESTAMP '2024-01-01' + to_seconds(i) AS sold_at
            FROM range({rows}) t(i)
        ) TO '{path}' (FORMAT parquet)
        """
    )


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def floor_seconds(path: Path, repeat: int) -> tuple[float, float]:
    """(the query alone, the query writing its result as Parquet), medians, in a fresh DuckDB."""
    connection = duckdb.connect()
    query = SQL.format(table=f"read_parquet('{path}')")
    connection.execute(query).fetchall()  # warm: the file in the page cache, as it is for the engine
    alone, written = [], []
    for _ in range(repeat):
        started = time.perf_counter()
        connection.execute(query).fetchall()
        alone.append(time.perf_counter() - started)
        started = time.perf_counter()
        connection.execute(
            f"COPY ({query}) TO '{path.parent / 'floor-out.parquet'}' (FORMAT parquet)"
        ).fetchall()
        written.append(time.perf_counter() - started)
    connection.close()
    return statistics.median(alone), statistics.median(written)


def engine_seconds(path: Path, repeat: int, store: str) -> dict[str, float]:
    """Medians per node kind and in total; `store` is "moto" (S3 in-process) or "local" (a folder
    standing in for S3, which separates the engine's own cost from moto's transfer speed)."""
    import boto3
    from moto import mock_aws

    from sluice import aws
    from sluice.engine import Node, NodeRun, RunOptions, Storage, execute_node

    aws.reset_clients()
    timings: dict[str, list[float]] = {"source": [], "transform": [], "target": [], "total": []}
    with mock_aws(), tempfile.TemporaryDirectory(prefix="sluice-bench-store-") as folder:
        if store == "moto":
            s3 = boto3.client("s3")
            s3.create_bucket(Bucket=BUCKET)
            s3.create_bucket(Bucket=LANDING)
            s3.upload_file(str(path), LANDING, "sales/sales.parquet")
            storage = Storage.s3(BUCKET)
        else:
            storage = Storage.local(folder, BUCKET)
            with path.open("rb") as handle:
                storage.objects.write(LANDING, "sales/sales.parquet", handle.read())

        def run(run_id, node_id, node_type, config, inputs=None):
            node = Node.from_dict({"id": node_id, "nodeType": node_type, "config": config})
            started = time.perf_counter()
            result = execute_node(NodeRun("perf", run_id, node, inputs or {}, RunOptions()), storage)
            timings[node_type].append(time.perf_counter() - started)
            return result

        for attempt in range(repeat):
            run_id = f"run-{attempt}"
            started = time.perf_counter()
            source = run(
                run_id,
                "sales",
                "source",
                {"kind": "s3", "uri": f"s3://{LANDING}/sales/sales.parquet", "format": "parquet"},
            )
            summary = run(
                run_id, "summary", "transform", {"sql": SQL.format(table="sales")}, {"sales": source.output}
            )
            target = run(
                run_id,
                "out",
                "target",
                {"kind": "dataset", "name": "region_revenue"},
                {"summary": summary.output},
            )
            timings["total"].append(time.perf_counter() - started)
            assert source.row_count > 0 and target.written.rows_written == summary.row_count
    aws.reset_clients()
    return {name: statistics.median(values) for name, values in timings.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sluice-bench-") as folder:
        path = Path(folder) / "sales.parquet"
        make_parquet(path, args.rows)
        size_mb = path.stat().st_size / 1e6
        floor, floor_written = floor_seconds(path, args.repeat)
        rss_before = peak_rss_mb()
        engine = engine_seconds(path, args.repeat, "moto")
        rss_after = peak_rss_mb()
        local = engine_seconds(path, args.repeat, "local")
    result = {
        "rows": args.rows,
        "parquet_mb": round(size_mb, 1),
        "floor_s": round(floor, 4),
        "floor_written_s": round(floor_written, 4),
        "moto_source_s": round(engine["source"], 3),
        "moto_transform_s": round(engine["transform"], 3),
        "moto_target_s": round(engine["target"], 3),
        "moto_total_s": round(engine["total"], 3),
        "moto_rows_per_s": round(args.rows / engine["total"]),
        "moto_ratio_to_floor": round(engine["total"] / floor, 1),
        "local_source_s": round(local["source"], 3),
        "local_transform_s": round(local["transform"], 3),
        "local_target_s": round(local["target"], 3),
        "local_total_s": round(local["total"], 3),
        "local_rows_per_s": round(args.rows / local["total"]),
        "local_ratio_to_floor": round(local["total"] / floor, 1),
        "floor_rows_per_s": round(args.rows / floor),
        "peak_rss_mb_before_engine": round(rss_before),
        "peak_rss_mb_after_moto_runs": round(rss_after),
        "duckdb_memory_limit": os.environ.get("SLUICE_ENGINE_MEMORY_LIMIT", "1GB (default)"),
    }
    print("| figure | value |\n|---|---|")
    for name, value in result.items():
        print(f"| {name} | {value} |")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
