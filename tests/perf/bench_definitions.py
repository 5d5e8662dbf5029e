"""Pipeline definitions (issue 5): DynamoDB calls and items read by `GET /api/v1/pipelines?limit=20`
with 100 and with 10,000 pipelines in the project, and create + get of a 50-node pipeline through
the local gateway (p50/p99).

List: the handler runs in-process on moto (mock_aws, table from template.yaml). The first pipeline
is created through the API; the others are copies of its item, name claim and status-index keys
written with Table.batch_write (a transaction per pipeline on moto copies the whole table, so
10,000 real creates would take hours), with the project's counts item set to match. Revisions are
not copied: no list reads them.

Create + get: the local stack in this process, one keep-alive httpx client, a chain of 50 nodes
(an inline source, 48 SQL transforms, a dataset target), a new name per cycle.

    .venv/bin/python -m tests.perf.bench_definitions [--quick]
"""

from __future__ import annotations

import itertools
from typing import Any

from tests.perf.common import (
    PROJECT,
    Report,
    api_event,
    bench_main,
    call,
    fmt,
    invoke,
    load_function,
    markdown_table,
    moto_table,
    principal,
    status_and_body,
)
from tests.perf.dynamodb_calls import DynamoDBCalls
from tests.perf.local_stack import ADMIN_KEY, Timings, run_cycles, running_stack


def seed(table: Any, handler: Any, pipelines: int) -> None:
    from sluice.store import keys

    status, body = call(
        handler,
        api_event(
            "POST", "/api/v1/pipelines", {"name": "def-1"}, principal("admin"), "POST /api/v1/pipelines"
        ),
    )
    assert status == 201, body
    pk, sk = keys.pipeline(PROJECT, 1)
    original = table.get(pk, sk)
    claim_pk, claim_sk = keys.name_claim(PROJECT, "pipeline", "def-1")
    claim = table.get(claim_pk, claim_sk)
    items = []
    for number in range(2, pipelines + 1):
        name = f"def-{number}"
        item_pk, item_sk = keys.pipeline(PROJECT, number)
        item = {**original, "PK": item_pk, "SK": item_sk, "id": number, "name": name}
        if "GSI1SK" in original:
            item["GSI1SK"] = item_sk
        owner_pk, owner_sk = keys.name_claim(PROJECT, "pipeline", name)
        owner = {**claim, "PK": owner_pk, "SK": owner_sk}
        for field in ("id", "owner_id", "pipeline_id"):
            if field in claim:
                owner[field] = number
        items += [item, owner]
    table.batch_write(puts=items)
    table.update(*keys.counter(PROJECT, "pipeline"), set_={"value": pipelines})
    table.update(keys.project(PROJECT), "STATS#pipelines", set_={"total": pipelines, "active": pipelines})


def listing(caller: Any, query: dict[str, str]) -> dict[str, Any]:
    from urllib.parse import urlencode

    event = api_event("GET", "/api/v1/pipelines", None, caller, "GET /api/v1/pipelines")
    event["rawQueryString"] = urlencode(query)
    event["queryStringParameters"] = dict(query)
    return event


def list_calls(pipelines: int) -> dict[str, Any]:
    results: dict[str, Any] = {}
    with moto_table() as table:
        handler = load_function("PipelinesFunction")
        seed(table, handler, pipelines)
        viewer = principal("viewer")
        with DynamoDBCalls() as calls:
            first = listing(viewer, {"limit": "20"})
            with calls.counting():
                status, body = status_and_body(invoke(handler, first, "PipelinesFunction"))
            assert status == 200 and len(body["data"]) == 20, body
            results["limit=20, first page"] = {"status": status, **calls.as_json()}
            cursor = body["pagination"]["cursor"]
            second = listing(viewer, {"limit": "20", "cursor": cursor})
            with calls.counting():
                status, body = status_and_body(invoke(handler, second, "PipelinesFunction"))
            assert status == 200 and len(body["data"]) == 20, body
            results["limit=20, next cursor page"] = {"status": status, **calls.as_json()}
            deep = max(1, pipelines // 20 // 2)
            paged = listing(viewer, {"page": str(deep), "per_page": "20"})
            with calls.counting():
                status, body = status_and_body(invoke(handler, paged, "PipelinesFunction"))
            assert status == 200, body
            results[f"page={deep}&per_page=20 (middle page)"] = {"status": status, **calls.as_json()}
    return results


def create_and_get(count: int) -> Timings:
    import httpx

    names = itertools.count(1)
    nodes = [{"id": "n00", "nodeType": "source", "config": {"kind": "inline", "rows": [{"a": 1}]}}]
    nodes += [
        {
            "id": f"n{i:02d}",
            "nodeType": "transform",
            "config": {"sql": f"select a + 1 as a from n{i - 1:02d}"},
        }
        for i in range(1, 49)
    ]
    nodes += [{"id": "n49", "nodeType": "target", "config": {"kind": "dataset", "name": "chain"}}]
    edges = [{"source": f"n{i:02d}", "target": f"n{i + 1:02d}"} for i in range(49)]
    with (
        running_stack() as (_stack, base_url),
        httpx.Client(
            base_url=base_url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=60
        ) as client,
    ):

        def cycle(index: int, timings: Timings) -> None:
            body = {"name": f"chain-{next(names):05d}", "nodes": nodes, "edges": edges}
            created = timings.timed(
                "POST /api/v1/pipelines (50 nodes)", lambda: client.post("/api/v1/pipelines", json=body)
            )
            assert created.status_code == 201, created.text
            name = created.json()["data"]["name"]
            got = timings.timed(
                "GET /api/v1/pipelines/{name}", lambda: client.get(f"/api/v1/pipelines/{name}")
            )
            assert got.status_code == 200 and len(got.json()["data"]["nodes"]) == 50, got.text

        return run_cycles(cycle, count)


def run(quick: bool) -> Report:
    sizes = (100, 2_000) if quick else (100, 10_000)
    report = Report("definitions", "Pipeline definitions: list calls and 50-node create + get")
    measured = {size: list_calls(size) for size in sizes}
    report.data["list"] = {str(size): result for size, result in measured.items()}
    small, large = sizes
    rows = []
    for label in measured[large]:
        if "middle page" in label:
            continue
        a, b = measured[small][label]["total"], measured[large][label]["total"]
        rows.append([label, a["calls"], b["calls"], a["items_read"], b["items_read"],
                     "same" if (a["calls"], a["items_read"]) == (b["calls"], b["items_read"]) else "GROWS"])  # fmt: skip
    report.add(f"GET /api/v1/pipelines: DynamoDB calls and items read, {small} vs {large} pipelines")
    report.add(
        markdown_table(
            ["request", f"calls @{small}", f"calls @{large}", f"items @{small}", f"items @{large}", ""], rows
        )
    )
    middle = {
        size: next(v for k, v in measured[size].items() if "middle page" in k)["total"] for size in sizes
    }
    report.add(
        f"page/per_page middle page: {middle[small]['calls']} calls @{small}, {middle[large]['calls']} calls @{large} "
        "(Select=COUNT skips earlier pages, so a deep page number costs more; cursors do not)"
    )
    timings = create_and_get(20 if quick else 60)
    report.data["create_get"] = timings.as_json()
    steps = timings.as_json()["steps_ms"]
    rows = [[label, step["n"], fmt(step["p50"]), fmt(step["p99"])] for label, step in steps.items()]
    report.add("Create + get of a 50-node pipeline through the local gateway (ms)")
    report.add(markdown_table(["request", "n", "p50", "p99"], rows))
    return report


if __name__ == "__main__":
    bench_main(__doc__.splitlines()[0], run)
