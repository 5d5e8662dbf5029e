"""Requests per second and p50/p99 latency of `POST /pipeline` then `GET /pipeline/{id}` through the
local gateway, against the same handler called in-process (issue 3, figure 3).

The local stack runs in this process (`LocalStack(port=0, ephemeral=True)`, gateway served from a
thread); one httpx.Client with keep-alive and the admin key drives the gateway. In-process means
`stack.invoke("PipelinesFunction", event)` with the authorizer's context already in the event: no
HTTP, no authorizer. The authorizer is also invoked alone, in-process, to show its share. Both
paths talk to the same moto server over HTTP, and DynamoDB calls are counted and timed throughout.

    .venv/bin/python -m tests.perf.bench_gateway [--quick]
"""

from __future__ import annotations

import contextlib
import io
import itertools
import warnings
from typing import Any

from tests.perf.common import Report, api_event, bench_main, fmt, markdown_table, status_and_body
from tests.perf.dynamodb_calls import DynamoDBCalls, Tally, accumulate, tallies_json
from tests.perf.local_stack import (
    ADMIN_KEY,
    Timings,
    authorizer_event,
    default_admin,
    run_cycles,
    running_stack,
)

_names = itertools.count(1)


def _body() -> dict[str, Any]:
    """A pipeline not seen before, so every POST creates (201) and costs the same."""
    return {"name": f"perf-{next(_names):07d}", "pipeline_type_name": "extraction"}


def through_gateway(base_url: str, count: int) -> Timings:
    import httpx

    with httpx.Client(
        base_url=base_url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=30
    ) as client:

        def cycle(index: int, timings: Timings) -> None:
            created = timings.timed("POST /pipeline", lambda: client.post("/pipeline", json=_body()))
            assert created.status_code == 201, created.text
            pipeline_id = created.json()["id"]
            got = timings.timed("GET /pipeline/{id}", lambda: client.get(f"/pipeline/{pipeline_id}"))
            assert got.status_code == 200, got.text

        return run_cycles(cycle, count)


def in_process(stack: Any, count: int) -> Timings:
    caller = default_admin()

    def cycle(index: int, timings: Timings) -> None:
        post = api_event("POST", "/pipeline", _body(), caller, "POST /pipeline")
        status, body = status_and_body(
            timings.timed("POST /pipeline", lambda: stack.invoke("PipelinesFunction", post))
        )
        assert status == 201, body
        pipeline_id = str(body["id"])
        get = api_event(
            "GET",
            f"/pipeline/{pipeline_id}",
            None,
            caller,
            "GET /pipeline/{pipeline_id}",
            {"pipeline_id": pipeline_id},
        )
        status, body = status_and_body(
            timings.timed("GET /pipeline/{id}", lambda: stack.invoke("PipelinesFunction", get))
        )
        assert status == 200, body

    return run_cycles(cycle, count)


def authorizer_alone(stack: Any, count: int) -> Timings:
    event = authorizer_event()

    def cycle(_index: int, timings: Timings) -> None:
        verdict = timings.timed("authorizer", lambda: stack.invoke("AuthorizerFunction", event))
        assert verdict["context"].get("project") == "default", verdict

    return run_cycles(cycle, count)


def measure(quick: bool) -> dict[str, Any]:
    """The three paths in interleaved blocks: the table grows as pipelines are created, and moto's
    cost of a transaction grows with the table, so no path may run on a bigger table than another."""
    pairs = 40 if quick else 120
    block = 20
    paths = ("gateway", "in_process", "authorizer")
    timings = {name: Timings() for name in paths}
    counted: dict[str, dict[str, Tally]] = {name: {} for name in paths}
    printed = io.StringIO()
    warnings.filterwarnings("ignore", message="No application metrics to publish")
    # Metrics are disabled in the local stack, yet Powertools prints an EMF blob every 100 values.
    with contextlib.redirect_stdout(printed), running_stack() as (stack, base_url), DynamoDBCalls() as calls:
        through_gateway(base_url, 10)  # warm: handlers loaded, clients and connections made
        in_process(stack, 10)
        authorizer_alone(stack, 10)
        items_before = table_items(stack)
        runs = {
            "gateway": lambda n: through_gateway(base_url, n),
            "in_process": lambda n: in_process(stack, n),
            "authorizer": lambda n: authorizer_alone(stack, n),
        }
        for _ in range(pairs // block):
            for name in paths:
                with calls.counting():
                    timings[name].merge(runs[name](block))
                accumulate(counted[name], calls.by_operation())
        items_after = table_items(stack)
    results: dict[str, Any] = {
        "pairs": pairs,
        "table_items": [items_before, items_after],
        "emf_blobs_printed_with_metrics_disabled": printed.getvalue().count('{"_aws"'),
    }
    for name in paths:
        dynamodb = tallies_json(counted[name])
        total = dynamodb["total"]
        cycles = timings[name].cycles
        results[name] = {
            **timings[name].as_json(),
            "dynamodb_calls_per_cycle": total["calls"] / cycles,
            "dynamodb_ms_per_call": total["seconds"] * 1000 / total["calls"] if total["calls"] else None,
            "dynamodb_ms_per_cycle": total["seconds"] * 1000 / cycles,
            "dynamodb": dynamodb,
        }
    return results


def table_items(stack: Any) -> int:
    from sluice import aws

    table = stack.resources["Table"]
    return int(aws.client("dynamodb").scan(TableName=table, Select="COUNT")["Count"])


def run(quick: bool) -> Report:
    report = Report("gateway", "Local gateway against in-process handler calls")
    results = measure(quick)
    report.data.update(results)
    gateway, local, authorizer = results["gateway"], results["in_process"], results["authorizer"]

    def steps(entry: dict[str, Any], step: str) -> dict[str, float]:
        return entry["steps_ms"].get(step, {"p50": float("nan"), "p99": float("nan")})

    rows = []
    for label, entry, requests_per_cycle in (
        ("through the gateway (HTTP, authorizer, handler)", gateway, 2),
        ("in-process handler (no gateway, no authorizer)", local, 2),
        ("authorizer alone, in-process", authorizer, 1),
    ):
        first = "authorizer" if entry is authorizer else "POST /pipeline"
        second = None if entry is authorizer else "GET /pipeline/{id}"
        rows.append(
            [
                label,
                fmt(entry["cycles_per_s"] * requests_per_cycle),
                fmt(steps(entry, first)["p50"]),
                fmt(steps(entry, first)["p99"]),
                fmt(steps(entry, second)["p50"]) if second else "-",
                fmt(steps(entry, second)["p99"]) if second else "-",
                fmt(entry["dynamodb_calls_per_cycle"] / requests_per_cycle),
                f"{100 * entry['dynamodb_ms_per_cycle'] / (1000 * entry['elapsed_s'] / entry['cycles']):.0f}%",
            ]
        )
    before, after = results["table_items"]
    report.add(
        f"{results['pairs']} pairs of `POST /pipeline` (new name, existing type) then `GET /pipeline/{{id}}`, "
        f"one client, after a warm-up; the three paths interleaved in blocks of 20 (the table grew from "
        f"{before:,} to {after:,} items). Latencies in ms.\n\n"
        + markdown_table(
            [
                "path",
                "requests/s",
                "POST p50 (authorizer: p50)",
                "POST p99",
                "GET p50",
                "GET p99",
                "DynamoDB calls per request",
                "share of time in DynamoDB calls",
            ],
            rows,
        )
    )
    rows = []
    for label, entry in (("gateway", gateway), ("in-process", local), ("authorizer", authorizer)):
        for operation, tally in entry["dynamodb"]["by_operation"].items():
            rows.append(
                [
                    label,
                    operation,
                    fmt(tally["calls"] / entry["cycles"], 1),
                    fmt(tally["seconds"] * 1000 / tally["calls"], 2),
                    fmt(tally["retries"]),
                ]
            )
    report.add(
        "DynamoDB calls (to moto's server over HTTP) per cycle, by operation:\n\n"
        + markdown_table(["path", "operation", "calls per cycle", "ms per call", "retries"], rows)
    )
    pair_gateway = steps(gateway, "cycle")["p50"]
    pair_local = steps(local, "cycle")["p50"]
    auth = steps(authorizer, "authorizer")["p50"]
    ratio = pair_gateway / pair_local
    report.data["ratio_p50"] = ratio
    report.data["ratio_throughput"] = local["cycles_per_s"] / gateway["cycles_per_s"]
    added = pair_gateway - pair_local
    report.add(
        f"Gateway overhead: a pair takes {fmt(pair_gateway)} ms (p50) through the gateway and "
        f"{fmt(pair_local)} ms in-process: **{ratio:.2f}x** (throughput ratio "
        f"{report.data['ratio_throughput']:.2f}x). Of the {fmt(added)} ms the gateway adds per pair, the "
        f"two authorizer runs account for about {fmt(2 * auth)} ms ({100 * 2 * auth / added:.0f}%); the "
        "rest is HTTP, event building and thread hand-offs. Powertools printed "
        f"{results['emf_blobs_printed_with_metrics_disabled']} EMF blobs to stdout although metrics are "
        "disabled in the local stack."
    )
    return report


if __name__ == "__main__":
    bench_main(__doc__.splitlines()[0], run)
