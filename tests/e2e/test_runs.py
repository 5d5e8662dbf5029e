"""The run engine end to end: triggers through the gateway, the run queue, the dispatcher, the Run
state machine interpreted by moto, node Lambdas doing real DuckDB work on S3, and the Runs API."""

from __future__ import annotations

import json
import time

import httpx
import pendulum
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
        {
            "id": "out",
            "nodeType": "target",
            "config": {"kind": "dataset", "name": dataset, "mode": "overwrite"},
        },
    ]
    edges = [{"source": "src", "target": "shape"}, {"source": "shape", "target": "out"}]
    return nodes, edges


def test_three_node_pipeline_writes_a_dataset_a_second_pipeline_reads(stack, editor):
    # Given inline source -> SQL transform -> dataset target
    nodes, edges = three_nodes("big_spenders")
    pipeline = create_pipeline(editor, "writer", nodes, edges)

    # When it is triggered
    triggered = editor.post(f"/api/pipelines/{pipeline['id']}/run", json={"params": {"date": "2024-01-15"}})
    assert triggered.status_code == 202, triggered.text
    body = triggered.json()
    assert (
        body["status"] == "pending"
        and body["id"].startswith("run-")
        and body["pipeline_id"] == pipeline["id"]
    )

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
            {
                "id": "total",
                "nodeType": "transform",
                "config": {"sql": "SELECT sum(doubled) AS s, count(*) AS n FROM ds"},
            },
        ],
        [{"source": "ds", "target": "total"}],
    )
    second = editor.post(f"/api/pipelines/{reader['id']}/run", json={}).json()
    done = wait_finished(editor, second["id"])
    assert done["status"] == "success", done
    rows = editor.get(f"/api/runs/{second['id']}/nodes/total/preview").json()["rows"]
    assert rows == [{"s": 150, "n": 3}]

    # The dataset is an address, and both lineage views link the two pipelines through it
    def recorded_graph():  # recorded as the run ends, just after its status is written
        found = editor.get("/api/lineage").json()
        recorded = {(e["source"], e["target"], e["type"]) for e in found["edges"] if e.get("recorded")}
        return found if ("dataset:big_spenders", reader["id"], "reads") in recorded else None

    graph = eventually(recorded_graph)
    edges = {(e["source"], e["target"], e["type"]): e for e in graph["edges"]}
    written = edges[(pipeline["id"], "dataset:big_spenders", "writes")]
    read = edges[("dataset:big_spenders", reader["id"], "reads")]
    assert written["recorded"] and written["declared"] and read["recorded"] and read["declared"]
    assert graph["shared_datasets"] == [
        {
            "dataset": "dataset:big_spenders",
            "name": "big_spenders",
            "writers": [pipeline["id"]],
            "readers": [reader["id"]],
        }
    ]
    address_id = {n["id"]: n for n in graph["nodes"]}["dataset:big_spenders"]["address_id"]
    assert editor.get(f"/address/{address_id}").json()["name"] == "big_spenders"

    # Listing: newest first
    listed = editor.get(f"/api/pipelines/{pipeline['id']}/runs").json()
    assert [r["id"] for r in listed] == [body["id"]]

    # The runs' objects (node outputs, previews, profiles, logs, the dataset), read back above, are
    # in files rather than in the stack's memory (moto_adapter.SpilledKeyStore)
    def spilled():
        objects = httpx.get(f"{stack.base_url}/_local/stats", timeout=30).json()["s3_objects"]
        return objects if objects["on_disk"] >= 13 and objects["in_memory"] == 0 else None

    eventually(spilled)


def table_name(stack) -> str:
    names = moto_client(stack, "dynamodb").list_tables()["TableNames"]
    return next(n for n in names if "Table" in n)


def running_slots(stack, project: str) -> int:
    item = (
        moto_client(stack, "dynamodb")
        .get_item(
            TableName=table_name(stack),
            Key={"PK": {"S": f"P#{project}"}, "SK": {"S": "SLOTS"}},
            ConsistentRead=True,
        )
        .get("Item")
    )
    return int(item["running"]["N"]) if item else 0


def test_s3_csv_source_and_parquet_target(stack, editor):
    s3 = moto_client(stack, "s3")
    s3.create_bucket(Bucket=f"in-{editor.project}")
    s3.put_object(Bucket=f"in-{editor.project}", Key="orders.csv", Body=b"id,amount\n1,10\n2,20\n3,30\n")
    pipeline = create_pipeline(
        editor,
        "csv-to-parquet",
        [
            {
                "id": "orders",
                "nodeType": "source",
                "config": {"kind": "s3", "uri": f"s3://in-{editor.project}/orders.csv", "format": "csv"},
            },
            {"id": "big", "nodeType": "filter", "config": {"condition": "amount >= 20"}},
            {
                "id": "file",
                "nodeType": "target",
                "config": {
                    "kind": "s3",
                    "uri": f"s3://in-{editor.project}/out/big.parquet",
                    "format": "parquet",
                },
            },
        ],
        [{"source": "orders", "target": "big"}, {"source": "big", "target": "file"}],
    )
    run = wait_finished(editor, editor.post(f"/api/pipelines/{pipeline['id']}/run", json={}).json()["id"])
    assert run["status"] == "success", run
    assert nodes_by_id(run)["file"]["row_count"] == 2
    body = s3.get_object(Bucket=f"in-{editor.project}", Key="out/big.parquet")["Body"].read()
    assert body[:4] == b"PAR1"


def test_failing_transform_fails_the_run_and_resume_reuses_the_source(editor):
    nodes, edges = three_nodes("fixed_later", sql="SELECT no_such_column FROM src")
    create_pipeline(editor, "fragile", nodes, edges)
    pipeline = editor.get("/api/v1/pipelines/fragile").json()["data"]
    run = wait_finished(editor, editor.post(f"/api/pipelines/{pipeline['id']}/run").json()["id"])
    assert run["status"] == "failed"
    assert "no_such_column" in run["error"]
    by_id = nodes_by_id(run)
    assert by_id["src"]["status"] == "success"
    assert by_id["shape"]["status"] == "failed" and "no_such_column" in by_id["shape"]["error"]
    assert by_id["out"]["status"] == "skipped" and by_id["out"]["started_at"] is None
    preview = editor.get(f"/api/runs/{run['id']}/nodes/out/preview")
    assert preview.status_code == 404 and "did not run" in preview.json()["detail"]

    # A run that did not fail cannot be resumed... and this one can, once the SQL is fixed
    fixed, _ = three_nodes("fixed_later")
    updated = editor.put(
        "/api/v1/pipelines/fragile", json={"name": "fragile", "nodes": fixed, "edges": edges}
    )
    assert updated.status_code == 200, updated.text
    resumed = editor.post(f"/api/runs/{run['id']}/resume")
    assert resumed.status_code == 202, resumed.text
    assert resumed.json()["resumed_from"] == run["id"]
    again = wait_finished(editor, resumed.json()["id"])
    assert again["status"] == "success", again
    by_id = nodes_by_id(again)
    assert by_id["src"]["status"] == "reused" and by_id["src"]["reused_from"] == run["id"]
    assert by_id["shape"]["row_count"] == 3 and by_id["out"]["row_count"] == 3
    source_logs = editor.get(f"/api/runs/{again['id']}/logs", params={"node_id": "src"}).json()
    assert source_logs == []  # the source was not executed again
    refused = editor.post(f"/api/runs/{again['id']}/resume")
    assert refused.status_code == 409 and "only failed runs" in refused.json()["detail"]


def test_cancel_of_a_long_run_lets_the_running_node_finish_and_starts_no_other(editor):
    nodes = [{"id": "n0", "nodeType": "source", "config": {"kind": "inline", "rows": INLINE_ROWS}}]
    edges = []
    for i in range(1, 25):
        nodes.append({"id": f"n{i}", "nodeType": "transform", "config": {"sql": f"SELECT * FROM n{i - 1}"}})
        edges.append({"source": f"n{i - 1}", "target": f"n{i}"})
    pipeline = create_pipeline(editor, "long-chain", nodes, edges, executionConfig={"parallelism": 1})
    run_id = editor.post(f"/api/pipelines/{pipeline['id']}/run").json()["id"]
    eventually(
        lambda: (
            nodes_by_id(editor.get(f"/api/runs/{run_id}").json()).get("n1", {}).get("status") == "success"
        ),
        timeout=60,
    )
    cancelled = editor.post(f"/api/runs/{run_id}/cancel")
    assert cancelled.status_code == 200 and cancelled.json() == {"status": "cancelled"}
    run = wait_finished(editor, run_id)
    assert run["status"] == "cancelled"
    statuses = [n["status"] for n in run["node_runs"]]
    assert statuses[-1] in ("cancelled", "skipped")
    assert "running" not in statuses and "pending" not in statuses
    again = editor.post(f"/api/runs/{run_id}/cancel")
    assert again.status_code == 409


def test_dry_run_leaves_no_trace(editor):
    nodes, edges = three_nodes("never_written")
    pipeline = create_pipeline(editor, "dry", nodes, edges)
    result = editor.post(f"/api/pipelines/{pipeline['id']}/dry-run")
    assert result.status_code == 200, result.text
    found = result.json()
    assert list(found) == ["src", "shape", "out"]
    assert found["shape"]["status"] == "success" and found["shape"]["columns"] == ["id", "name", "doubled"]
    assert len(found["shape"]["rows"]) == 3
    assert editor.get(f"/api/pipelines/{pipeline['id']}/runs").json() == []
    # Nothing was written: a pipeline reading the dataset fails for want of it
    reader = create_pipeline(
        editor,
        "dry-reader",
        [{"id": "ds", "nodeType": "source", "config": {"kind": "dataset", "name": "never_written"}}],
        [],
    )
    run = wait_finished(editor, editor.post(f"/api/pipelines/{reader['id']}/run").json()["id"])
    assert run["status"] == "failed" and "never_written" in run["error"]


def test_at_most_max_concurrent_runs_run_and_all_finish(stack, editor):
    limited = editor.patch("/api/system/settings", json={"max_concurrent_runs": 2})
    assert limited.status_code == 200, limited.text
    nodes = [{"id": "n0", "nodeType": "source", "config": {"kind": "inline", "rows": INLINE_ROWS}}]
    edges = []
    for i in range(1, 4):
        nodes.append({"id": f"n{i}", "nodeType": "transform", "config": {"sql": f"SELECT * FROM n{i - 1}"}})
        edges.append({"source": f"n{i - 1}", "target": f"n{i}"})
    pipeline = create_pipeline(editor, "busy", nodes, edges)
    run_ids = [editor.post(f"/api/pipelines/{pipeline['id']}/run").json()["id"] for _ in range(5)]
    most_slots = 0
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        # The slot counter is one item, read atomically; five status reads in a row are not a
        # snapshot (a run seen running may have ended before the last read), so concurrency by
        # status is judged afterwards, from the node runs' own times.
        most_slots = max(most_slots, running_slots(stack, editor.project))
        runs = [editor.get(f"/api/runs/{r}").json() for r in run_ids]
        if all(run["status"] in FINISHED for run in runs):
            break
        time.sleep(0.1)
    assert [run["status"] for run in runs] == ["success"] * 5
    assert 1 <= most_slots <= 2
    assert running_slots(stack, editor.project) == 0
    # Each run's nodes ran inside its slot: at no instant were more than 2 runs' nodes at work
    spans = []
    for run in runs:
        starts = [pendulum.parse(node["started_at"]) for node in run["node_runs"]]
        ends = [pendulum.parse(node["finished_at"]) for node in run["node_runs"]]
        spans.append((min(starts), max(ends)))
    edges = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    at_once = most = 0
    for _, step in edges:  # at equal times an end (-1) sorts before a start (+1)
        at_once += step
        most = max(most, at_once)
    assert 1 <= most <= 2, spans


def test_scopes_select_the_nodes_of_a_diamond(editor):
    rows = [{"v": 1}, {"v": 2}]
    nodes = [
        {"id": "a", "nodeType": "source", "config": {"kind": "inline", "rows": rows}},
        {"id": "b", "nodeType": "transform", "config": {"sql": "SELECT v + 1 AS v FROM a"}},
        {"id": "c", "nodeType": "transform", "config": {"sql": "SELECT v + 2 AS v FROM a"}},
        {"id": "d", "nodeType": "transform", "config": {"sql": "SELECT * FROM b UNION ALL SELECT * FROM c"}},
    ]
    edges = [
        {"source": "a", "target": "b"},
        {"source": "a", "target": "c"},
        {"source": "b", "target": "d"},
        {"source": "c", "target": "d"},
    ]
    pipeline = create_pipeline(editor, "diamond", nodes, edges)

    def ran(scope: str, node: str | None) -> set[str]:
        body = {"scope": scope, **({"node": node} if node else {})}
        run = wait_finished(
            editor, editor.post(f"/api/pipelines/{pipeline['id']}/run", json=body).json()["id"]
        )
        assert run["status"] == "success", run
        return {n["node_id"] for n in run["node_runs"] if n["status"] == "success"}

    assert ran("full", None) == {"a", "b", "c", "d"}
    assert ran("upstream", "b") == {"a", "b"}
    assert ran("downstream", "b") == {"b", "d"}
    assert ran("single", "c") == {"c"}
    assert ran("full", "b") == {"a", "b", "d"}
    refused = editor.post(f"/api/pipelines/{pipeline['id']}/run", json={"scope": "single"})
    assert refused.status_code == 422


def test_incremental_source_reads_only_new_rows_on_the_second_run(stack, editor):
    s3 = moto_client(stack, "s3")
    bucket = f"inc-{editor.project}"
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="events.csv", Body=b"id,amount\n1,10\n2,20\n")
    pipeline = create_pipeline(
        editor,
        "incremental",
        [
            {
                "id": "events",
                "nodeType": "source",
                "config": {
                    "kind": "s3",
                    "uri": f"s3://{bucket}/events.csv",
                    "format": "csv",
                    "watermark_column": "id",
                },
            },
            {
                "id": "sink",
                "nodeType": "target",
                "config": {"kind": "dataset", "name": "events", "mode": "append"},
            },
        ],
        [{"source": "events", "target": "sink"}],
    )
    first = wait_finished(editor, editor.post(f"/api/pipelines/{pipeline['id']}/run").json()["id"])
    assert first["status"] == "success" and nodes_by_id(first)["events"]["row_count"] == 2
    s3.put_object(Bucket=bucket, Key="events.csv", Body=b"id,amount\n1,10\n2,20\n3,30\n4,40\n5,50\n")
    second = wait_finished(editor, editor.post(f"/api/pipelines/{pipeline['id']}/run").json()["id"])
    assert second["status"] == "success" and nodes_by_id(second)["events"]["row_count"] == 3
    number = int(second["id"].removeprefix("run-"))
    assert editor.get(f"/pipeline_execution/{number}").json()["next_watermark"] == "5"
    full = wait_finished(
        editor, editor.post(f"/api/pipelines/{pipeline['id']}/run", json={"full_refresh": True}).json()["id"]
    )
    assert nodes_by_id(full)["events"]["row_count"] == 5


def test_idempotent_trigger(editor):
    nodes, edges = three_nodes("once")
    pipeline = create_pipeline(editor, "idempotent", nodes, edges)
    headers = {"Idempotency-Key": "nightly-2024-01-15"}
    first = editor.post(f"/api/pipelines/{pipeline['id']}/run", json={"params": {"d": 1}}, headers=headers)
    second = editor.post(f"/api/pipelines/{pipeline['id']}/run", json={"params": {"d": 1}}, headers=headers)
    assert first.status_code == 202 and second.status_code == 200
    assert first.json() == second.json()
    other = editor.post(f"/api/pipelines/{pipeline['id']}/run", json={"params": {"d": 2}}, headers=headers)
    assert other.status_code == 409 and "Idempotency-Key" in other.json()["detail"]
    wait_finished(editor, first.json()["id"])
    assert len(editor.get(f"/api/pipelines/{pipeline['id']}/runs").json()) == 1


def test_bad_input_is_refused_or_fails_the_run_cleanly(stack, editor):
    assert editor.post("/api/pipelines/pipeline-99999/run", json={}).status_code == 404
    assert editor.post("/api/pipelines/not-an-id/run", json={}).status_code == 404
    nodes, edges = three_nodes("paused_out")
    paused = create_pipeline(editor, "sleepy", nodes, edges, status="paused")
    refused = editor.post(f"/api/pipelines/{paused['id']}/run", json={})
    assert refused.status_code == 409 and "paused" in refused.json()["detail"]
    active = create_pipeline(editor, "awake", *three_nodes("awake_out"))
    assert editor.post(f"/api/pipelines/{active['id']}/run", json={"params": [1, 2]}).status_code == 422
    assert editor.get("/api/runs/run-99999").status_code == 404
    for body in ('{"params": {"x": NaN}}', '{"variables": {"x": -Infinity}}', "[" * 10_000 + "]" * 10_000):
        for path in (f"/api/pipelines/{active['id']}/run", f"/api/v1/pipelines/{active['name']}/runs"):
            refused = editor.post(path, content=body, headers={"Content-Type": "application/json"})
            assert refused.status_code == 422, refused.text
            assert refused.json()["detail"][0]["msg"].startswith("Request body is not valid JSON: ")
    assert editor.get(f"/api/pipelines/{active['id']}/runs").json() == []

    # An unreachable URL and a file that is not its declared format: the run fails with the reason
    s3 = moto_client(stack, "s3")
    bucket = f"bad-{editor.project}"
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="not.parquet", Body=b"id,amount\n1,2\n")
    cases = {
        "unreachable": ({"kind": "http", "url": "http://127.0.0.1:9/nothing.json"}, "127.0.0.1"),
        "wrong-format": ({"kind": "s3", "uri": f"s3://{bucket}/not.parquet", "format": "parquet"}, "parquet"),
    }
    for name, (config, expected) in cases.items():
        pipeline = create_pipeline(editor, name, [{"id": "src", "nodeType": "source", "config": config}], [])
        run = wait_finished(
            editor, editor.post(f"/api/pipelines/{pipeline['id']}/run").json()["id"], timeout=90
        )
        assert run["status"] == "failed" and expected in run["error"], run
    assert running_slots(stack, editor.project) == 0
