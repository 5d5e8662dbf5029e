"""DynamoDB calls and items read by anomaly detection for one end, with 1,000 and with 100,000
executions of history in the pipeline (issue 4, figure 5).

The AnomalyDetectionFunction handler (`jobs.on_execution_ended`) runs in-process on moto
(mock_aws, table from template.yaml) for one successful execution of a pipeline with two rules
(total_rows and duration_seconds, 30 days of lookback). History is written directly with
Table.batch_write in the runs repository's own item layout (`sluice.store.executions.run_item`)
and is shaped as real history is: the same 28 runs in the detected hour bucket inside the lookback
(one a day), one run in every other hour of those days, and the rest older than the lookback in
every hour. Only the window should be read, so both sizes should cost the same.

    .venv/bin/python -m tests.perf.bench_anomaly_calls [--quick]
"""

from __future__ import annotations

import os
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

WINDOW_DAYS = 28  # runs in the detected hour bucket inside the 30-day lookback
RULES = (("total_rows", 30), ("duration_seconds", 30))
DETECTED = {"normal end": (1, 1003), "anomalous end": (2, 5000)}  # run id, total_rows


def history_runs(size: int, detected_start: Any) -> list[Any]:
    """`size` successful runs of pipeline 1 (ids from 2), newest first; WINDOW_DAYS of them in the
    detected hour bucket inside the lookback, the others in other hours or older than it."""
    from sluice.domain.executions import Run

    def run(run_id: int, start: Any, total_rows: int) -> Run:
        end = start.add(minutes=5)
        return Run(
            id=run_id,
            pipeline_id=1,
            status="success",
            start_date=start,
            end_date=end,
            completed_successfully=True,
            duration_seconds=300 + run_id % 5,
            total_rows=total_rows,
            inserts=total_rows,
            updates=0,
            soft_deletes=0,
            throughput=round(total_rows / 300, 4),
            end_count=1,
            created_at=start,
            updated_at=end,
        )

    runs = []
    next_id = max(run_id for run_id, _ in DETECTED.values()) + 1
    for day in range(1, WINDOW_DAYS + 1):  # the window: one a day in the bucket, one in each other hour
        for hour_offset in range(24):
            if len(runs) == size:
                return runs
            runs.append(run(next_id, detected_start.subtract(days=day, hours=hour_offset), 1000 + day % 7))
            next_id += 1
    older = detected_start.subtract(days=31)
    while len(runs) < size:  # older than the lookback: hourly, every hour of the day
        runs.append(run(next_id, older, 900 + next_id % 200))
        older = older.subtract(hours=1)
        next_id += 1
    return runs


def seed(table: Any, size: int) -> dict[str, Any]:
    """Given a pipeline with two rules, `size` runs of history and two just-ended runs (DETECTED)."""
    import boto3

    from sluice import timeutil
    from sluice.domain.executions import Run
    from sluice.store.executions import run_item

    admin = principal("admin")
    status, _ = call(
        load_function("PipelinesFunction"),
        api_event("POST", "/pipeline", {"name": "watched", "pipeline_type_name": "extraction"}, admin),
    )
    assert status == 201, status
    monitor = load_function("MonitorFunction")
    for metric, lookback in RULES:
        rule = {"pipeline_id": 1, "metric_field": metric, "z_threshold": 3.0, "lookback_days": lookback,
                "minimum_executions": 5}  # fmt: skip
        status, body = call(monitor, api_event("POST", "/anomaly_detection_rule", rule, admin))
        assert status == 201, body
    os.environ["EVENT_BUS_NAME"] = "sluice-perf"
    boto3.client("events").create_event_bus(Name="sluice-perf")

    now = timeutil.now()
    detected_start = now.subtract(minutes=10)
    started = time.perf_counter()
    history = history_runs(size, detected_start)
    items = [run_item(PROJECT, r) for r in history]
    for run_id, rows in DETECTED.values():
        detected = Run(
            id=run_id,
            pipeline_id=1,
            status="success",
            start_date=detected_start,
            end_date=now.subtract(minutes=5),
            completed_successfully=True,
            duration_seconds=302,
            total_rows=rows,
            inserts=rows,
            updates=0,
            soft_deletes=0,
            throughput=round(rows / 300, 4),
            end_count=1,
            created_at=detected_start,
            updated_at=now,
        )
        items.append(run_item(PROJECT, detected))
    table.batch_write(puts=items)
    in_bucket = sum(1 for r in history if r.hour_recorded == detected.hour_recorded)
    in_window = sum(
        1
        for r in history
        if r.hour_recorded == detected.hour_recorded
        and r.end_date >= now.subtract(days=max(d for _, d in RULES))
    )
    return {"seed_seconds": time.perf_counter() - started, "history": size, "in_bucket": in_bucket,
            "in_bucket_and_window": in_window}  # fmt: skip


def measure(size: int) -> dict[str, Any]:
    """Detection of a normal end, then of an anomalous one, with `size` runs of history."""
    from tests.apigw import LambdaContext

    results: dict[str, Any] = {}
    with moto_table() as table:
        shape = seed(table, size)
        detect = load_function("AnomalyDetectionFunction")
        with DynamoDBCalls() as calls:
            for case, (run_id, _rows) in DETECTED.items():
                event = {
                    "version": "0",
                    "source": "sluice",
                    "detail-type": "execution.ended",
                    "detail": {"project": PROJECT, "pipeline_id": 1, "execution_id": run_id},
                }
                with calls.counting():
                    started = time.perf_counter()
                    outcome = detect(event, LambdaContext(function_name="AnomalyDetectionFunction"))
                    seconds = time.perf_counter() - started
                results[case] = {
                    **shape,
                    "anomalies": [a["metric_field"] for a in outcome["anomalies"]],
                    "handler_seconds_on_moto": seconds,
                    **calls.as_json(),
                    "described": calls.describe(),
                }
    os.environ.pop("EVENT_BUS_NAME", None)
    return results


def run(quick: bool) -> Report:
    sizes = (1_000, 10_000) if quick else (1_000, 100_000)
    report = Report("anomaly_calls", "DynamoDB calls of anomaly detection for one end")
    by_size = {size: measure(size) for size in sizes}
    report.data["sizes"] = list(sizes)
    report.data["results"] = {str(size): result for size, result in by_size.items()}
    small, large = sizes
    rows = []
    for case in ("normal end", "anomalous end"):
        a, b = by_size[small][case], by_size[large][case]
        same = all(a["total"][k] == b["total"][k] for k in ("calls", "items_read"))
        rows.append(
            [
                case,
                ", ".join(b["anomalies"]) or "none",
                fmt(a["total"]["calls"]),
                fmt(a["total"]["items_read"]),
                fmt(b["total"]["calls"]),
                fmt(b["total"]["items_read"]),
                b["described"],
                "yes" if same else "**no**",
            ]
        )
    shape = by_size[large]["normal end"]
    report.add(
        f"One end judged by two rules (lookback 30 days) with {small:,} and with {large:,} executions of "
        f"history; {shape['in_bucket_and_window']} of them are in the detected hour bucket inside the "
        f"lookback ({shape['in_bucket']:,} in that bucket at all). In-process handler on moto; items read = "
        "GetItem's item, Query's ScannedCount.\n\n"
        + markdown_table(
            [
                "case",
                "flagged",
                f"calls @{small:,}",
                f"items read @{small:,}",
                f"calls @{large:,}",
                f"items read @{large:,}",
                f"operations @{large:,}",
                "the same?",
            ],
            rows,
        )
        + "\n\nOn moto the same handler took "
        + " and ".join(
            f"{by_size[size]['normal end']['handler_seconds_on_moto'] * 1000:,.0f} ms with {size:,}"
            for size in sizes
        )
        + " executions: moto walks the whole table for every Query, DynamoDB reads only the key range."
    )
    return report


if __name__ == "__main__":
    bench_main(__doc__.splitlines()[0], run)
