"""What one DynamoDB call costs the local stack as its table grows (issue 10): moto's server over
HTTP (the local stack before) against DynamoDB Local (now), side by side, at 1k / 10k / 100k items.

Both backends get the same table (template.yaml's definition) and the same items, shaped like
Sluice's: partitions of 100 items per pipeline, GSI1 (100 items per key) and GSI2 (1,000 per key)
filled on every item. The calls are the ones Sluice makes: GetItem, PutItem, a Query of 10 items
of one partition, a GSI Query of 10 items, a conditional UpdateItem, a 2-item TransactWriteItems.
Each call is timed from this process (a boto3 client with keep-alive, as the handlers use),
samples interleaved between the backends.

    .venv/bin/python -m tests.perf.bench_dynamodb_backends [--quick] [--sizes 1000,10000,100000]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from typing import Any

import boto3
from botocore.config import Config

from tests.perf.common import fmt, markdown_table, percentile

TABLE = "bench-backends"
OPERATIONS = ("GetItem", "PutItem", "Query", "GSI Query", "conditional UpdateItem", "2-item transaction")


def client_for(endpoint: str) -> Any:
    return boto3.client(
        "dynamodb",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
        config=Config(retries={"max_attempts": 1}, max_pool_connections=4, read_timeout=300),
    )


def item(n: int) -> dict[str, Any]:
    return {
        "PK": {"S": f"P#{n // 100}"},
        "SK": {"S": f"R#{n:09d}"},
        "GSI1PK": {"S": f"G1#{n % 1000}"},
        "GSI1SK": {"S": f"{n:09d}"},
        "GSI2PK": {"S": f"G2#{n % 100}"},
        "GSI2SK": {"S": f"{n:09d}"},
        "status": {"S": "success"},
        "total_rows": {"N": str(1000 + n % 7)},
        "payload": {"S": "x" * 200},
    }


def fill(client: Any, start: int, stop: int) -> None:
    batch: list[dict[str, Any]] = []
    for n in range(start, stop):
        batch.append({"PutRequest": {"Item": item(n)}})
        if len(batch) == 25 or n == stop - 1:
            pending: dict[str, Any] = {TABLE: batch}
            while pending:
                pending = client.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}
            batch = []


def calls(size: int, sample: int) -> dict[str, Any]:
    n = (sample * 7919) % size
    partition = f"P#{n // 100}"
    return {
        "GetItem": lambda c: c.get_item(
            TableName=TABLE, Key={"PK": {"S": partition}, "SK": {"S": f"R#{n:09d}"}}
        ),
        "PutItem": lambda c: c.put_item(TableName=TABLE, Item={**item(n), "SK": {"S": f"X#{sample:09d}"}}),
        "Query": lambda c: c.query(
            TableName=TABLE,
            KeyConditionExpression="PK = :p AND SK > :s",
            ExpressionAttributeValues={":p": {"S": partition}, ":s": {"S": "R#"}},
            Limit=10,
        ),
        "GSI Query": lambda c: c.query(
            TableName=TABLE,
            IndexName="GSI1",
            KeyConditionExpression="GSI1PK = :p AND GSI1SK >= :s",
            ExpressionAttributeValues={":p": {"S": f"G1#{n % 1000}"}, ":s": {"S": "0"}},
            Limit=10,
        ),
        "conditional UpdateItem": lambda c: c.update_item(
            TableName=TABLE,
            Key={"PK": {"S": partition}, "SK": {"S": f"R#{n:09d}"}},
            UpdateExpression="SET total_rows = total_rows + :one",
            ConditionExpression="attribute_exists(PK) AND #s = :s",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":one": {"N": "1"}, ":s": {"S": "success"}},
        ),
        "2-item transaction": lambda c: c.transact_write_items(
            TransactItems=[
                {
                    "Update": {
                        "TableName": TABLE,
                        "Key": {"PK": {"S": partition}, "SK": {"S": f"R#{n:09d}"}},
                        "UpdateExpression": "SET #s = :s",
                        "ConditionExpression": "attribute_exists(PK)",
                        "ExpressionAttributeNames": {"#s": "status"},
                        "ExpressionAttributeValues": {":s": {"S": "success"}},
                    }
                },
                {"Put": {"TableName": TABLE, "Item": {**item(n), "SK": {"S": f"T#{sample:09d}"}}}},
            ]
        ),
    }


def measure(sizes: list[int], samples: int, slow_samples: int) -> dict[str, Any]:
    from sluice.local import moto_adapter
    from sluice.local.dynamodb_local import DynamoDBLocal
    from sluice.local.template import load_template, table_definition

    os.environ.pop("AWS_ENDPOINT_URL", None)
    local = DynamoDBLocal(None).start()
    server, port = moto_adapter.start_server()
    backends = {
        "moto over HTTP": client_for(f"http://127.0.0.1:{port}"),
        "DynamoDB Local": client_for(local.endpoint),
    }
    definition = table_definition(load_template())
    results: dict[str, Any] = {"sizes": sizes, "backends": {}}
    try:
        for client in backends.values():
            client.create_table(TableName=TABLE, **definition)
        filled = 0
        for size in sizes:
            for name, client in backends.items():
                started = time.perf_counter()
                fill(client, filled, size)
                results.setdefault("fill_seconds", {}).setdefault(name, {})[str(size)] = round(
                    time.perf_counter() - started, 1
                )
            filled = size
            timings: dict[str, dict[str, list[float]]] = {
                name: {op: [] for op in OPERATIONS} for name in backends
            }
            for sample in range(samples):
                for operation in OPERATIONS:
                    for name, client in backends.items():
                        slow = (
                            name == "moto over HTTP" and operation == "2-item transaction" and size > 10_000
                        )
                        if slow and sample >= slow_samples:
                            continue  # moto copies every table per transaction: ~20 s a call at 100k
                        call = calls(size, sample)[operation]
                        started = time.perf_counter()
                        call(client)
                        timings[name][operation].append(time.perf_counter() - started)
            for name in backends:
                for operation in OPERATIONS:
                    values = timings[name][operation]
                    results["backends"].setdefault(name, {}).setdefault(operation, {})[str(size)] = {
                        "p50_ms": round(percentile(values, 50) * 1000, 2),
                        "p99_ms": round(percentile(values, 99) * 1000, 2),
                        "n": len(values),
                    }
            print(f"measured at {size:,} items", flush=True)
    finally:
        local.stop()
        server.stop()
    results["load_average"] = os.getloadavg()
    return results


def report(results: dict[str, Any]) -> str:
    sizes = results["sizes"]
    rows = []
    for name, operations in results["backends"].items():
        for operation in OPERATIONS:
            cells = operations[operation]
            rows.append([name, operation, *(fmt(cells[str(s)]["p50_ms"], 1) for s in sizes)])
    headers = ["backend", "call", *(f"p50 ms @ {s:,} items" for s in sizes)]
    ratio_rows = []
    for operation in OPERATIONS:
        moto, local = (
            results["backends"]["moto over HTTP"][operation],
            results["backends"]["DynamoDB Local"][operation],
        )
        ratio_rows.append(
            [operation, *(f"{moto[str(s)]['p50_ms'] / local[str(s)]['p50_ms']:.1f}x" for s in sizes)]
        )
    return (
        markdown_table(headers, rows)
        + "\n\nmoto over HTTP / DynamoDB Local (p50):\n\n"
        + markdown_table(["call", *(f"@ {s:,}" for s in sizes)], ratio_rows)
        + f"\n\nload average during the run: {', '.join(f'{x:.2f}' for x in results['load_average'])}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1k and 10k items, 10 samples")
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--samples", type=int, default=30)
    args = parser.parse_args()
    sizes = [1000, 10_000] if args.quick else [int(s) for s in args.sizes.split(",")]
    results = measure(sizes, 10 if args.quick else args.samples, slow_samples=3)
    print(report(results))
    print(json.dumps(results))


if __name__ == "__main__":
    main()
