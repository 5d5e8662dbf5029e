"""The run triggers of seeds 001, 003 and 000 end to end through the local stack: seed 001's runs by
pipeline name (full_refresh, dry_run, variables, progress), seed 003's run by id, and seed 000's
scoped runs over the project's flow graph with their run history and details."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import eventually, jwt_for
from tests.e2e.test_runs import INLINE_ROWS, create_pipeline, wait_finished

FINISHED = ("success", "failed", "cancelled")


@pytest.fixture
def editor(stack, project_admin):
    project, key = project_admin
    client = stack.client(key)
    client.project = project
    yield client
    client.close()


def chain(length: int, sql_of_first: str = "SELECT * FROM n0") -> tuple[list, list]:
    nodes = [{"id": "n0", "nodeType": "source", "config": {"kind": "inline", "rows": INLINE_ROWS}}]
    edges = []
    for i in range(1, length):
        sql = sql_of_first if i == 1 else f"SELECT * FROM n{i - 1}"
        nodes.append({"id": f"n{i}", "nodeType": "transform", "config": {"sql": sql}})
        edges.append({"source": f"n{i - 1}", "target": f"n{i}"})
    return nodes, edges


def v1_run(client, name: str, run_id: str) -> dict:
    got = client.get(f"/api/v1/pipelines/{name}/runs/{run_id}")
    assert got.status_code == 200, got.text
    return got.json()["data"]


def v1_wait(client, name: str, run_id: str, timeout: float = 60) -> tuple[dict, list[dict]]:
    """Poll seed 001's run until it ends; (the finished run, every view seen on the way)."""
    seen: list[dict] = []

    def done():
        view = v1_run(client, name, run_id)
        seen.append(view)
        return view if view["status"] in FINISHED else None

    return eventually(done, timeout=timeout, interval=0.05), seen


# -- seed 001 -----------------------------------------------------------------------------------------
def test_seed_001_run_by_name_has_progress_that_moves_and_lists_newest_first(editor):
    nodes, edges = chain(8)
    create_pipeline(editor, "user-analytics", nodes, edges, executionConfig={"parallelism": 1})

    triggered = editor.post("/api/v1/pipelines/user-analytics/runs", json={"full_refresh": True})
    assert triggered.status_code == 202, triggered.text
    data = triggered.json()["data"]
    assert set(data) >= {"id", "pipeline", "status", "started_at", "progress"}
    assert data["id"].startswith("run-") and data["pipeline"] == "user-analytics"
    assert data["status"] == "pending" and data["started_at"].endswith("Z")
    assert data["progress"] == {"stage": "queued", "rows_processed": 0}
    assert data["full_refresh"] is True

    run, seen = v1_wait(editor, "user-analytics", data["id"])
    assert run["status"] == "success", run
    assert run["progress"]["stage"] == "done" and run["progress"]["rows_processed"] > 0
    # The progress moved while the run went: some view mid-run had rows processed but was not done.
    moving = [v for v in seen if v["status"] == "running" and v["progress"]["rows_processed"] > 0]
    assert moving, [(v["status"], v["progress"]) for v in seen]
    assert all(
        moving[i]["progress"]["rows_processed"] <= moving[i + 1]["progress"]["rows_processed"]
        for i in range(len(moving) - 1)
    )
    assert len(run["node_runs"]) == 8

    second = editor.post("/api/v1/pipelines/user-analytics/runs", json={}).json()["data"]
    v1_wait(editor, "user-analytics", second["id"])
    listed = editor.get("/api/v1/pipelines/user-analytics/runs")
    assert listed.status_code == 200
    assert [r["id"] for r in listed.json()["data"]] == [second["id"], data["id"]]
    assert listed.json()["data"][1]["full_refresh"] is True


def test_seed_001_variables_override_a_node_config_for_that_run_only(editor):
    put = editor.put("/api/v1/variables/MIN_AMOUNT", json={"value": "30"})
    assert put.status_code in (200, 201), put.text
    nodes = [
        {"id": "src", "nodeType": "source", "config": {"kind": "inline", "rows": INLINE_ROWS}},
        {
            "id": "big",
            "nodeType": "transform",
            "config": {"sql": "SELECT * FROM src WHERE amount > ${var.MIN_AMOUNT}"},
        },
    ]
    create_pipeline(editor, "thresholds", nodes, [{"source": "src", "target": "big"}])

    overridden = editor.post("/api/v1/pipelines/thresholds/runs", json={"variables": {"MIN_AMOUNT": 8}})
    assert overridden.status_code == 202, overridden.text
    run, _ = v1_wait(editor, "thresholds", overridden.json()["data"]["id"])
    counts = {n["node_id"]: n["row_count"] for n in run["node_runs"]}
    assert run["status"] == "success" and counts["big"] == 3  # 10, 25, 40 > 8

    plain = editor.post("/api/v1/pipelines/thresholds/runs", json={}).json()["data"]
    run, _ = v1_wait(editor, "thresholds", plain["id"])
    assert {n["node_id"]: n["row_count"] for n in run["node_runs"]}["big"] == 1  # only 40 > 30


def test_seed_001_dry_run_answers_the_nodes_and_records_nothing(editor):
    nodes, edges = chain(3)
    create_pipeline(editor, "dry", nodes, edges)
    dry = editor.post("/api/v1/pipelines/dry/runs", json={"dry_run": True})
    assert dry.status_code == 200, dry.text
    data = dry.json()["data"]
    assert data["id"] is None and data["dry_run"] is True and data["status"] == "success"
    assert list(data["nodes"]) == ["n0", "n1", "n2"]
    assert editor.get("/api/v1/pipelines/dry/runs").json()["data"] == []


def test_seed_001_unknown_pipeline_and_foreign_run_are_404(editor):
    missing = editor.post("/api/v1/pipelines/nope/runs", json={})
    assert missing.status_code == 404 and "nope" in missing.json()["detail"]
    nodes, edges = chain(2)
    create_pipeline(editor, "one", nodes, edges)
    create_pipeline(editor, "two", nodes, edges)
    run_id = editor.post("/api/v1/pipelines/one/runs", json={}).json()["data"]["id"]
    other = editor.get(f"/api/v1/pipelines/two/runs/{run_id}")
    assert other.status_code == 404 and "two" in other.json()["detail"]
    wrong = editor.post("/api/v1/pipelines/one/runs", json={"variables": "x"})
    assert wrong.status_code == 422


# -- seed 003 -----------------------------------------------------------------------------------------
def test_seed_003_run_by_id_is_201_and_lists_the_last_20_newest_first(stack, editor):
    nodes, edges = chain(2)
    pipeline = create_pipeline(editor, "by-id", nodes, edges)
    pid = pipeline["id"]
    assert pid.startswith("pipeline-")

    created = editor.post(f"/api/v1/pipelines/{pid}/run")
    assert created.status_code == 201, created.text
    data = created.json()["data"]
    assert data["id"].startswith("run-") and data["status"] == "pending"
    assert data["pipeline_id"] == pid and data["pipeline"] == "by-id"
    by_number = editor.post(f"/api/v1/pipelines/{pid.removeprefix('pipeline-')}/run")
    assert by_number.status_code == 201

    run_ids = [data["id"], by_number.json()["data"]["id"]]
    for _ in range(20):
        run_ids.append(editor.post(f"/api/v1/pipelines/{pid}/run").json()["data"]["id"])
    listed = editor.get(f"/api/v1/pipelines/{pid}/runs")
    assert listed.status_code == 200
    got = [r["id"] for r in listed.json()["data"]]
    assert got == list(reversed(run_ids))[:20]
    # The same route by name
    assert [r["id"] for r in editor.get("/api/v1/pipelines/by-id/runs").json()["data"]] == got

    # Roles: a viewer lists, an editor runs, a viewer may not
    with stack.client(jwt_for(editor.project, "viewer")) as viewer:
        assert viewer.get(f"/api/v1/pipelines/{pid}/runs").status_code == 200
        refused = viewer.post(f"/api/v1/pipelines/{pid}/run")
        assert refused.status_code == 403 and refused.json()["detail"]
    assert editor.post("/api/v1/pipelines/pipeline-999999/run").status_code == 404
    for run_id in run_ids:
        wait_finished(editor, run_id, timeout=120)
