"""The floor of a start -> end cycle on this machine (issue 10): what the calls a cycle must make cost
before any of Sluice's own code runs, and so the most cycles per second the design can reach.

A cycle is two HTTP requests (start, end), each an authorizer invocation and a RunsFunction
invocation, plus the anomaly detection its end triggers: 5 Lambda invocations and the DynamoDB calls
counted by `bench_execution_cycle` (GetItem 6, TransactWriteItems 2, UpdateItem 1, Query 2). This
bench measures, warmed and one after the other in this process:

- each of those DynamoDB calls against DynamoDB Local (the local stack's DynamoDB), as boto3 makes
  it for the handlers: the client's CPU (botocore: serialise, sign, HTTP, parse) and DynamoDB
  Local's CPU (its process's /proc times), on Sluice's table built from template.yaml;
- one invocation of the smallest FastAPI + Mangum function (tests/perf/coldstart/floor), with and
  without Powertools' `inject_lambda_context` (which every Sluice function has), with an HTTP API
  payload 2.0 event, on a route that does nothing.

The floor of a cycle is the sum: no handler logic, no gateway HTTP parsing, no pydantic models, no
EventBridge, no JSON of real bodies. Two cores can run at most 2 s of CPU per second, so
`2000 / floor_ms` bounds cycles/s with many clients; one client waits for every call of the two
requests in turn, so the sum of their wall times bounds it.

    .venv/bin/python -m tests.perf.bench_cycle_floor [--quick]
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from typing import Any

from tests.perf.common import Report, bench_main, fmt, markdown_table, scratch_dynamodb_local
from tests.perf.stack_process import cpu_seconds

TABLE = "floor-table"
# A cycle's DynamoDB calls (docs/performance.md 10b: 11 through the gateway, 3 of them detection's).
CYCLE_CALLS = {
    "GetItem": 6,
    "TransactWriteItems (2 items)": 2,
    "UpdateItem (conditional)": 1,
    "Query (GSI, 10 items)": 2,
}
REQUEST_PATH_CALLS = {"GetItem": 5, "TransactWriteItems (2 items)": 2, "UpdateItem (conditional)": 1}
INVOCATIONS = 5  # authorizer x2, RunsFunction x2, AnomalyDetectionFunction x1
CORES = 2


def _run_item(n: int) -> dict[str, Any]:
    """An item about the size and shape of a Watcher execution."""
    return {
        "PK": {"S": "P#default#RUN#000000001"},
        "SK": {"S": f"RUN#{n:012d}"},
        "GSI1PK": {"S": "P#default#PIPE#1#HOUR#12"},
        "GSI1SK": {"S": f"2026-12-03T12:00:{n % 60:02d}.000000Z#{n:012d}"},
        "id": {"N": str(n)},
        "pipeline_id": {"N": "1"},
        "status": {"S": "success"},
        "start_date": {"S": "2026-12-03T12:00:00.000000Z"},
        "end_date": {"S": "2026-12-03T12:05:00.000000Z"},
        "completed_successfully": {"BOOL": True},
        "total_rows": {"N": str(1000 + n % 7)},
        "inserts": {"N": "10"},
        "updates": {"N": "0"},
        "soft_deletes": {"N": "0"},
        "duration_seconds": {"N": "300"},
        "hour_recorded": {"N": "12"},
        "anomaly_flags": {"M": {}},
        "updated_at": {"S": "2026-12-03T12:05:00.000000Z"},
    }


def dynamodb_calls(client: Any) -> dict[str, Callable[[int], Any]]:
    key = {"PK": {"S": "P#default#RUN#000000001"}, "SK": {"S": "RUN#000000000001"}}
    return {
        "GetItem": lambda i: client.get_item(TableName=TABLE, Key=key, ConsistentRead=True),
        "TransactWriteItems (2 items)": lambda i: client.transact_write_items(
            TransactItems=[
                {
                    "Put": {
                        "TableName": TABLE,
                        "Item": _run_item(1000 + i % 50),
                        "ConditionExpression": "attribute_not_exists(PK) OR #s = :s",
                        "ExpressionAttributeNames": {"#s": "status"},
                        "ExpressionAttributeValues": {":s": {"S": "success"}},
                    }
                },
                {
                    "Update": {
                        "TableName": TABLE,
                        "Key": key,
                        "UpdateExpression": "SET #u = :u ADD #c :one",
                        "ExpressionAttributeNames": {"#u": "updated_at", "#c": "count"},
                        "ExpressionAttributeValues": {
                            ":u": {"S": f"2026-12-03T12:{i % 60:02d}"},
                            ":one": {"N": "1"},
                        },
                    }
                },
            ]
        ),
        "UpdateItem (conditional)": lambda i: client.update_item(
            TableName=TABLE,
            Key=key,
            UpdateExpression="SET #u = :u",
            ConditionExpression="attribute_exists(PK)",
            ExpressionAttributeNames={"#u": "updated_at"},
            ExpressionAttributeValues={":u": {"S": f"2026-12-03T13:{i % 60:02d}"}},
        ),
        "Query (GSI, 10 items)": lambda i: client.query(
            TableName=TABLE,
            IndexName="GSI1",
            KeyConditionExpression="GSI1PK = :p",
            ExpressionAttributeValues={":p": {"S": "P#default#PIPE#1#HOUR#12"}},
            Limit=10,
        ),
    }


def measure_dynamodb(samples: int) -> dict[str, dict[str, float]]:
    found: dict[str, dict[str, float]] = {}
    with scratch_dynamodb_local(TABLE, "sluice-floor-") as (client, java):
        for n in range(1, 101):
            client.put_item(TableName=TABLE, Item=_run_item(n))
        for name, call in dynamodb_calls(client).items():
            for i in range(max(samples // 2, 100)):  # DynamoDB Local's JIT
                call(i)
            thread_cpu, java_cpu, wall = time.thread_time(), cpu_seconds(java), time.perf_counter()
            for i in range(samples):
                call(i)
            found[name] = {
                "client_cpu_ms": (time.thread_time() - thread_cpu) * 1000 / samples,
                "dynamodb_local_cpu_ms": (cpu_seconds(java) - java_cpu) * 1000 / samples,
                "wall_ms": (time.perf_counter() - wall) * 1000 / samples,
            }
    return found


def measure_invocation(samples: int) -> dict[str, float]:
    """CPU of one FastAPI + Mangum invocation of a route that does nothing, bare and with the
    Powertools logger's `inject_lambda_context` around it."""
    from aws_lambda_powertools import Logger

    from tests.apigw import LambdaContext, http_event
    from tests.perf.coldstart.floor.app import handler as bare

    logger = Logger(service="floor")
    logged = logger.inject_lambda_context(bare)
    event = http_event("GET", "/ping")
    context = LambdaContext(function_name="floor")
    asyncio.set_event_loop(asyncio.new_event_loop())
    found = {}
    for name, handler in (("FastAPI + Mangum", bare), ("FastAPI + Mangum + Powertools logger", logged)):
        for _ in range(200):
            assert handler(event, context)["statusCode"] == 200
        began = time.thread_time()
        for _ in range(samples):
            handler(event, context)
        found[name] = (time.thread_time() - began) * 1000 / samples
    return found


def run(quick: bool) -> Report:
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
    samples = 300 if quick else 2000
    calls = measure_dynamodb(samples)
    invocation = measure_invocation(samples)
    per_invocation = invocation["FastAPI + Mangum + Powertools logger"]
    dynamodb_cpu = sum(
        n * (calls[c]["client_cpu_ms"] + calls[c]["dynamodb_local_cpu_ms"]) for c, n in CYCLE_CALLS.items()
    )
    floor_cpu = dynamodb_cpu + INVOCATIONS * per_invocation
    request_wall = sum(n * calls[c]["wall_ms"] for c, n in REQUEST_PATH_CALLS.items()) + 4 * per_invocation
    report = Report("cycle_floor", "The floor of a start -> end cycle (issue 10)")
    report.add(
        markdown_table(
            [
                "DynamoDB call (DynamoDB Local, warmed)",
                "per cycle",
                "client CPU ms",
                "DynamoDB Local CPU ms",
                "wall ms",
            ],
            [
                [
                    name,
                    CYCLE_CALLS[name],
                    fmt(v["client_cpu_ms"], 2),
                    fmt(v["dynamodb_local_cpu_ms"], 2),
                    fmt(v["wall_ms"], 2),
                ]
                for name, v in calls.items()
            ],
        )
    )
    report.add(
        markdown_table(
            ["one invocation of a route that does nothing", "CPU ms"],
            [[name, fmt(ms, 2)] for name, ms in invocation.items()],
        )
    )
    report.add(
        markdown_table(
            ["floor of a cycle", "value"],
            [
                ["DynamoDB calls (11): client + DynamoDB Local CPU ms", fmt(dynamodb_cpu, 1)],
                [f"{INVOCATIONS} invocations: CPU ms", fmt(INVOCATIONS * per_invocation, 1)],
                ["CPU ms per cycle, at least", fmt(floor_cpu, 1)],
                [f"cycles/s on {CORES} cores, at most (many clients)", fmt(CORES * 1000 / floor_cpu, 1)],
                ["wall ms of one client's cycle, at least (8 calls + 4 invocations)", fmt(request_wall, 1)],
                ["cycles/s of one client, at most", fmt(1000 / request_wall, 1)],
                ["load average at the end", " ".join(str(round(x, 2)) for x in os.getloadavg())],
            ],
        )
    )
    report.data.update(
        {
            "calls": calls,
            "invocation_cpu_ms": invocation,
            "floor_cpu_ms": floor_cpu,
            "request_wall_ms": request_wall,
        }
    )
    return report


if __name__ == "__main__":
    bench_main(__doc__.splitlines()[0], run)
