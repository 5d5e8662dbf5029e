"""`sluice dev` as a user runs it (its own process, state on disk), for the benchmarks that measure
the local stack as a product: its throughput, memory, background lag and CPU, seen from outside."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import httpx

from tests.e2e.conftest import ADMIN_KEY, RunningStack, start_stack

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def launch(data_dir: Path, *args: str) -> RunningStack:
    return start_stack("--data-dir", str(data_dir), *args)


def admin_client(stack: RunningStack, timeout: float = 60) -> httpx.Client:
    return httpx.Client(
        base_url=stack.base_url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=timeout
    )


def stats(stack: RunningStack, reset: bool = False) -> dict[str, Any]:
    """GET /_local/stats: background work (pending, lag p50/p99 per function), RSS of both processes."""
    response = httpx.get(f"{stack.base_url}/_local/stats", params={"reset": "1"} if reset else {}, timeout=30)
    response.raise_for_status()
    return response.json()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def wait_for_background(stack: RunningStack, limit: float = 300) -> float:
    """Seconds until no asynchronous invocation is pending (detection has caught up)."""
    started = time.monotonic()
    while time.monotonic() - started < limit:
        if stats(stack)["background"]["pending"] == 0:
            return time.monotonic() - started
        time.sleep(0.1)
    raise TimeoutError(f"background work still pending after {limit:.0f}s")


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def dynamodb_table(stack: RunningStack) -> tuple[Any, str]:
    """A client on the stack's DynamoDB Local and the table's name (for seeding behind the API)."""
    import boto3

    client = boto3.client(
        "dynamodb",
        endpoint_url=stack.dynamodb_endpoint,
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )
    name = next(n for n in client.list_tables()["TableNames"] if n.endswith("-Table"))
    return client, name


def seed_history(stack: RunningStack, project: str, pipelines: list[int], count: int) -> float:
    """`count` successful executions of `pipelines`, hourly back from 31 days ago (older than the
    anomaly lookback, as real history mostly is), written in the runs repository's own layout with
    BatchWriteItem, ids above every existing one and the run counter moved past them. Returns seconds."""
    import pendulum

    from sluice.domain.executions import Run
    from sluice.store import keys
    from sluice.store.executions import run_item
    from sluice.store.table import serialize

    client, table = dynamodb_table(stack)
    counter = dict(zip(("PK", "SK"), keys.counter(project, "run"), strict=True))
    found = client.get_item(TableName=table, Key=serialize(counter)).get("Item")
    first = int(found["value"]["N"]) + 1 if found else 1
    started = time.perf_counter()
    moment = pendulum.now("UTC").subtract(days=31)
    batch: list[dict[str, Any]] = []
    for offset in range(count):
        start = moment.subtract(hours=offset // len(pipelines))
        run = Run(
            id=first + offset,
            pipeline_id=pipelines[offset % len(pipelines)],
            status="success",
            start_date=start,
            end_date=start.add(minutes=5),
            completed_successfully=True,
            duration_seconds=300,
            total_rows=1000 + offset % 7,
            inserts=10,
            updates=0,
            soft_deletes=0,
            throughput=3.3,
            end_count=1,
            created_at=start,
            updated_at=start.add(minutes=5),
        )
        batch.append({"PutRequest": {"Item": serialize(run_item(project, run))}})
        if len(batch) == 25 or offset == count - 1:
            pending: dict[str, Any] = {table: batch}
            while pending:
                pending = client.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}
            batch = []
    client.put_item(TableName=table, Item=serialize({**counter, "value": first + count - 1}))
    return time.perf_counter() - started
