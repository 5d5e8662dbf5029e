"""DynamoDB calls per request of each registry endpoint (issue 3, figure 2), with 100 and with
10,000 pipelines in the project.

The handlers run in-process on moto (mock_aws, table from template.yaml); calls are counted with
botocore's before-call/after-call hooks on every client Sluice makes (tests/perf/dynamodb_calls.py).
Pipelines beyond the first are written directly with Table.batch_write, shaped as the registry
writes them (item + name claim, counter moved on), so seeding 10,000 takes seconds.

    .venv/bin/python -m tests.perf.bench_registry_calls [--quick]
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tests.apigw import LambdaContext
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
    percentile,
    principal,
    status_and_body,
)
from tests.perf.dynamodb_calls import DynamoDBCalls

PERF_KEY = "df_key_" + "perfRegistryKey0123456789abcdefghijklm"
SOURCES = ["src.public.orders", "src.public.customers"]
TARGETS = ["dw.sales.orders", "dw.sales.customers"]


@dataclass
class Scenario:
    label: str
    function: str
    method: str
    path: str
    route: str
    body: Any = None
    params: dict[str, str] = field(default_factory=dict)
    grows: bool = False  # its answer grows with the table, by contract


def _address(name: str) -> dict[str, str]:
    return {"name": name, "address_type_name": "postgres", "address_type_group_name": "database"}


def scenarios(pipelines: int) -> list[Scenario]:
    """The requests measured, in order; ids refer to what `seed` made."""
    middle = str(max(1, pipelines // 2))
    pipe, lin = "PipelinesFunction", "LineageFunction"
    lineage_body = {
        "pipeline_id": int(middle),
        "source_addresses": [_address(n) for n in SOURCES],
        "target_addresses": [_address(n) for n in TARGETS],
    }
    return [
        Scenario("POST /pipeline (new)", pipe, "POST", "/pipeline", "POST /pipeline",
                 {"name": "perf-new-pipeline", "pipeline_type_name": "extraction"}),
        Scenario("POST /pipeline (existing, unchanged)", pipe, "POST", "/pipeline", "POST /pipeline",
                 {"name": "pipeline-000001", "pipeline_type_name": "extraction"}),
        Scenario("PATCH /pipeline", pipe, "PATCH", "/pipeline", "PATCH /pipeline",
                 {"id": int(middle), "timeliness_number": 2, "timeliness_datepart": "hour"}),
        Scenario("GET /pipeline/{id}", pipe, "GET", f"/pipeline/{middle}", "GET /pipeline/{pipeline_id}",
                 params={"pipeline_id": middle}),
        Scenario("GET /pipeline (list all)", pipe, "GET", "/pipeline", "GET /pipeline", grows=True),
        Scenario("POST /pipeline_type (new)", pipe, "POST", "/pipeline_type", "POST /pipeline_type",
                 {"name": "transformation"}),
        Scenario("POST /pipeline_type (existing)", pipe, "POST", "/pipeline_type", "POST /pipeline_type",
                 {"name": "extraction"}),
        Scenario("PATCH /pipeline_type", pipe, "PATCH", "/pipeline_type", "PATCH /pipeline_type",
                 {"id": 1, "freshness_number": 1, "freshness_datepart": "day"}),
        Scenario("GET /pipeline_type/{id}", pipe, "GET", "/pipeline_type/1",
                 "GET /pipeline_type/{pipeline_type_id}", params={"pipeline_type_id": "1"}),
        Scenario("GET /pipeline_type (list all)", pipe, "GET", "/pipeline_type", "GET /pipeline_type"),
        Scenario("POST /address (new)", lin, "POST", "/address", "POST /address",
                 _address("dw.sales.returns")),
        Scenario("POST /address (existing, unchanged)", lin, "POST", "/address", "POST /address",
                 _address(SOURCES[0])),
        Scenario("PATCH /address", lin, "PATCH", "/address", "PATCH /address", {"id": 1, "primary_key": "id"}),
        Scenario("GET /address/{id}", lin, "GET", "/address/1", "GET /address/{address_id}",
                 params={"address_id": "1"}),
        Scenario("GET /address (list all)", lin, "GET", "/address", "GET /address"),
        Scenario("POST /address_type (new)", lin, "POST", "/address_type", "POST /address_type",
                 {"name": "snowflake", "group_name": "database"}),
        Scenario("POST /address_type (existing)", lin, "POST", "/address_type", "POST /address_type",
                 {"name": "postgres", "group_name": "database"}),
        Scenario("PATCH /address_type", lin, "PATCH", "/address_type", "PATCH /address_type",
                 {"id": 1, "group_name": "warehouse"}),
        Scenario("GET /address_type/{id}", lin, "GET", "/address_type/1",
                 "GET /address_type/{address_type_id}", params={"address_type_id": "1"}),
        Scenario("GET /address_type (list all)", lin, "GET", "/address_type", "GET /address_type"),
        Scenario("POST /address_lineage (2 x 2, new edges)", lin, "POST", "/address_lineage",
                 "POST /address_lineage", lineage_body),
        Scenario("POST /address_lineage (same again)", lin, "POST", "/address_lineage",
                 "POST /address_lineage", lineage_body),
        Scenario("GET /address_lineage/{id}", lin, "GET", "/address_lineage/3",
                 "GET /address_lineage/{address_id}", params={"address_id": "3"}),
    ]  # fmt: skip


def pipeline_item(pipeline_id: int, type_id: int, created_at: str) -> list[dict[str, Any]]:
    """A pipeline as PipelineRepository.create writes it: the item and its name claim."""
    from sluice.store import keys

    name = f"pipeline-{pipeline_id:06d}"
    pk, sk = keys.pipeline(PROJECT, pipeline_id)
    claim_pk, claim_sk = keys.name_claim(PROJECT, "pipeline", name)
    item = {
        "PK": pk,
        "SK": sk,
        "kind": "pipeline",
        "id": pipeline_id,
        "name": name,
        "pipeline_type_id": type_id,
        "next_watermark": "2026-01-01",
        "freshness_number": 24,
        "freshness_datepart": "hour",
        "mute_freshness_check": False,
        "mute_timeliness_check": False,
        "load_lineage": True,
        "active": True,
        "created_at": created_at,
    }
    claim = {
        "PK": claim_pk,
        "SK": claim_sk,
        "kind": "name_claim",
        "owner_kind": "pipeline",
        "owner_id": pipeline_id,
    }
    return [item, claim]


def seed(table: Any, handlers: dict[str, Callable], pipelines: int) -> None:
    """Given: a pipeline type, `pipelines` pipelines, two address types' worth of addresses, an API key."""
    from sluice import timeutil
    from sluice.auth.tokens import hash_api_key
    from sluice.store import keys
    from sluice.store.api_keys import ApiKeyRepository

    admin = principal("admin")
    first = {"name": "pipeline-000001", "pipeline_type_name": "extraction", "next_watermark": "2026-01-01",
             "freshness_number": 24, "freshness_datepart": "hour"}  # fmt: skip
    status, _ = call(handlers["PipelinesFunction"], api_event("POST", "/pipeline", first, admin))
    assert status == 201, status
    created_at = timeutil.iso(timeutil.now())
    items = [i for n in range(2, pipelines + 1) for i in pipeline_item(n, 1, created_at)]
    table.batch_write(puts=items)
    counter_pk, counter_sk = keys.counter(PROJECT, "pipeline")
    table.put({"PK": counter_pk, "SK": counter_sk, "value": pipelines})
    for name in SOURCES + TARGETS:
        status, _ = call(handlers["LineageFunction"], api_event("POST", "/address", _address(name), admin))
        assert status == 201, status
    ApiKeyRepository(table).create(PROJECT, "key_perf", "perf", "admin", hash_api_key(PERF_KEY), "perf")


def authorizer_event() -> dict[str, Any]:
    from sluice.local.gateway import authorizer_event as to_authorizer

    event = api_event("GET", "/pipeline/1", route="GET /pipeline/{pipeline_id}", params={"pipeline_id": "1"})
    event["headers"]["authorization"] = f"Bearer {PERF_KEY}"
    return to_authorizer(event)


def measure(pipelines: int, handlers: dict[str, Callable] | None = None) -> dict[str, Any]:
    """Calls per scenario with `pipelines` pipelines in the project (a fresh moto table)."""
    results: dict[str, Any] = {}
    with moto_table() as table:
        handlers = handlers or {
            name: load_function(name)
            for name in ("PipelinesFunction", "LineageFunction", "AuthorizerFunction")
        }
        seed(table, handlers, pipelines)
        admin = principal("admin")
        with DynamoDBCalls() as calls:
            for scenario in scenarios(pipelines):
                event = api_event(
                    scenario.method, scenario.path, scenario.body, admin, scenario.route, scenario.params
                )
                with calls.counting():
                    response = invoke(handlers[scenario.function], event, scenario.function)
                status, body = status_and_body(response)
                results[scenario.label] = {
                    "status": status,
                    "answer_items": len(body) if isinstance(body, list) else None,
                    "answer_bytes": len(response.get("body") or ""),
                    "grows": scenario.grows,
                    **calls.as_json(),
                    "described": calls.describe(),
                }
            with calls.counting():
                verdict = handlers["AuthorizerFunction"](authorizer_event(), LambdaContext("authorizer"))
            results["authorizer (valid API key)"] = {
                "status": "authorized" if "project" in verdict.get("context", {}) else "denied",
                "answer_items": None,
                "answer_bytes": None,
                "grows": False,
                **calls.as_json(),
                "described": calls.describe(),
            }
            moto = moto_times(handlers, calls)
    return {"requests": results, "moto_ms": moto}


def moto_times(handlers: dict[str, Callable], calls: DynamoDBCalls, repeat: int = 3) -> dict[str, float]:
    """moto's own time per call (ms, median of `repeat`) for the calls whose cost grows with the
    table in moto: what the local stack pays, not what DynamoDB does."""
    admin = principal("admin")
    samples: dict[str, list[float]] = {}
    for n in range(repeat):
        probes = (
            ("authorizer: Query on GSI1", "AuthorizerFunction", authorizer_event(), "Query"),
            ("authorizer: GetItem", "AuthorizerFunction", authorizer_event(), "GetItem"),
            (
                "POST /pipeline_type (new): TransactWriteItems",
                "PipelinesFunction",
                api_event("POST", "/pipeline_type", {"name": f"probe-{n}"}, admin),
                "TransactWriteItems",
            ),
            (
                "GET /pipeline_type (list): Query",
                "PipelinesFunction",
                api_event("GET", "/pipeline_type", None, admin),
                "Query",
            ),
        )
        for label, function, event, operation in probes:
            with calls.counting():
                invoke(handlers[function], event, function)
            tally = calls.by_operation()[operation]
            samples.setdefault(label, []).append(tally.seconds * 1000 / tally.calls)
    return {label: percentile(values, 50) for label, values in samples.items()}


def run(quick: bool) -> Report:
    sizes = (100, 2_000) if quick else (100, 10_000)
    report = Report("registry_calls", "DynamoDB calls per request of the registry endpoints")
    measured = {size: measure(size) for size in sizes}
    by_size = {size: result["requests"] for size, result in measured.items()}
    report.data["sizes"] = list(sizes)
    report.data["results"] = {str(size): result for size, result in by_size.items()}
    report.data["moto_ms"] = {str(size): result["moto_ms"] for size, result in measured.items()}
    small, large = sizes
    rows = []
    for label, at_large in by_size[large].items():
        at_small = by_size[small][label]
        same = (
            at_small["total"]["calls"] == at_large["total"]["calls"]
            and at_small["total"]["items_read"] == at_large["total"]["items_read"]
        )
        verdict = (
            "grows with the answer (by contract)" if at_large["grows"] else ("yes" if same else "**no**")
        )
        rows.append(
            [
                label,
                str(at_large["status"]),
                fmt(at_small["total"]["calls"]),
                fmt(at_small["total"]["items_read"]),
                fmt(at_large["total"]["calls"]),
                fmt(at_large["total"]["items_read"]),
                fmt(at_large["total"]["items_written"]),
                at_large["described"],
                verdict,
            ]
        )
    report.add(
        f"Calls and items read per request with {small:,} and with {large:,} pipelines in the project "
        "(in-process handlers on moto; items read = GetItem's item, Query's ScannedCount, "
        "BatchGetItem's responses).\n\n"
        + markdown_table(
            [
                "request",
                "status",
                f"calls @{small:,}",
                f"items read @{small:,}",
                f"calls @{large:,}",
                f"items read @{large:,}",
                f"items written @{large:,}",
                f"operations @{large:,}",
                "constant?",
            ],
            rows,
        )
    )
    listing = by_size[large]["GET /pipeline (list all)"]
    report.add(
        f"`GET /pipeline` returns every pipeline by contract: with {large:,} pipelines it answered "
        f"{listing['answer_items']:,} items ({listing['answer_bytes'] / 1e6:.1f} MB of JSON) in "
        f"{listing['total']['calls']} Query pages (DynamoDB pages at 1 MB; moto applies the same limit). "
        "A Lambda response is capped at 6 MB, so this unpaginated list stops working at about "
        f"{6e6 / (listing['answer_bytes'] / listing['answer_items']):,.0f} pipelines of this size."
    )
    rows = [
        [label, *(fmt(measured[size]["moto_ms"][label], 1) for size in sizes)]
        for label in measured[small]["moto_ms"]
    ]
    report.add(
        "Not a product figure, but what the local stack pays: moto's time per call (in-process, ms, "
        "median of 3) grows with the table, because moto answers every Query (main table or index) by "
        "walking all items and copies the whole table for every TransactWriteItems.\n\n"
        + markdown_table(["call", f"ms @{small:,} pipelines", f"ms @{large:,} pipelines"], rows)
    )
    return report


if __name__ == "__main__":
    bench_main(__doc__.splitlines()[0], run)
