"""Data quality and the alerts inbox (issue 13), two figures:

1. What checking 10 rules costs at the end of a run that wrote 1,000,000 rows: `DataQuality.
   after_write` with the real DuckDB measurer over the run's output Parquet (a local folder
   standing in for S3, so the download is a file copy) and the real repositories on moto; the
   time is split into the measuring query and the bookkeeping (rules read, checks and alerts
   written).
2. DynamoDB calls of `GET /api/pipeline/anomalies` and `/types` (MonitorFunction in-process on
   moto, table from template.yaml) with 20 active alerts and 100 or 100,000 resolved ones.

    .venv/bin/python -m tests.perf.bench_alerts [--quick]   # quick: 100,000 rows, 10,000 alerts
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from tests.perf.common import (
    PROJECT,
    Report,
    api_event,
    bench_main,
    call,
    fmt,
    load_function,
    markdown_table,
    moto_table,
    principal,
)
from tests.perf.dynamodb_calls import DynamoDBCalls

ACTIVE = 20
RULES = [
    {"assertion_type": "not_null", "column": "id"},
    {"assertion_type": "not_null", "column": "customer"},
    {"assertion_type": "unique", "column": "id"},
    {"assertion_type": "unique", "column": "order_ref"},
    {"assertion_type": "accepted_values", "column": "status", "values": ["new", "paid", "shipped"]},
    {"assertion_type": "range", "column": "amount", "min": 0, "max": 1000},
    {"assertion_type": "range", "column": "quantity", "min": 1},
    {"assertion_type": "row_count_min", "min": 1000},
    {"assertion_type": "not_null", "column": "status", "threshold": 0.01},
    {"assertion_type": "freshness_hours", "hours": 24},
]


def write_parquet(root: Path, key: str, rows: int) -> float:
    import duckdb

    path = root / "sluice-data" / key
    path.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    duckdb.sql(
        f"""COPY (SELECT i AS id, CASE WHEN i % 997 = 0 THEN NULL ELSE 'c' || (i % 5000) END AS customer,
                   'ref-' || i AS order_ref, ['new', 'paid', 'shipped', 'lost'][1 + (i % 4)] AS status,
                   (i % 1200)::DOUBLE AS amount, (i % 7) AS quantity, now() AS at
            FROM range({rows}) t(i)) TO '{path}' (FORMAT parquet)"""
    )
    return time.perf_counter() - started


def quality_cost(rows: int) -> dict[str, Any]:
    from sluice import timeutil
    from sluice.adapters.quality import DuckDbMeasurer
    from sluice.domain.alerts import Alerting
    from sluice.domain.events import RecordingPublisher
    from sluice.domain.quality import DataQuality, QualityRuleRequest, create_rule
    from sluice.engine import Storage
    from sluice.store.alerts import AlertRepository
    from sluice.store.quality import DatasetStateRepository, QualityRuleRepository

    with tempfile.TemporaryDirectory() as folder, moto_table() as table:
        key = "projects/perf/runs/run-1/nodes/out/output.parquet"
        write_seconds = write_parquet(Path(folder), key, rows)
        rules = QualityRuleRepository(table)
        for body in RULES:
            create_rule(PROJECT, QualityRuleRequest(dataset_name="orders", **body), rules, timeutil.now())
        alerts = AlertRepository(table)

        class TimedMeasurer(DuckDbMeasurer):
            seconds = 0.0

            def measure(self, project: str, output_key: str, sql: str) -> dict[str, Any]:
                started = time.perf_counter()
                try:
                    return super().measure(project, output_key, sql)
                finally:
                    TimedMeasurer.seconds += time.perf_counter() - started

        measurer = TimedMeasurer(Storage.local(folder))
        service = DataQuality(
            rules, alerts, Alerting(alerts, RecordingPublisher()), measurer, DatasetStateRepository(table)
        )
        columns = ["id", "customer", "order_ref", "status", "amount", "quantity", "at"]
        runs = []
        for run_id in (1, 2):  # the first raises the alerts, the second refreshes them
            TimedMeasurer.seconds = 0.0
            with DynamoDBCalls() as calls:
                started = time.perf_counter()
                outcomes = service.after_write(PROJECT, run_id, 1, "orders", key, columns, rows)
                total = time.perf_counter() - started
            runs.append(
                {
                    "run": run_id,
                    "seconds": total,
                    "measure_seconds": TimedMeasurer.seconds,
                    "violated": sum(1 for o in outcomes if o.status == "violated"),
                    "dynamodb_calls": calls.total().calls,
                }
            )
    return {"rows": rows, "parquet_write_seconds": write_seconds, "runs": runs}


def seed_alerts(table: Any, resolved: int) -> None:
    import pendulum

    from sluice.domain.alerts import Alert
    from sluice.store.alerts import alert_item

    start = pendulum.now("UTC").subtract(days=60)
    items = []
    for n in range(1, resolved + ACTIVE + 1):
        status = "resolved" if n <= resolved else "active"
        alert = Alert(
            id=n,
            project=PROJECT,
            type="data_quality" if n % 2 else "anomaly",
            severity="warning",
            message=f"alert {n}",
            created_at=start.add(seconds=n),
            pipeline_id=1 + n % 3,
            status=status,
            details={"reason": f"alert {n}"},
            dataset_name=f"ds{n % 5}",
            rule_id=1 + n % 10,
            run_id=n,
        )
        items.append(alert_item(alert))
    table.batch_write(puts=items)


def inbox_calls(resolved: int) -> dict[str, Any]:
    monitor = load_function("MonitorFunction")
    viewer = principal("viewer")
    with moto_table() as table:
        started = time.perf_counter()
        seed_alerts(table, resolved)
        seed_seconds = time.perf_counter() - started
        results: dict[str, Any] = {"seed_seconds": seed_seconds}
        cases = {
            "GET /api/pipeline/anomalies": ("/api/pipeline/anomalies", None),
            "... ?type=anomaly&dataset_name=ds1": ("/api/pipeline/anomalies", {"type": "anomaly", "dataset_name": "ds1"}),
            "GET /api/pipeline/anomalies/types": ("/api/pipeline/anomalies/types", None),
        }  # fmt: skip
        for case, (path, query) in cases.items():
            event = api_event("GET", path, caller=viewer)
            if query:
                event["queryStringParameters"] = query
                event["rawQueryString"] = "&".join(f"{k}={v}" for k, v in query.items())
            call(monitor, event)  # warm
            with DynamoDBCalls() as calls:
                status, body = call(monitor, event)
            assert status == 200, body
            listed = body["data"] if isinstance(body, dict) else body
            results[case] = {
                "calls": calls.total().calls,
                "items_read": calls.total().items_read,
                "returned": len(listed),
            }
    return results


def run(quick: bool) -> Report:
    rows = 100_000 if quick else 1_000_000
    sizes = (100, 10_000) if quick else (100, 100_000)
    report = Report("alerts", "Data quality and the alerts inbox (issue 13)")
    cost = quality_cost(rows)
    report.data["quality"] = cost
    report.add(
        f"**10 rules on a {rows:,}-row output** (one DuckDB query for all of them; writing the "
        f"Parquet itself took {fmt(cost['parquet_write_seconds'], 2)} s):\n\n"
        + markdown_table(
            ["run", "added seconds", "of which the query", "violated rules", "DynamoDB calls"],
            [
                [
                    "first (alerts raised)" if r["run"] == 1 else "second (alerts refreshed)",
                    fmt(r["seconds"], 3),
                    fmt(r["measure_seconds"], 3),
                    r["violated"],
                    r["dynamodb_calls"],
                ]
                for r in cost["runs"]
            ],
        )
    )
    by_size = {size: inbox_calls(size) for size in sizes}
    report.data["inbox"] = {str(k): v for k, v in by_size.items()}
    small, large = sizes
    table_rows = []
    for case in [c for c in by_size[small] if c != "seed_seconds"]:
        a, b = by_size[small][case], by_size[large][case]
        table_rows.append(
            [case, a["calls"], a["items_read"], b["calls"], b["items_read"], a["returned"],
             "yes" if (a["calls"], a["items_read"]) == (b["calls"], b["items_read"]) else "**no**"]
        )  # fmt: skip
    report.add(
        f"**Inbox with {ACTIVE} active alerts and {small:,} or {large:,} resolved ones** (MonitorFunction "
        "in-process on moto; items read = Query's ScannedCount):\n\n"
        + markdown_table(
            [
                "request",
                f"calls ({small:,})",
                f"items read ({small:,})",
                f"calls ({large:,})",
                f"items read ({large:,})",
                "returned",
                "same",
            ],
            table_rows,
        )  # fmt: skip
    )
    return report


if __name__ == "__main__":
    bench_main(__doc__ or "", run)
