"""What DynamoDB Local costs per item written (issue 15's 2 s batch, docs/performance.md 14b): the
local stack's DynamoDB Local (its JVM settings, Sluice's table from template.yaml, its database on
tmpfs as the stack keeps it) takes rounds of TransactWriteItems of 100 conditional Puts, 8 at a
time, of three item shapes: the keys alone, an execution without GSI keys, a whole execution with
both GSIs' keys. Reported per 1,000 items: wall time and DynamoDB Local's CPU (its /proc times),
the first round (JIT cold) apart from the warm ones.

    .venv/bin/python -m tests.perf.bench_item_writes [--quick]
"""

from __future__ import annotations

import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from tests.perf.common import Report, bench_main, fmt, markdown_table, scratch_dynamodb_local
from tests.perf.stack_process import cpu_seconds

TABLE = "item-writes-table"
PER_TRANSACTION = 100
WRITERS = 8


def execution(n: int) -> dict[str, Any]:
    """An execution item as the OpenLineage bulk path writes one (the attributes that matter)."""
    stamp = "2026-12-03T10:00:00.000000Z"
    return {
        "PK": {"S": f"P#bench#RUN#{n:012d}"},
        "SK": {"S": "RUN"},
        "kind": {"S": "run"},
        "project": {"S": "bench"},
        "id": {"N": str(n)},
        "pipeline_id": {"N": str(n % 50)},
        "status": {"S": "success"},
        "origin": {"S": "openlineage"},
        "ancestors": {"L": []},
        "start_date": {"S": stamp},
        "end_date": {"S": stamp},
        "total_rows": {"N": str(n)},
        "anomaly_flags": {"M": {}},
        "end_count": {"N": "1"},
        "created_at": {"S": stamp},
        "updated_at": {"S": stamp},
        "GSI1PK": {"S": f"P#bench#PIPE#{n % 50}#H#10"},
        "GSI1SK": {"S": f"{stamp}#{n:012d}"},
        "GSI2PK": {"S": "P#bench#MONTH#2026-12"},
        "GSI2SK": {"S": f"{stamp}#{n:012d}"},
    }


SHAPES = {
    "keys only": lambda n: {k: v for k, v in execution(n).items() if k in ("PK", "SK")},
    "execution, no GSI keys": lambda n: {k: v for k, v in execution(n).items() if not k.startswith("GSI")},
    "execution with both GSIs' keys": execution,
}


def measure(shape: str, items: int, rounds: int) -> list[tuple[float, float]]:
    """(wall s, DynamoDB Local CPU s) per round of `items` items, on a fresh DynamoDB Local."""
    make = SHAPES[shape]

    def transaction(client: Any, first: int) -> None:
        client.transact_write_items(
            TransactItems=[
                {
                    "Put": {
                        "TableName": TABLE,
                        "Item": make(first + j),
                        "ConditionExpression": "attribute_not_exists(PK)",
                    }
                }
                for j in range(PER_TRANSACTION)
            ]
        )

    found = []
    written = 0
    with (
        scratch_dynamodb_local(TABLE, "sluice-item-writes-", on_shm=True) as (client, java),
        ThreadPoolExecutor(WRITERS) as pool,
    ):
        for _ in range(rounds):
            firsts = range(written, written + items, PER_TRANSACTION)
            cpu, wall = cpu_seconds(java), time.perf_counter()
            list(pool.map(lambda first: transaction(client, first), firsts))
            found.append((time.perf_counter() - wall, cpu_seconds(java) - cpu))
            written += items
    return found


def run(quick: bool) -> Report:
    items, rounds = (300, 3) if quick else (1000, 6)
    report = Report("item_writes", "What DynamoDB Local costs per item written")
    rows, data = [], {}
    for shape in SHAPES:
        found = measure(shape, items, rounds)
        per_thousand = [(w * 1000 / items, c * 1000 / items) for w, c in found]
        warm = per_thousand[1:]
        data[shape] = {"rounds_per_1000_items": per_thousand}
        rows.append(
            [
                shape,
                f"{fmt(per_thousand[0][0], 2)} / {fmt(per_thousand[0][1], 2)}",
                f"{fmt(statistics.median(w for w, _ in warm), 2)} / {fmt(statistics.median(c for _, c in warm), 2)}",
                f"{fmt(min(c for _, c in warm), 2)} - {fmt(max(c for _, c in warm), 2)}",
            ]
        )
    report.add(
        markdown_table(
            [
                f"item shape ({rounds} rounds of {items})",
                "first round: wall s / CPU s per 1,000",
                "warm rounds, median: wall s / CPU s per 1,000",
                "warm CPU s per 1,000, range",
            ],
            rows,
        )
    )
    report.data.update({"items_per_round": items, "rounds": rounds, "shapes": data})
    return report


if __name__ == "__main__":
    bench_main(__doc__.splitlines()[0], run)
