"""The run engine end to end: triggers through the gateway, the run queue, the dispatcher, the Run
state machine interpreted by moto, node Lambdas doing real DuckDB work on S3, and the Runs API."""

from __future__ import annotations

import json

import pytest

from tests.e2e.conftest import eventually, moto_client

FINISHED = ("success", "failed", "cancelled")


@pytest.fixture
def editor(stack, project_admin):
    project, key = project_admin
    client = stack.client(key)
    client.project = project
    yield client
    client.close()


def create_pipeline(client, name: str, nodes: list, edges: list, **extra) -> dict:
    created = client.post("/api/v1/pipelines", json={"name": name, "nodes": nodes, "edges": edges, **extra})
    assert created.status_code == 201, created.text
    return created.json()["data"]


def wait_finished(client, run_id: str, timeout: float = 60) -> dict:
    def done():
        run = client.get(f"/api/runs/{run_id}").json()
        return run if run.get("status") in FINISHED else None

    return eventually(done, timeout=timeout, interval=0.2)


def nodes_by_id(run: dict) -> dict:
    return {n["node_id"]: n for n in run["node_runs"]}


INLINE_ROWS = [
    {"id": 1, "name": "ada", "amount": 10},
    {"id": 2, "name": "bob", "amount": 25},
    {"id": 3, "name": "cy", "amount": 40},
    {"id": 4, "name": "dee", "amount": 5},
]


def three_nodes(dataset: str, sql: str = "SELECT id, name, amount * 2 AS doubled FROM src WHERE amount > 8"):
    nodes = [
        {"id": "src", "nodeType": "source", "config": {"kind": "inline", "rows": INLINE_ROWS}},
        {"id": "shape", "nodeType": "transform", "config": {"sql": sql}},
        {"id": "out", "nodeType": "target", "config": {"kind": "dataset", "name": dataset, "mode": "overwrite"}},
    ]
    edges = [{"source": "src", "target": "shape"}, {"source": "shape", "target": "out"}]
    return nodes, edges


def test_three_node_pipeline_writes_a_dataset_a_second_pipeline_reads(editor):
    # Given inline source -> SQL transform -> dataset target
    nodes, edges = three_nodes("big_spenders")
    pipeline = create_pipeline(editor, "writer", nodes, edges)

    # When it is triggered
    triggered = editor.post(f"/api/pipelines/{pipeline['id']}/run", json={"params": {"date": "2024-01-15"}})
    assert triggered.status_code == 202, triggered.text
    body = triggered.json()
    assert body["status"] == "pending" and body["id"].startswith("run-") and body["pipeline_id"] == pipeline["id"]

    # Then it succeeds with the right row counts
    run = wait_finished(editor, body["id"])
    assert run["status"] == "success", run
    counts = {n["node_id"]: (n["status"], n["row_count"]) for n in run["node_runs"]}
    assert counts == {"src": ("success", 4), "shape": ("success", 3), "out": ("success", 3)}
    assert all(n["id"].startswith("nr-") and n["duration_ms"] is not None for n in run["node_runs"])
    assert run["params"] == {"date": "2024-01-15"}

    # The run is an execution with Watcher's metrics
    number = int(body["id"].removeprefix("run-"))
    execution = editor.get(f"/pipeline_execution/{number}").json()
    assert execution["completed_successfully"] is True
    assert execution["total_rows"] == 3 and execution["inserts"] == 3

    # The preview and the profile of a node
    preview = editor.get(f"/api/runs/{body['id']}/nodes/shape/preview").json()
    assert preview["columns"] and sorted(r["doubled"] for r in preview["rows"]) == [20, 50, 80]
    profile = editor.get(f"/api/runs/{body['id']}/nodes/shape/profile")
    assert profile.status_code == 200

    # Logs, filtered by node and level, and exported
    logs = editor.get(f"/api/runs/{body['id']}/logs", params={"node_id": "shape"}).json()
    assert logs and {line["node_id"] for line in logs} == {"shape"}
    assert all(line["run_id"] == body["id"] for line in logs)
    assert editor.get(f"/api/runs/{body['id']}/logs", params={"level": "error"}).json() == []
    exported = editor.get(f"/api/runs/{body['id']}/logs/export")
    assert exported.headers["content-type"].startswith("text/plain")
    assert "attachment" in exported.headers["content-disposition"]
    ndjson = editor.get(f"/api/runs/{body['id']}/logs/export", params={"format": "ndjson"})
    assert [json.loads(x)["node_id"] for x in ndjson.text.splitlines()][0] == "src"

    # And a second pipeline reads the dataset back
    reader = create_pipeline(
        editor,
        "reader",
        [
            {"id": "ds", "nodeType": "source", "config": {"kind": "dataset", "name": "big_spenders"}},
            {"id": "total", "nodeType": "transform", "config": {"sql": "SELECT sum(doubled) AS s, count(*) AS n FROM ds"}},
        ],
        [{"source": "ds", "target": "total"}],
    )
    second = editor.post(f"/api/pipelines/{reader['id']}/run", json={}).json()
    done = wait_finished(editor, second["id"])
    assert done["status"] == "success", done
    rows = editor.get(f"/api/runs/{second['id']}/nodes/total/preview").json()["rows"]
    assert rows == [{"s": 150, "n": 3}]

    # Listing: newest first
    listed = editor.get(f"/api/pipelines/{pipeline['id']}/runs").json()
    assert [r["id"] for r in listed] == [body["id"]]
