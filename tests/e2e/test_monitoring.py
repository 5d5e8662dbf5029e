"""Executions and monitoring over HTTP through the local stack: anomaly detection on the event bus,
timeliness and freshness through the check queue, alerts to a webhook, log cleanup (HTTP and the
Step Functions loop), the queue monitor."""

from __future__ import annotations

import json
import time

import pendulum
import pytest

from tests.e2e.conftest import eventually, jwt_for, moto_client, queue_backlog


def iso(moment: pendulum.DateTime) -> str:
    return moment.in_timezone("UTC").format("YYYY-MM-DDTHH:mm:ss") + "Z"


@pytest.fixture
def editor(stack, project_admin):
    project, _ = project_admin
    with stack.client(jwt_for(project, "editor")) as client:
        client.project = project
        yield client


def pipeline(client, name: str, **fields) -> int:
    response = client.post("/pipeline", json={"name": name, "pipeline_type_name": "batch", **fields})
    assert response.status_code == 201, response.text
    return response.json()["id"]


def run(
    client, pipeline_id: int, start: pendulum.DateTime, end: pendulum.DateTime | None = None, **metrics
) -> int:
    started = client.post(
        "/start_pipeline_execution",
        json={
            "pipeline_id": pipeline_id,
            "start_date": iso(start),
            **{k: metrics.pop(k) for k in ("parent_id", "watermark", "next_watermark") if k in metrics},
        },
    )
    assert started.status_code == 201, started.text
    execution = started.json()["id"]
    if end is not None:
        ended = client.post(
            "/end_pipeline_execution",
            json={
                "id": execution,
                "end_date": iso(end),
                "completed_successfully": metrics.pop("ok", True),
                **metrics,
            },
        )
        assert ended.status_code == 204, ended.text
    return execution


def flags(client, execution: int) -> dict:
    return client.get(f"/pipeline_execution/{execution}").json()["anomaly_flags"] or {}


def test_anomaly_detection_example_from_the_issue(editor, webhook):
    # Given a pipeline with a z=1.0 rule on total_rows and five baseline runs in one hour bucket
    etl = pipeline(editor, "anomaly-etl")
    rule = editor.post(
        "/anomaly_detection_rule",
        json={"pipeline_id": etl, "metric_field": "total_rows", "z_threshold": 1.0, "minimum_executions": 5},
    )
    assert rule.status_code == 201
    hour = pendulum.now("UTC").subtract(days=1).replace(hour=10, minute=0, second=0, microsecond=0)
    for i, rows in enumerate([10, 12, 14, 16, 18]):
        run(editor, etl, hour.add(minutes=i), hour.add(minutes=i, seconds=30), total_rows=rows)

    # When runs with 100 and 3 rows end, each is flagged (asynchronously, by the monitor function)
    high = run(editor, etl, hour.add(minutes=10), hour.add(minutes=11), total_rows=100)
    eventually(lambda: flags(editor, high).get("total_rows"))
    low = run(editor, etl, hour.add(minutes=12), hour.add(minutes=13), total_rows=3)
    eventually(lambda: flags(editor, low).get("total_rows"))
    assert len(eventually(lambda: webhook.alerts(editor.project, "anomaly", etl))) >= 1

    # And a run with 14 rows, or one in another hour bucket, is not
    normal = run(editor, etl, hour.add(minutes=14), hour.add(minutes=15), total_rows=14)
    other_hour = run(editor, etl, hour.add(hours=1), hour.add(hours=1, minutes=1), total_rows=100)
    time.sleep(3)  # detection takes milliseconds; give the bus and the monitor ample time
    assert not flags(editor, normal).get("total_rows")
    assert not flags(editor, other_hour).get("total_rows")
    assert len(webhook.alerts(editor.project, "anomaly", etl)) == 2

    # Unflagging clears the flag; unflagging again is 404
    body = {"pipeline_id": etl, "pipeline_execution_id": high, "metric_field": ["total_rows"]}
    assert editor.post("/unflag_anomaly", json=body).status_code == 204
    assert flags(editor, high).get("total_rows") is False
    assert editor.post("/unflag_anomaly", json=body).status_code == 404


def test_rules_are_validated_and_upserted(editor):
    etl = pipeline(editor, "rules-etl")
    first = editor.post(
        "/anomaly_detection_rule", json={"pipeline_id": etl, "metric_field": "duration_seconds"}
    )
    assert first.status_code == 201
    again = editor.post(
        "/anomaly_detection_rule",
        json={"pipeline_id": etl, "metric_field": "duration_seconds", "z_threshold": 9},
    )
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
    rule = editor.get(f"/anomaly_detection_rule/{first.json()['id']}").json()
    assert (rule["z_threshold"], rule["lookback_days"], rule["minimum_executions"], rule["active"]) == (
        3.0,
        30,
        30,
        True,
    )
    patched = editor.patch(
        "/anomaly_detection_rule", json={"id": rule["id"], "z_threshold": 2.5, "minimum_executions": 20}
    )
    assert patched.status_code == 200 and patched.json()["z_threshold"] == 2.5
    for bad in [
        {"pipeline_id": etl, "metric_field": "total_rows", "z_threshold": 0.5},
        {"pipeline_id": etl, "metric_field": "total_rows", "z_threshold": 10.5},
        {"pipeline_id": etl, "metric_field": "total_rows", "lookback_days": 0},
        {"pipeline_id": etl, "metric_field": "total_rows", "minimum_executions": 4},
        {"pipeline_id": etl, "metric_field": "colour"},
    ]:
        response = editor.post("/anomaly_detection_rule", json=bad)
        assert response.status_code == 422, bad
    assert (
        editor.post(
            "/anomaly_detection_rule", json={"pipeline_id": 999999, "metric_field": "total_rows"}
        ).status_code
        == 404
    )
    assert editor.patch("/anomaly_detection_rule", json={"id": 999999, "active": False}).status_code == 404
    assert len(editor.get("/anomaly_detection_rule").json()) == 1


def test_executions_nest_and_list_their_direct_children(editor):
    etl = pipeline(editor, "nested-etl")
    now = pendulum.now("UTC")
    root = run(editor, etl, now.subtract(minutes=30))
    child = run(editor, etl, now.subtract(minutes=29), parent_id=root)
    grandchild = run(
        editor, etl, now.subtract(minutes=28), now.subtract(minutes=27), parent_id=child, total_rows=10
    )
    shown = editor.get(f"/pipeline_execution/{root}").json()
    assert [c["id"] for c in shown["child_executions"]] == [child]
    assert shown["child_executions"][0]["child_executions"] == []
    middle = editor.get(f"/pipeline_execution/{child}").json()
    assert middle["parent_id"] == root and [c["id"] for c in middle["child_executions"]] == [grandchild]
    leaf = middle["child_executions"][0]
    assert (leaf["duration_seconds"], leaf["throughput"], leaf["total_rows"]) == (60, round(10 / 60, 4), 10)


def test_execution_errors_write_nothing(editor):
    etl = pipeline(editor, "errors-etl")
    now = pendulum.now("UTC")
    execution = run(editor, etl, now.subtract(minutes=5))
    cases = [
        (editor.post("/start_pipeline_execution", json={"pipeline_id": 999999}), 404),
        (editor.post("/start_pipeline_execution", json={"pipeline_id": etl, "parent_id": 999999}), 404),
        (
            editor.post(
                "/start_pipeline_execution", json={"pipeline_id": etl, "start_date": "yesterday-ish"}
            ),
            422,
        ),
        (
            editor.post(
                "/end_pipeline_execution",
                json={
                    "id": execution,
                    "end_date": iso(now.subtract(minutes=6)),
                    "completed_successfully": True,
                },
            ),
            400,
        ),
        (editor.post("/end_pipeline_execution", json={"id": execution, "end_date": iso(now)}), 422),
        (
            editor.post(
                "/end_pipeline_execution",
                json={
                    "id": execution,
                    "end_date": iso(now),
                    "completed_successfully": True,
                    "total_rows": -1,
                },
            ),
            422,
        ),
        (
            editor.post(
                "/end_pipeline_execution",
                json={"id": 999999, "end_date": iso(now), "completed_successfully": True},
            ),
            404,
        ),
        (editor.get("/pipeline_execution/999999"), 404),
    ]
    for response, status in cases:
        assert response.status_code == status, response.text
        assert response.json()["detail"]
    still = editor.get(f"/pipeline_execution/{execution}").json()
    assert still["end_date"] is None and still["completed_successfully"] is None


def test_successful_end_moves_watermark_and_last_target_times(editor):
    etl = pipeline(editor, "watermark-etl", next_watermark="2026-01-02")
    now = pendulum.now("UTC").replace(microsecond=0)
    run(editor, etl, now.subtract(minutes=10), now.subtract(minutes=5), total_rows=5, inserts=5, updates=0)
    state = editor.get(f"/pipeline/{etl}").json()
    assert state["watermark"] == "2026-01-02"
    assert state["last_target_insert"] == iso(now.subtract(minutes=5))
    assert state["last_target_update"] is None

    editor.post(
        "/pipeline",
        json={"name": "watermark-etl", "pipeline_type_name": "batch", "next_watermark": "2026-01-03"},
    )
    run(editor, etl, now.subtract(minutes=4), now.subtract(minutes=3), ok=False, updates=7)
    assert editor.get(f"/pipeline/{etl}").json()["watermark"] == "2026-01-02"  # a failed run moves nothing


def test_a_late_running_execution_raises_one_timeliness_alert(editor, webhook):
    late = pipeline(editor, "late-etl", timeliness_number=1, timeliness_datepart="minute")
    muted = pipeline(editor, "muted-etl", timeliness_number=1, timeliness_datepart="minute")
    editor.patch("/pipeline", json={"id": muted, "mute_timeliness_check": True})
    now = pendulum.now("UTC")
    run(editor, late, now.subtract(minutes=20))
    run(editor, muted, now.subtract(minutes=20))
    for _ in range(3):
        assert editor.post("/timeliness", json={"lookback_minutes": 60}).json() == {"status": "queued"}
    eventually(lambda: webhook.alerts(editor.project, "timeliness", late))
    time.sleep(2)  # the other two checks have run by now
    assert len(webhook.alerts(editor.project, "timeliness", late)) == 1
    assert webhook.alerts(editor.project, "timeliness", muted) == []
    assert editor.post("/timeliness", json={"lookback_minutes": 4}).status_code == 422


def test_a_stale_pipeline_raises_one_freshness_alert(editor, webhook):
    stale = pipeline(editor, "stale-etl", freshness_number=1, freshness_datepart="hour")
    muted = pipeline(editor, "stale-muted", freshness_number=1, freshness_datepart="hour")
    editor.patch("/pipeline", json={"id": muted, "mute_freshness_check": True})
    fresh = pipeline(editor, "fresh-etl", freshness_number=1, freshness_datepart="day")
    now = pendulum.now("UTC")
    for target in (stale, muted):
        run(editor, target, now.subtract(hours=3), now.subtract(hours=2), inserts=1)
    run(editor, fresh, now.subtract(hours=3), now.subtract(hours=2), inserts=1)
    for _ in range(2):
        assert editor.post("/freshness").json() == {"status": "queued"}
    eventually(lambda: webhook.alerts(editor.project, "freshness", stale))
    time.sleep(2)
    assert len(webhook.alerts(editor.project, "freshness", stale)) == 1
    assert webhook.alerts(editor.project, "freshness", muted) == []
    assert webhook.alerts(editor.project, "freshness", fresh) == []
    report = {row["pipeline_id"]: row for row in editor.get("/api/pipeline/freshness").json()}
    assert report[stale]["is_fresh"] is False and report[fresh]["is_fresh"] is True
    assert report[stale]["last_refresh_at"].endswith("Z")


def test_log_cleanup_deletes_old_history_only(stack, editor, project_admin):
    _, admin_key = project_admin
    etl = pipeline(editor, "cleanup-etl")
    now = pendulum.now("UTC")
    old_root = run(editor, etl, now.subtract(days=200), now.subtract(days=200).add(minutes=5), total_rows=1)
    old_child = run(
        editor,
        etl,
        now.subtract(days=200).add(minutes=1),
        now.subtract(days=200).add(minutes=2),
        parent_id=old_root,
    )
    young = run(editor, etl, now.subtract(days=1), now.subtract(days=1).add(minutes=5), total_rows=1)
    assert editor.post("/log_cleanup", json={"retention_days": 90}).status_code == 403
    with stack.client(admin_key) as admin:
        assert admin.post("/log_cleanup", json={"retention_days": 89}).status_code == 422
        counts = admin.post("/log_cleanup", json={"retention_days": 90, "batch_size": 1}).json()
        assert counts["total_pipeline_executions_deleted"] == 2
        assert counts["total_pipeline_execution_closure_parent_deleted"] >= 1
        assert set(counts) == {
            "total_pipeline_executions_deleted",
            "total_timeliness_pipeline_execution_logs_deleted",
            "total_anomaly_detection_results_deleted",
            "total_pipeline_execution_closure_parent_deleted",
            "total_pipeline_execution_closure_child_deleted",
            "total_freshness_pipeline_logs_deleted",
        }
        again = admin.post("/log_cleanup", json={"retention_days": 90}).json()
        assert again["total_pipeline_executions_deleted"] == 0
    assert editor.get(f"/pipeline_execution/{old_root}").status_code == 404
    assert editor.get(f"/pipeline_execution/{old_child}").status_code == 404
    assert editor.get(f"/pipeline_execution/{young}").status_code == 200


def test_log_cleanup_state_machine_runs_its_lambda_task_in_the_local_stack(stack, editor):
    # Given old history, when the state machine from statemachines/ runs, its Lambda task (the
    # in-process handler, reached through moto's interpreter) deletes it batch by batch.
    etl = pipeline(editor, "sfn-cleanup-etl")
    old = pendulum.now("UTC").subtract(days=120)
    doomed = [run(editor, etl, old.add(minutes=i), old.add(minutes=i, seconds=30)) for i in range(3)]
    sfn = moto_client(stack, "stepfunctions")
    (machine,) = [m for m in sfn.list_state_machines()["stateMachines"] if "LogCleanup" in m["name"]]
    started = sfn.start_execution(
        stateMachineArn=machine["stateMachineArn"],
        name=f"ok-{etl}",
        input=json.dumps({"retention_days": 90, "batch_size": 1}),
    )
    described = eventually(
        lambda: (
            (d := sfn.describe_execution(executionArn=started["executionArn"]))["status"] != "RUNNING" and d
        ),
        timeout=60,
    )
    assert described["status"] == "SUCCEEDED", described
    output = json.loads(described["output"])
    assert output["done"] is True and output["totals"]["total_pipeline_executions_deleted"] >= 3
    history = sfn.get_execution_history(executionArn=started["executionArn"])["events"]
    assert sum(e["type"] == "TaskSucceeded" for e in history) >= 2  # it looped over batches
    for execution in doomed:
        assert editor.get(f"/pipeline_execution/{execution}").status_code == 404

    # A batch that fails is caught and ends the execution as failed, not hanging
    failed = sfn.start_execution(
        stateMachineArn=machine["stateMachineArn"], name=f"bad-{etl}", input=json.dumps({"retention_days": 5})
    )
    described = eventually(
        lambda: (
            (d := sfn.describe_execution(executionArn=failed["executionArn"]))["status"] != "RUNNING" and d
        ),
        timeout=60,
    )
    assert described["status"] == "FAILED" and described.get("error") == "LogCleanupFailed"


def test_queue_monitor_reports_depth_and_alerts_at_fifty(stack, editor, webhook, project_admin):
    empty = editor.post("/celery/monitor-queue")
    assert empty.status_code == 200
    report = empty.json()
    assert report["status"] == "success"
    assert report["total_pending"] == report["visible"] + report["in_flight"] + report["delayed"]
    sqs = moto_client(stack, "sqs")
    (queue_url,) = [u for u in sqs.list_queues()["QueueUrls"] if u.endswith("-runs.fifo")]
    try:
        # 60 runs of a project with no free slot wait in the run queue
        waiting = queue_backlog(stack, editor, editor.project, 60)
        assert editor.get(f"/api/runs/{waiting[0]}").json()["status"] == "pending"
        deep = editor.post("/celery/monitor-queue").json()
        assert deep["total_pending"] >= 60
        eventually(lambda: [t for t in webhook.alerts(editor.project, "queue") if "[WARNING]" in t])
    finally:
        sqs.purge_queue(QueueUrl=queue_url)
