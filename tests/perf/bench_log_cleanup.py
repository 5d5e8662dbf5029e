"""Time of `POST /log_cleanup` per 10,000 deleted executions (issue 4, figure 6).

The MonitorFunction handler runs in-process on moto (mock_aws, table from template.yaml). moto
answers every Query by walking the whole table, and the cleanup makes one Query per execution, so
on moto the cleanup is quadratic: 10,000 executions would take a quarter of an hour, of which
almost all is moto. So 500 and then 1,500 are deleted (250 and 500 with --quick), which shows the
calls growing linearly and moto's time faster; the time is reported as measured and per 10,000,
and the DynamoDB calls give an estimate for DynamoDB.

History is written with Table.batch_write in the runs repository's item layout: executions older
than the 90-day retention spread over nine months, a fifth of them children of others (closure
rows), some with anomaly results and timeliness records, and younger executions that must survive.

    .venv/bin/python -m tests.perf.bench_log_cleanup [--quick]
"""

from __future__ import annotations

import time
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

YOUNGER = 200
CHILD_SHARE = 5  # every 5th expired execution is the child of the one before it
RESULT_SHARE = 20  # every 20th has an anomaly result, every 20th (others) a timeliness record
DYNAMODB_MS_PER_CALL = 6.0  # a single-item call from Lambda in the same region, roughly
PURGE_WORKERS = 16  # sluice.store.executions.PURGE_WORKERS: deletes run this many at a time


def seed(table: Any, expired: int) -> dict[str, int]:
    """Given `expired` executions older than 90 days (with what is kept about them) and YOUNGER newer."""
    from sluice import timeutil
    from sluice.domain.executions import Run
    from sluice.store import keys
    from sluice.store.executions import run_item

    status, _ = call(
        load_function("PipelinesFunction"),
        api_event("POST", "/pipeline", {"name": "cleaned", "pipeline_type_name": "extraction"}, principal()),
    )
    assert status == 201, status
    now = timeutil.now()
    items: list[dict[str, Any]] = []
    months: set[str] = set()
    kept = {"closure": 0, "results": 0, "records": 0}
    span_minutes = 275 * 24 * 60  # expired runs start between 91 and 366 days ago

    def add_run(run_id: int, start: Any, parent: int | None) -> None:
        end = start.add(minutes=5)
        run = Run(
            id=run_id,
            pipeline_id=1,
            status="success",
            start_date=start,
            parent_id=parent,
            ancestors=(parent,) if parent else (),
            end_date=end,
            completed_successfully=True,
            duration_seconds=300,
            total_rows=1000,
            inserts=1000,
            updates=0,
            soft_deletes=0,
            throughput=3.3333,
            end_count=1,
            created_at=start,
            updated_at=end,
        )
        items.append(run_item(PROJECT, run))
        months.add(start.format("YYYY-MM"))

    for n in range(expired):
        run_id = n + 1
        start = now.subtract(days=91, minutes=(n * span_minutes) // max(expired, 1))
        parent = run_id - 1 if run_id % CHILD_SHARE == 0 else None
        add_run(run_id, start, parent)
        if parent:
            pk, sk = keys.run_descendant(PROJECT, parent, 1, run_id)
            items.append({"PK": pk, "SK": sk, "kind": "run_descendant", "ancestor_id": parent,
                          "descendant_id": run_id, "depth": 1})  # fmt: skip
            kept["closure"] += 1
        if run_id % RESULT_SHARE == 1:
            pk, sk = keys.anomaly_result(PROJECT, run_id, "total_rows")
            items.append({"PK": pk, "SK": sk, "kind": "anomaly_result", "pipeline_execution_id": run_id,
                          "pipeline_id": 1, "metric_field": "total_rows", "result": "{}"})  # fmt: skip
            kept["results"] += 1
        elif run_id % RESULT_SHARE == 2:
            pk, sk = keys.timeliness_record(PROJECT, run_id)
            items.append({"PK": pk, "SK": sk, "kind": "timeliness_record", "pipeline_execution_id": run_id,
                          "pipeline_id": 1, "record": "{}"})  # fmt: skip
            kept["records"] += 1
    for n in range(YOUNGER):
        add_run(expired + n + 1, now.subtract(days=1, minutes=n * 60), None)
    for month in months:
        items.append({"PK": keys.run_months(PROJECT), "SK": month, "kind": "run_month", "month": month})
    table.batch_write(puts=items)
    counter_pk, counter_sk = keys.counter(PROJECT, "run")
    table.put({"PK": counter_pk, "SK": counter_sk, "value": expired + YOUNGER})
    return {"expired": expired, "younger": YOUNGER, "items": len(items), "months": len(months), **kept}


def remaining_runs(table: Any) -> int:
    from sluice import aws

    scan = aws.client("dynamodb").get_paginator("scan")
    return sum(
        page["Count"]
        for page in scan.paginate(
            TableName=table.name,
            Select="COUNT",
            FilterExpression="#k = :run",
            ExpressionAttributeNames={"#k": "kind"},
            ExpressionAttributeValues={":run": {"S": "run"}},
        )
    )


def measure(expired: int) -> dict[str, Any]:
    with moto_table() as table:
        shape = seed(table, expired)
        monitor = load_function("MonitorFunction")
        event = api_event("POST", "/log_cleanup", {"retention_days": 90, "batch_size": 10_000}, principal())
        with DynamoDBCalls() as calls:
            started = time.perf_counter()
            status, counts = call(monitor, event)
            seconds = time.perf_counter() - started
            dynamodb = calls.as_json()
            described = calls.describe()
        assert status == 200, counts
        return {
            **shape,
            "seconds": seconds,
            "counts": counts,
            "remaining_runs": remaining_runs(table),
            **dynamodb,
            "described": described,
        }


def run(quick: bool) -> Report:
    sizes = (250, 500) if quick else (500, 1_500)
    report = Report("log_cleanup", "POST /log_cleanup per 10,000 deleted executions")
    results = {size: measure(size) for size in sizes}
    report.data["sizes"] = list(sizes)
    report.data["results"] = {str(size): result for size, result in results.items()}
    rows = []
    for result in results.values():
        deleted = result["counts"]["total_pipeline_executions_deleted"]
        calls = result["total"]["calls"]
        per_10k = result["seconds"] * 10_000 / max(deleted, 1)
        estimate = calls * DYNAMODB_MS_PER_CALL / 1000 / PURGE_WORKERS * 10_000 / max(deleted, 1)
        result["seconds_per_10k_on_moto"] = per_10k
        result["estimated_seconds_per_10k_on_dynamodb"] = estimate
        rows.append(
            [
                fmt(deleted),
                f"{fmt(result['seconds'])} s",
                f"{fmt(per_10k)} s",
                f"{calls:,}: {result['described']}",
                fmt(calls / max(deleted, 1), 2),
                f"~{fmt(estimate)} s",
                f"{result['remaining_runs']:,} of {result['younger']:,}",
            ]
        )
    small, large = (results[size] for size in sizes)
    time_growth = large["seconds"] / small["seconds"]
    calls_growth = large["total"]["calls"] / small["total"]["calls"]
    report.data["time_growth"] = time_growth
    report.data["calls_growth"] = calls_growth
    report.add(
        "Executions older than the 90-day retention (a fifth of them children, one in 20 with an anomaly "
        f"result, one in 20 with a timeliness record, over {large['months']} months) and "
        f"{large['younger']:,} younger ones; `POST /log_cleanup` "
        '`{"retention_days": 90, "batch_size": 10000}` by the in-process MonitorFunction handler on moto. '
        f"The estimate for DynamoDB assumes {DYNAMODB_MS_PER_CALL:.0f} ms a call and the repository's "
        f"{PURGE_WORKERS} calls at a time.\n\n"
        + markdown_table(
            [
                "deleted executions",
                "time on moto",
                "per 10,000 on moto (linear)",
                "DynamoDB calls",
                "calls per execution",
                "estimate per 10,000 on DynamoDB",
                "younger executions left",
            ],
            rows,
        )
        + f"\n\nFrom {sizes[0]:,} to {sizes[1]:,} executions the calls grew {calls_growth:.1f}x and moto's "
        f"time {time_growth:.1f}x: the per-10,000 time on moto is a floor for moto and no guide to DynamoDB. "
        "Counts returned at the larger size: "
        + ", ".join(f"`{name}` {value:,}" for name, value in large["counts"].items())
    )
    return report


if __name__ == "__main__":
    bench_main(__doc__.splitlines()[0], run)
