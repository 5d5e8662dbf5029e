"""Flows (issue 14): generate-sql and parse-to-visual latency through the local gateway (p50/p99),
preview-sql on inputs of growing size (it samples first, so its time should not follow the input),
and the local embed model's throughput (rows/s on 10,000 short texts, in-process node runs).

The local stack runs in this process (`LocalStack(port=0, ephemeral=True)`, gateway from a
thread); one httpx.Client with keep-alive and the admin key drives it. Datasets for the previews
are written by real pipeline runs (a SQL transform over DuckDB's range()).

    .venv/bin/python -m tests.perf.bench_flows [--quick]
"""

from __future__ import annotations

import statistics
import time
from typing import Any

from tests.perf.common import Report, bench_main, fmt, markdown_table, percentile
from tests.perf.local_stack import ADMIN_KEY, running_stack

CONFIGS = [
    {
        "recipe_type": "prepare",
        "inputs": ["orders"],
        "steps": [
            {"type": "filter", "condition": "amount > 100"},
            {"type": "derive", "column": "tax", "expression": "amount * 0.2"},
            {"type": "rename", "column": "status", "to": "state"},
            {"type": "select", "columns": ["id", "tax", "state"]},
        ],
    },
    {
        "recipe_type": "join",
        "inputs": ["orders", "customers"],
        "join_type": "left",
        "on": [{"left": "customer_id", "right": "id"}],
        "columns": [
            {"input": "orders", "column": "id", "alias": "order_id"},
            {"input": "customers", "column": "name"},
        ],
    },
    {
        "recipe_type": "group_by",
        "inputs": ["orders"],
        "keys": ["status"],
        "aggregations": [{"column": "amount", "function": "sum", "alias": "total"}],
    },
    {"recipe_type": "stack", "inputs": ["jan", "feb"], "mode": "union_all", "columns": ["id", "amount"]},
]


def timed(client: Any, path: str, bodies: list[Any], count: int) -> list[float]:
    samples = []
    for number in range(count):
        body = bodies[number % len(bodies)]
        started = time.perf_counter()
        answer = client.post(path, json=body)
        samples.append((time.perf_counter() - started) * 1000)
        assert answer.status_code == 200, answer.text
    return samples


def write_rows(client: Any, name: str, rows: int) -> None:
    created = client.post(
        "/api/v1/pipelines",
        json={
            "name": f"bench-{name}",
            "nodes": [
                {"id": "seed", "nodeType": "source", "config": {"kind": "inline", "rows": [{"x": 1}]}},
                {
                    "id": "gen",
                    "nodeType": "transform",
                    "config": {
                        "sql": f"SELECT range AS id, range % 7 AS customer_id, (range % 1000) * 1.5 AS amount, "
                        f"'s' || (range % 5) AS status FROM seed, range({rows})"
                    },
                },
                {
                    "id": "out",
                    "nodeType": "target",
                    "config": {"kind": "dataset", "name": name, "mode": "overwrite"},
                },
            ],
            "edges": [{"source": "seed", "target": "gen"}, {"source": "gen", "target": "out"}],
        },
    )
    assert created.status_code == 201, created.text
    run = client.post(f"/api/pipelines/{created.json()['data']['id']}/run", json={})
    assert run.status_code == 202, run.text
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        status = client.get(f"/api/runs/{run.json()['id']}").json()["status"]
        if status in ("success", "failed", "cancelled"):
            assert status == "success", client.get(f"/api/runs/{run.json()['id']}").text
            return
        time.sleep(0.5)
    raise AssertionError("the dataset run did not finish")


def embed_throughput(rows: int) -> tuple[float, float]:
    """(rows/s of a whole embed node run, rows/s of the model's embed call alone)."""
    import tempfile
    from pathlib import Path

    from sluice.engine import Storage
    from tests.engine_runs import NodeRunner

    with tempfile.TemporaryDirectory() as folder:
        runner = NodeRunner(Storage.local(Path(folder)))
        texts = [
            {"id": i, "text": f"order {i} shipped to customer {i % 97} in city {i % 13}"} for i in range(rows)
        ]
        source = runner.run("docs", "source", {"kind": "inline", "rows": texts})
        config = {"ai": {"recipe_type": "embed", "run_config": {"text_column": "text"}}}
        runner.run("warm", "transform", config, {"docs": source})  # model loaded once per process
        started = time.perf_counter()
        result = runner.run("emb", "transform", config, {"docs": source})
        elapsed = time.perf_counter() - started
        assert result.row_count == rows
    from sluice.engine.ai import LocalModels

    started = time.perf_counter()
    LocalModels().embed([t["text"] for t in texts], None)
    model_only = time.perf_counter() - started
    return rows / elapsed, rows / model_only


def run(quick: bool) -> Report:
    report = Report("flows", "13. Flows (issue 14)")
    count = 60 if quick else 300
    sizes = [10_000, 100_000] if quick else [10_000, 100_000, 1_000_000]
    with running_stack() as (_stack, base_url):
        import httpx

        with httpx.Client(
            base_url=base_url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=120
        ) as client:
            sqls = [client.post("/api/flow/generate-sql", json=c).json()["sql"] for c in CONFIGS]
            timed(client, "/api/flow/generate-sql", CONFIGS, 20)  # warm
            generate = timed(client, "/api/flow/generate-sql", CONFIGS, count)
            timed(client, "/api/flow/parse-to-visual", [{"sql": s} for s in sqls], 20)
            parse = timed(client, "/api/flow/parse-to-visual", [{"sql": s} for s in sqls], count)
            previews = []
            for size in sizes:
                name = f"orders_{size}"
                write_rows(client, name, size)
                config = {**CONFIGS[2], "inputs": [name]}
                timed(client, "/api/flow/preview-sql", [config], 2)
                samples = timed(client, "/api/flow/preview-sql", [config], 5 if quick else 10)
                previews.append((size, statistics.median(samples), max(samples)))
    rate, model_rate = embed_throughput(2_000 if quick else 10_000)
    report.data.update(
        {
            "requests": count,
            "generate_ms": {"p50": percentile(generate, 50), "p99": percentile(generate, 99)},
            "parse_ms": {"p50": percentile(parse, 50), "p99": percentile(parse, 99)},
            "preview_ms": {str(size): {"median": med, "max": top} for size, med, top in previews},
            "embed_rows_per_second": rate,
            "embed_model_rows_per_second": model_rate,
        }
    )
    report.add(
        markdown_table(
            ["route (through the gateway)", "requests", "p50 ms", "p99 ms"],
            [
                [
                    "POST /api/flow/generate-sql",
                    count,
                    fmt(percentile(generate, 50)),
                    fmt(percentile(generate, 99)),
                ],
                [
                    "POST /api/flow/parse-to-visual",
                    count,
                    fmt(percentile(parse, 50)),
                    fmt(percentile(parse, 99)),
                ],
            ],
        )
    )
    report.add(
        markdown_table(
            ["preview-sql (group_by) input rows", "median ms", "max ms"],
            [[f"{size:,}", fmt(med), fmt(top)] for size, med, top in previews],
        )
    )
    report.add(
        f"embed (local WordLlama): {rate:,.0f} rows/s for a whole node run (read, embed, write Parquet, "
        f"preview, profile), {model_rate:,.0f} rows/s for the model's embed call alone"
    )
    return report


if __name__ == "__main__":
    bench_main(__doc__.splitlines()[0], run)
