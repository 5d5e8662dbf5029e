"""What anomaly detection of one end costs as its baseline grows: 30, 300 and 3,000 successful runs
of the same hour of the day inside the 30-day lookback (a pipeline reporting once a day, ten times
an hour, a hundred times an hour), judged by one total_rows rule.

The detection runs in this process (`sluice.domain.anomalies.detect_anomalies` on the repositories
the AnomalyDetectionFunction composes) against a `sluice dev` stack's DynamoDB Local, where the
history is written directly in the runs repository's layout. Reported per detection: this process's
CPU, DynamoDB Local's CPU and the wall time (median of the repetitions). Run it on an older
checkout's source for a before/after on the same machine at the same time:

    .venv/bin/python -m tests.perf.bench_detection_baseline [--quick]
    git archive <commit> layers | tar -x -C /tmp/before
    PYTHONPATH=/tmp/before/layers/core/python:. .venv/bin/python -m tests.perf.bench_detection_baseline
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pendulum

from sluice import composition, timeutil
from sluice.domain.anomalies import detect_anomalies
from sluice.domain.executions import Run
from tests.perf.common import fmt, markdown_table
from tests.perf.stack_process import admin_client, cpu_seconds, dynamodb_table, launch, stats

PROJECT = "default"
SIZES = (30, 300, 3000)


def seed(client: Any, table: str, pipeline_id: int, first_id: int, count: int, now: pendulum.DateTime) -> int:
    """`count` successful runs of the pipeline in the hour of `now`, spread over the last 28 days;
    returns the id of a just-ended run to judge (written last)."""
    from sluice.store.executions import run_item
    from sluice.store.table import serialize

    per_day = max(1, count // 28)
    items = []
    for n in range(count):
        day, slot = divmod(n, per_day)
        start = now.subtract(days=day + 1).start_of("hour").add(seconds=slot * 3600 // (per_day + 1))
        items.append(_run(first_id + n, pipeline_id, start, 1000 + n % 7))
    judged = _run(first_id + count, pipeline_id, now.start_of("hour"), 1003)
    items.append(judged)
    batch: list[dict[str, Any]] = []
    for index, run in enumerate(items):
        batch.append({"PutRequest": {"Item": serialize(run_item(PROJECT, run))}})
        if len(batch) == 25 or index == len(items) - 1:
            pending: dict[str, Any] = {table: batch}
            while pending:
                pending = client.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}
            batch = []
    return judged.id


def _run(run_id: int, pipeline_id: int, start: pendulum.DateTime, rows: int) -> Run:
    end = start.add(minutes=5)
    return Run(
        id=run_id,
        pipeline_id=pipeline_id,
        status="success",
        start_date=start,
        end_date=end,
        completed_successfully=True,
        duration_seconds=300,
        total_rows=rows,
        inserts=10,
        updates=0,
        soft_deletes=0,
        throughput=3.3,
        end_count=1,
        created_at=start,
        updated_at=end,
        execution_metadata={"dag": "daily", "operator": "load", "notes": "x" * 200},
        watermark="2026-12-01T00:00:00Z",
        next_watermark="2026-12-02T00:00:00Z",
    )


def main() -> None:
    quick = "--quick" in sys.argv
    repeats = 5 if quick else 15
    os.environ.pop(
        "PYTHONPATH", None
    )  # this process imports the source PYTHONPATH names; the stack this checkout's
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        stack = launch(Path(folder) / "state")
        java = stats(stack)["dynamodb_local"]["pid"]
        try:
            client, table = dynamodb_table(stack)
            os.environ.update(
                TABLE_NAME=table,
                AWS_ENDPOINT_URL_DYNAMODB=stack.dynamodb_endpoint,
                AWS_DEFAULT_REGION="us-east-1",
                AWS_ACCESS_KEY_ID="local",
                AWS_SECRET_ACCESS_KEY="local",
            )
            now = timeutil.now()
            with admin_client(stack) as http:
                for size_index, size in enumerate(SIZES):
                    made = http.post(
                        "/pipeline", json={"name": f"baseline-{size}", "pipeline_type_name": "extraction"}
                    )
                    assert made.status_code == 201, made.text
                    pipeline_id = made.json()["id"]
                    rule = {"pipeline_id": pipeline_id, "metric_field": "total_rows", "minimum_executions": 5}
                    assert http.post("/anomaly_detection_rule", json=rule).status_code == 201
                    judged = seed(client, table, pipeline_id, 10_000_000 * (size_index + 1), size, now)
                    runs, rules = composition.run_repository(), composition.rule_repository()
                    results, alerting = composition.anomaly_results(), composition.alerting()
                    samples = []
                    for _ in range(repeats + 2):
                        cpu, java_cpu, wall = time.thread_time(), cpu_seconds(java), time.perf_counter()
                        found = detect_anomalies(PROJECT, judged, runs, rules, results, alerting, now)
                        samples.append(
                            (
                                (time.thread_time() - cpu) * 1000,
                                (cpu_seconds(java) - java_cpu) * 1000,
                                (time.perf_counter() - wall) * 1000,
                            )
                        )
                        assert not found, found
                    kept = samples[2:]
                    rows.append(
                        [
                            f"{size:,}",
                            fmt(statistics.median(s[0] for s in kept), 1),
                            fmt(statistics.median(s[1] for s in kept), 1),
                            fmt(statistics.median(s[2] for s in kept), 1),
                        ]
                    )
        finally:
            stack.stop()
    print(
        markdown_table(
            ["baseline runs", "detection CPU ms (this process)", "DynamoDB Local CPU ms", "wall ms"], rows
        )
    )
    print("load average", " ".join(str(round(x, 2)) for x in os.getloadavg()))


if __name__ == "__main__":
    main()
