"""The bodies of the run triggers over HTTP on moto: the runs area's handler reads them with the
edge's one JSON body parser, so what is not JSON is 422 with a sentence and writes nothing."""

from __future__ import annotations

import boto3
import pytest

from sluice.auth.principal import Principal, Role
from tests.apigw import invoke, load_area

EDITOR = Principal("acme", Role.editor, "user:ed")
NODES = [
    {"id": "raw", "nodeType": "source", "config": {"kind": "inline", "rows": [{"id": 1}]}},
    {"id": "out", "nodeType": "target", "config": {"kind": "dataset", "name": "out", "mode": "overwrite"}},
]
EDGES = [{"source": "raw", "target": "out"}]
DEEP = 10_000
MALFORMED = {
    "NaN": '{"params": {"ratio": NaN}}',
    "Infinity": '{"params": {"limit": Infinity}}',
    "-Infinity": '{"variables": {"floor": -Infinity}}',
    "a 10,000-deep array": "[" * DEEP + "]" * DEEP,
    "a 10,000-deep object": '{"params": ' * DEEP + "1" + "}" * DEEP,
}


@pytest.fixture
def areas(table, monkeypatch):
    boto3.client("s3").create_bucket(Bucket="sluice-data")
    monkeypatch.setenv("DATA_BUCKET", "sluice-data")
    pipelines, runs = load_area("pipelines").handler, load_area("runs").handler
    status, created = invoke(
        pipelines, "POST", "/api/v1/pipelines", {"name": "orders", "nodes": NODES, "edges": EDGES}, EDITOR
    )
    assert status == 201, created
    return runs, created["data"]


def trigger_routes(pipeline: dict) -> list[str]:
    return [
        f"/api/pipelines/{pipeline['id']}/run",
        f"/api/pipelines/{pipeline['id']}/dry-run",
        f"/api/v1/pipelines/{pipeline['name']}/runs",
        f"/api/v1/pipelines/{pipeline['name']}/run",
        "/api/pipeline/run",
    ]


@pytest.mark.parametrize("body", MALFORMED.values(), ids=MALFORMED.keys())
def test_a_trigger_body_that_is_not_json_is_422_with_a_sentence_and_writes_nothing(areas, writes, body):
    runs, pipeline = areas
    writes.clear()
    for path in trigger_routes(pipeline):
        status, answer = invoke(runs, "POST", path, principal=EDITOR, raw_body=body)
        assert status == 422, (path, answer)
        (error,) = answer["detail"]
        assert error["loc"] == ["body"] and error["msg"].startswith("Request body is not valid JSON: "), error
    assert not writes


def test_an_empty_trigger_body_means_the_defaults_but_the_flow_trigger_needs_one(areas):
    runs, pipeline = areas
    status, nodes = invoke(runs, "POST", f"/api/pipelines/{pipeline['id']}/dry-run", principal=EDITOR)
    assert status == 200 and nodes["out"]["status"] == "success", nodes
    status, answer = invoke(runs, "POST", "/api/pipeline/run", principal=EDITOR)
    assert status == 422 and answer["detail"][0]["msg"] == "Request body is required.", answer
