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


# -- seed 000 -----------------------------------------------------------------------------------------
def flow_pipeline(client, name: str, reads: list[str], writes: str, sql: str | None = None) -> dict:
    """A pipeline reading datasets `reads` (or inline rows) and writing dataset `writes`."""
    if reads:
        nodes = [{"id": r, "nodeType": "source", "config": {"kind": "dataset", "name": r}} for r in reads]
        sql = sql or " UNION ALL ".join(f"SELECT id, amount FROM {r}" for r in reads)
    else:
        nodes = [{"id": "rows", "nodeType": "source", "config": {"kind": "inline", "rows": INLINE_ROWS}}]
        sql = sql or "SELECT id, amount FROM rows"
    nodes += [
        {"id": "shape", "nodeType": "transform", "config": {"sql": sql}},
        {
            "id": "out",
            "nodeType": "target",
            "config": {"kind": "dataset", "name": writes, "mode": "overwrite"},
        },
    ]
    edges = [{"source": n["id"], "target": "shape"} for n in nodes[:-2]] + [
        {"source": "shape", "target": "out"}
    ]
    return create_pipeline(client, name, nodes, edges)


@pytest.fixture
def diamond(editor):
    """raw -> (left, right) -> joined, linked by datasets; `lonely` stands apart."""
    flow_pipeline(editor, "raw", [], "d_raw")
    flow_pipeline(editor, "left", ["d_raw"], "d_left", "SELECT id, amount FROM d_raw WHERE amount > 8")
    flow_pipeline(editor, "right", ["d_raw"], "d_right", "SELECT id, amount FROM d_raw WHERE amount <= 8")
    flow_pipeline(editor, "joined", ["d_left", "d_right"], "d_joined")
    flow_pipeline(editor, "lonely", [], "d_lonely")
    return editor


def flow_run(client, target: dict, scope: str) -> tuple[str, dict]:
    triggered = client.post("/api/pipeline/run", json={"target": target, "scope": scope})
    assert triggered.status_code == 202, triggered.text
    run_id = triggered.json()["run_id"]
    assert run_id.startswith("run-")

    def done():
        details = client.get(f"/api/pipeline/runs/{run_id}/details").json()
        return details if details["status"] in FINISHED else None

    return run_id, eventually(done, timeout=120, interval=0.2)


def test_seed_000_scopes_walk_the_flow_graph_and_children_run_in_dependency_order(diamond):
    client = diamond
    cases = {
        ("dataset", "d_raw", "downstream"): {"raw", "left", "right", "joined"},  # writes every dataset
        ("pipeline", "left", "single"): {"left"},
        ("pipeline", "left", "upstream"): {"raw", "left"},
        ("pipeline", "left", "downstream"): {"left", "joined"},
        ("pipeline", "left", "full"): {"raw", "left", "joined"},
        ("pipeline", "joined", "upstream"): {"raw", "left", "right", "joined"},
    }
    parents = []
    for (kind, name, scope), expected in cases.items():
        run_id, details = flow_run(client, {"type": kind, "name": name}, scope)
        parents.append(run_id)
        assert details["status"] == "success", details
        assert details["exit_status"] == 0 and details["parameters"]["scope"] == scope
        assert details["parameters"]["target"] == {"type": kind, "name": name}
        children = details["children"]
        assert {c["pipeline"] for c in children} == expected, (kind, name, scope)
        assert all(c["parent_id"] == run_id and c["status"] == "success" for c in children)
        assert len(details["compiled_sql"]) == len(expected)

    # Dependency order in the widest case: a child starts only after everything it reads finished.
    _, details = flow_run(client, {"type": "dataset", "name": "d_raw"}, "downstream")
    child = {c["pipeline"]: c for c in details["children"]}
    assert child["raw"]["finished_at"] <= child["left"]["started_at"]
    assert child["raw"]["finished_at"] <= child["right"]["started_at"]
    assert max(child["left"]["finished_at"], child["right"]["finished_at"]) <= child["joined"]["started_at"]
    # Details: compiled SQL, stdout, downstream lineage of what the flow wrote
    assert any("amount > 8" in c["sql"] for c in details["compiled_sql"])
    assert "shape" in details["stdout"] and details["stdout"].endswith("\n")
    lineage = {
        entry["dataset"]: [r["name"] for r in entry["read_by"]] for entry in details["downstream_lineage"]
    }
    assert lineage["d_raw"] == ["left", "right"] and lineage["d_joined"] == []
    rows = client.get(f"/api/runs/{child['joined']['run_id']}/nodes/out/preview").json()["rows"]
    assert len(rows) == 4  # 3 rows above 8, 1 at or below

    # A child's own details: its pipeline's lineage, its parent
    own = client.get(f"/api/pipeline/runs/{child['raw']['run_id']}/details").json()
    assert own["parent_id"] == details["run_id"] and own["children"] == []
    assert [r["name"] for r in own["downstream_lineage"][0]["read_by"]] == ["left", "right"]

    # The Watcher execution of the parent has the children
    number = int(details["run_id"].removeprefix("run-"))
    execution = client.get(f"/pipeline_execution/{number}").json()
    assert len(execution["child_executions"]) == 4


def test_seed_000_a_failing_child_fails_the_parent_and_later_levels_never_start(editor):
    flow_pipeline(editor, "base", [], "f_base")
    flow_pipeline(editor, "broken", ["f_base"], "f_broken", "SELECT no_such_column FROM f_base")
    flow_pipeline(editor, "after", ["f_broken"], "f_after")
    run_id, details = flow_run(editor, {"type": "pipeline", "name": "base"}, "downstream")
    assert details["status"] == "failed" and details["exit_status"] == 1
    assert "broken" in details["error"]
    assert {c["pipeline"]: c["status"] for c in details["children"]} == {
        "base": "success",
        "broken": "failed",
    }


def test_seed_000_run_history_filters_and_sorts(diamond):
    client = diamond
    first, _ = flow_run(client, {"type": "pipeline", "name": "lonely"}, "single")
    second, _ = flow_run(client, {"type": "pipeline", "name": "raw"}, "single")
    listed = client.get("/api/pipeline/runs")
    assert listed.status_code == 200
    runs = listed.json()
    created = [r["created_at"] for r in runs]
    assert created == sorted(created, reverse=True)
    ids = [r["run_id"] for r in runs]
    assert second in ids and first in ids and ids.index(second) < ids.index(first)
    assert all(r["status"] == "success" for r in client.get("/api/pipeline/runs?status=success").json())
    assert client.get("/api/pipeline/runs?status=queued").status_code == 200
    assert client.get("/api/pipeline/runs?recipe_type=pipeline").json()
    assert client.get("/api/pipeline/runs?recipe_type=embed").json() == []
    assert client.get("/api/pipeline/runs?since=2999-01-01T00:00:00Z").json() == []
    recent = client.get(
        "/api/pipeline/runs", params={"since": runs[0]["created_at"][:19] + "+00:00", "limit": 100}
    )
    assert recent.status_code == 200
    assert client.get("/api/pipeline/runs?status=weird").status_code == 422
    assert client.get("/api/pipeline/runs?since=yesterday-ish").status_code == 422


def test_seed_000_bad_targets(editor):
    create_pipeline(editor, "solo", *chain(2))
    recipe = editor.post(
        "/api/pipeline/run", json={"target": {"type": "recipe", "name": "m"}, "scope": "single"}
    )
    assert recipe.status_code == 404 and "recipe" in recipe.json()["detail"]
    missing = editor.post("/api/pipeline/run", json={"target": {"type": "pipeline", "name": "nope"}})
    assert missing.status_code == 404
    nowhere = editor.post("/api/pipeline/run", json={"target": {"type": "dataset", "name": "never_written"}})
    assert nowhere.status_code == 404 and "never_written" in nowhere.json()["detail"]
    wrong = editor.post(
        "/api/pipeline/run", json={"target": {"type": "pipeline", "name": "solo"}, "scope": "all"}
    )
    assert wrong.status_code == 422
    assert editor.get("/api/pipeline/runs/run-999999/details").status_code == 404


def test_seed_000_cancelling_the_parent_cancels_its_children_and_starts_no_level(editor):
    nodes, edges = chain(20)
    nodes.append({"id": "out", "nodeType": "target", "config": {"kind": "dataset", "name": "c_slow"}})
    edges.append({"source": "n19", "target": "out"})
    create_pipeline(editor, "slow", nodes, edges, executionConfig={"parallelism": 1})
    flow_pipeline(editor, "reads-slow", ["c_slow"], "c_after")
    triggered = editor.post(
        "/api/pipeline/run", json={"target": {"type": "pipeline", "name": "slow"}, "scope": "downstream"}
    )
    assert triggered.status_code == 202, triggered.text
    assert triggered.json()["pipelines"] == [["slow"], ["reads-slow"]]
    run_id = triggered.json()["run_id"]

    def first_child_running():
        children = editor.get(f"/api/pipeline/runs/{run_id}/details").json()["children"]
        return children and children[0]["status"] == "running"

    eventually(first_child_running, timeout=60, interval=0.1)
    cancelled = editor.post(f"/api/runs/{run_id}/cancel")
    assert cancelled.status_code == 200, cancelled.text

    def finished():
        details = editor.get(f"/api/pipeline/runs/{run_id}/details").json()
        return details if details["status"] in FINISHED else None

    details = eventually(finished, timeout=60, interval=0.2)
    assert details["status"] == "cancelled" and details["exit_status"] == 130
    assert [(c["pipeline"], c["status"]) for c in details["children"]] == [("slow", "cancelled")]
