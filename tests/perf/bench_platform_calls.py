"""DynamoDB calls of the run calendar (365 days) and the dashboard with 1,000 and with 100,000 runs
of history, and of a search with 100 and 10,000 pipelines (issue 12).

The PlatformFunction handler runs in-process on moto (mock_aws, table from template.yaml). History
is written directly in the run writers' own layouts: run items (`sluice.store.executions.run_item`,
with their start-month index) spread over the last year, the per-day counter items those runs
would have left (`store/run_calendar.py`), each pipeline's last-run item and the months with runs.
The calendar and the dashboard should cost the same at both sizes; search reads every pipeline's
name and description, so its cost grows with the pipelines (and with them only).

    .venv/bin/python -m tests.perf.bench_platform_calls [--quick]
"""

from __future__ import annotations

import time
from typing import Any

from tests.perf.common import (
    PROJECT,
    Report,
    bench_main,
    call,
    fmt,
    load_function,
    markdown_table,
    moto_table,
    principal,
)
from tests.perf.dynamodb_calls import DynamoDBCalls

PIPELINES = 20  # pipelines the history's runs belong to


def seed_history(table: Any, runs: int) -> float:
    """`runs` finished runs over the last 365 days, with the counters they would have moved."""
    from sluice import timeutil
    from sluice.domain.executions import Run
    from sluice.store import keys
    from sluice.store.executions import run_item

    started = time.perf_counter()
    now = timeutil.now()
    items: list[dict[str, Any]] = []
    days: dict[str, dict[str, int]] = {}
    months: set[str] = set()
    last: dict[int, dict[str, Any]] = {}
    for p in range(1, PIPELINES + 1):
        pk, sk = keys.pipeline(PROJECT, p)
        items.append(
            {"PK": pk, "SK": sk, "kind": "pipeline", "id": p, "name": f"pipeline {p}", "status": "active"}
        )
    for n in range(1, runs + 1):
        start = now.subtract(seconds=int(n * 365 * 86400 / runs))
        pipeline_id = n % PIPELINES + 1
        failed = n % 7 == 0
        run = Run(
            id=n,
            pipeline_id=pipeline_id,
            status="failed" if failed else "success",
            start_date=start,
            end_date=start.add(minutes=2),
            completed_successfully=not failed,
            end_count=1,
            created_at=start,
            updated_at=start.add(minutes=2),
        )
        item = run_item(PROJECT, run)
        item["origin"] = "sluice"
        items.append(item)
        day = start.date().isoformat()
        counts = days.setdefault(day, {"total": 0, "success": 0, "failed": 0})
        counts["total"] += 1
        counts["failed" if failed else "success"] += 1
        if failed:
            counts[f"failed#{pipeline_id}"] = counts.get(f"failed#{pipeline_id}", 0) + 1
        months.add(start.format("YYYY-MM"))
        last.setdefault(pipeline_id, {"run_id": n, "status": run.status, "start_date": timeutil.iso(start)})
    for day, counts in days.items():
        pk, sk = keys.run_day(PROJECT, day)
        items.append({"PK": pk, "SK": sk, "kind": "run_day", "day": day, **counts})
    for month in months:
        items.append({"PK": keys.run_months(PROJECT), "SK": month, "kind": "run_month", "month": month})
    for pipeline_id, found in last.items():
        pk, sk = keys.last_run(PROJECT, pipeline_id)
        items.append({"PK": pk, "SK": sk, "kind": "last_run", "pipeline_id": pipeline_id, **found})
    table.batch_write(puts=items)
    return time.perf_counter() - started


def seed_pipelines(table: Any, count: int) -> None:
    """`count` pipelines with names and descriptions (and a graph blob, as real ones carry)."""
    from sluice.store import keys

    items = []
    for p in range(1, count + 1):
        pk, sk = keys.pipeline(PROJECT, p)
        items.append(
            {
                "PK": pk,
                "SK": sk,
                "kind": "pipeline",
                "id": p,
                "name": f"{'users' if p % 10 == 0 else 'orders'}-{p}",
                "description": f"loads table {p} of the warehouse",
                "graph": b"x" * 800,  # a compressed graph of a small pipeline, never read by search
            }
        )
    table.batch_write(puts=items)


def counted(calls: DynamoDBCalls, handler: Any, event: dict[str, Any]) -> dict[str, Any]:
    with calls.counting():
        started = time.perf_counter()
        status, body = call(handler, event)
        seconds = time.perf_counter() - started
    assert status == 200, body
    return {
        **calls.as_json(),
        "described": calls.describe(),
        "seconds_on_moto": seconds,
        "answer_size": len(body),
    }


def http_event(*args: Any, **kwargs: Any) -> dict[str, Any]:
    from tests.apigw import http_event as event

    return event(*args, **kwargs)


def measure_history(runs: int) -> dict[str, Any]:
    with moto_table() as table:
        seeded = seed_history(table, runs)
        handler = load_function("PlatformFunction")
        viewer = principal("viewer")
        with DynamoDBCalls() as calls:
            calendar = counted(
                calls,
                handler,
                http_event("GET", "/api/runs/calendar", principal=viewer, query={"days": "365"}),
            )
            dashboard = counted(calls, handler, http_event("GET", "/api/dashboard", principal=viewer))
    return {"seed_seconds": seeded, "calendar_365": calendar, "dashboard": dashboard}


def measure_search(pipelines: int) -> dict[str, Any]:
    with moto_table() as table:
        seed_pipelines(table, pipelines)
        handler = load_function("PlatformFunction")
        with DynamoDBCalls() as calls:
            return counted(
                calls,
                handler,
                http_event("GET", "/api/search", principal=principal("viewer"), query={"q": "USERS"}),
            )


def run(quick: bool) -> Report:
    sizes = (1_000, 10_000) if quick else (1_000, 100_000)
    pipeline_sizes = (100, 1_000) if quick else (100, 10_000)
    report = Report("platform_calls", "DynamoDB calls of the calendar, the dashboard and search")
    history = {size: measure_history(size) for size in sizes}
    search = {size: measure_search(size) for size in pipeline_sizes}
    report.data["history"] = {str(k): v for k, v in history.items()}
    report.data["search"] = {str(k): v for k, v in search.items()}
    small, large = sizes
    rows = []
    for name, label in (
        ("calendar_365", "GET /api/runs/calendar?days=365"),
        ("dashboard", "GET /api/dashboard"),
    ):
        a, b = history[small][name], history[large][name]
        same = a["total"]["calls"] == b["total"]["calls"]
        rows.append(
            [
                label,
                fmt(a["total"]["calls"]),
                fmt(a["total"]["items_read"]),
                fmt(b["total"]["calls"]),
                fmt(b["total"]["items_read"]),
                b["described"],
                "yes" if same else "**no**",
            ]
        )
    report.add(
        f"With {small:,} and with {large:,} runs of history over 365 days ({PIPELINES} pipelines). "
        "In-process handler on moto; items read = GetItem's item, Query's ScannedCount.\n\n"
        + markdown_table(
            [
                "request",
                f"calls @{small:,}",
                f"items read @{small:,}",
                f"calls @{large:,}",
                f"items read @{large:,}",
                f"operations @{large:,}",
                "the same calls?",
            ],
            rows,
        )
    )
    search_rows = [
        [
            f"{size:,} pipelines",
            fmt(result["total"]["calls"]),
            fmt(result["total"]["items_read"]),
            result["described"],
        ]
        for size, result in search.items()
    ]
    report.add(
        "GET /api/search?q=USERS: three Queries (pipelines, connectors, variables) with a projection of"
        " names and descriptions; each 1 MB page of pipelines is one more call.\n\n"
        + markdown_table(["project", "calls", "items read", "operations"], search_rows)
    )
    return report


if __name__ == "__main__":
    bench_main(__doc__.splitlines()[0], run)
