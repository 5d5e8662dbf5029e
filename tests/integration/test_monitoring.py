"""The monitor area and its jobs on moto: anomaly rules and detection (the issue's example),
unflagging, queued timeliness and freshness checks, alerts and their webhook, the queue monitor,
and log cleanup (HTTP and the Step Functions loop)."""

from __future__ import annotations

import http.server
import importlib.util
import json
import sys
import threading
from types import ModuleType

import boto3
import pendulum
import pytest

from sluice import timeutil
from sluice.auth.principal import Principal, Role
from sluice.domain.alerts import Alerting
from sluice.domain.anomalies import AnomalyResult, Verdict, detect_anomalies
from sluice.domain.events import RecordingPublisher
from sluice.domain.monitoring import check_freshness, check_timeliness
from sluice.store import keys
from sluice.store.alerts import AlertRepository
from sluice.store.anomalies import AnomalyResultRepository, RuleRepository
from sluice.store.checks import CheckRepository
from sluice.store.executions import RunRepository, WatchedPipelines
from sluice.store.table import Table
from tests.apigw import ROOT, LambdaContext, invoke, load_area

EDITOR = Principal("acme", Role.editor, "user:editor")
VIEWER = Principal("acme", Role.viewer, "user:viewer")
ADMIN = Principal("acme", Role.admin, "user:admin")
NOW = pendulum.now("UTC")


@pytest.fixture(autouse=True)
def _now_is_the_tests_start():
    """Times made relative to NOW are relative to this test's start, not to the module's import: in
    a slow suite a run started `NOW - 5 minutes` was otherwise already 11 minutes old when checked
    against a 10-minute timeliness (CI went red on it)."""
    global NOW
    NOW = pendulum.now("UTC")


def load_jobs() -> ModuleType:
    name = "sluice_function_monitor_jobs"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ROOT / "functions" / "monitor" / "jobs.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


@pytest.fixture
def runs_api(table):
    return load_area("runs").handler


@pytest.fixture
def monitor_api(table):
    return load_area("monitor").handler


@pytest.fixture
def jobs(table):
    return load_jobs()


@pytest.fixture
def bus(table, monkeypatch):
    """The event bus, tapped by a queue; returns a function that drains the events it carried."""
    events, sqs = boto3.client("events"), boto3.client("sqs")
    events.create_event_bus(Name="sluice-test")
    queue_url = sqs.create_queue(QueueName="bus-tap")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name="tap", EventBusName="sluice-test", EventPattern=json.dumps({"source": ["sluice"]}))
    events.put_targets(Rule="tap", EventBusName="sluice-test", Targets=[{"Id": "q", "Arn": arn}])
    monkeypatch.setenv("EVENT_BUS_NAME", "sluice-test")
    return lambda: [json.loads(m["Body"]) for m in drain(queue_url)]


@pytest.fixture
def queues(table, monkeypatch):
    sqs = boto3.client("sqs")
    run_queue = sqs.create_queue(QueueName="runs")["QueueUrl"]
    check_queue = sqs.create_queue(QueueName="checks")["QueueUrl"]
    monkeypatch.setenv("RUN_QUEUE_URL", run_queue)
    monkeypatch.setenv("CHECK_QUEUE_URL", check_queue)
    return {"runs": run_queue, "checks": check_queue}


def drain(queue_url: str) -> list[dict]:
    sqs, found = boto3.client("sqs"), []
    while True:
        messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
        if not messages:
            return found
        for message in messages:
            found.append(message)
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])


def put_pipeline(table, project="acme", pipeline_id=1, **attributes):
    pk, sk = keys.pipeline(project, pipeline_id)
    table.put(
        {
            "PK": pk,
            "SK": sk,
            "kind": "pipeline",
            "id": pipeline_id,
            "name": f"pipeline {pipeline_id}",
            "pipeline_type_id": 1,
            "active": True,
            "load_lineage": True,
            "mute_freshness_check": False,
            "mute_timeliness_check": False,
            "created_at": "2024-01-01T00:00:00Z",
            **attributes,
        }
    )
    table.put({"PK": keys.PROJECTS, "SK": project, "kind": "project", "project": project})


def put_pipeline_type(table, project="acme", type_id=1, **attributes):
    pk, sk = keys.pipeline_type(project, type_id)
    table.put(
        {"PK": pk, "SK": sk, "kind": "pipeline_type", "id": type_id, "name": f"type {type_id}", **attributes}
    )


def start(api, principal=EDITOR, **body) -> int:
    status, payload = invoke(api, "POST", "/start_pipeline_execution", {"pipeline_id": 1, **body}, principal)
    assert status == 201, payload
    return payload["id"]


def run_once(api, start_at: pendulum.DateTime, principal=EDITOR, pipeline_id=1, **metrics) -> int:
    execution_id = start(api, principal, pipeline_id=pipeline_id, start_date=timeutil.iso(start_at))
    body = {
        "id": execution_id,
        "end_date": timeutil.iso(start_at.add(minutes=5)),
        "completed_successfully": True,
        **metrics,
    }
    status, payload = invoke(api, "POST", "/end_pipeline_execution", body, principal)
    assert status == 204, payload
    return execution_id


def deliver(jobs, events: list[dict]) -> None:
    """Route execution.ended events to the anomaly detector, as the bus rule does in AWS."""
    for event in events:
        if event["detail-type"] == "execution.ended":
            jobs.on_execution_ended(event, LambdaContext())


def alerts(table, project="acme", **filters):
    return AlertRepository(table).list(project, limit=100, **filters)[0]


def add_rule(monitor_api, **body) -> int:
    status, payload = invoke(
        monitor_api,
        "POST",
        "/anomaly_detection_rule",
        {"pipeline_id": 1, "metric_field": "total_rows", "z_threshold": 1.0, "minimum_executions": 5, **body},
        EDITOR,
    )
    assert status == 201, payload
    return payload["id"]


# -- anomaly detection ------------------------------------------------------------------------------
def test_the_issue_example_flags_outliers_of_one_hour_bucket(table, runs_api, monitor_api, jobs, bus):
    # Given a rule z=1.0, minimum 5, and a baseline 10, 12, 14, 16, 18 at 10:00 on five days
    put_pipeline(table)
    add_rule(monitor_api)
    for day, rows in zip(range(5, 0, -1), (10, 12, 14, 16, 18), strict=True):
        run_once(runs_api, NOW.subtract(days=day).set(hour=10, minute=0, second=0), total_rows=rows)
    deliver(jobs, bus())
    assert alerts(table) == []  # the baseline grew from nothing: never enough to judge
    today = NOW.set(hour=10, minute=0, second=0)

    # When executions of the same hour end with 100, 3 and 14, and one of another hour with 100
    high = run_once(runs_api, today, total_rows=100)
    deliver(jobs, bus())
    low = run_once(runs_api, today.add(seconds=1), total_rows=3)
    deliver(jobs, bus())
    normal = run_once(runs_api, today.add(seconds=2), total_rows=14)
    deliver(jobs, bus())
    elsewhere = run_once(runs_api, today.set(hour=11), total_rows=100)
    deliver(jobs, bus())

    # Then 100 and 3 are flagged, 14 and the other hour's 100 are not
    flags = {
        i: invoke(runs_api, "GET", f"/pipeline_execution/{i}", principal=VIEWER)[1]["anomaly_flags"]
        for i in (high, low, normal, elsewhere)
    }
    assert flags == {high: {"total_rows": True}, low: {"total_rows": True}, normal: None, elsewhere: None}
    raised = alerts(table, alert_type="anomaly")
    assert sorted(a.details["pipeline_execution_id"] for a in raised) == [high, low]
    low_result = next(a.details for a in raised if a.details["pipeline_execution_id"] == low)
    assert low_result["baseline_count"] == 5  # 100 was flagged, so it left the baseline
    assert low_result["threshold_min_value"] == pytest.approx(14 - 10**0.5)
    assert AnomalyResultRepository(table).results_of_run("acme", high)[0]["violation_value"] == 100


def test_detection_reads_only_the_hour_bucket_inside_the_lookback(table, runs_api, monitor_api, jobs, bus):
    put_pipeline(table)
    add_rule(monitor_api, lookback_days=7)
    for day in range(20, 8, -1):  # history older than the lookback
        run_once(runs_api, NOW.subtract(days=day).set(hour=10, minute=0), total_rows=10)
    for day in range(6, 0, -1):
        run_once(runs_api, NOW.subtract(days=day).set(hour=10, minute=0), total_rows=10 + day)
        run_once(runs_api, NOW.subtract(days=day).set(hour=9, minute=0), total_rows=10)
    bus()
    target = run_once(runs_api, NOW.set(hour=10, minute=0), total_rows=500)
    table_reads = []
    counting = Table(table.name)
    original = counting.query

    def query(*args, **kwargs):
        page = original(*args, **kwargs)
        table_reads.append((kwargs.get("index"), len(page.items)))
        return page

    counting.query = query
    found = detect_anomalies(
        "acme",
        target,
        RunRepository(counting),
        RuleRepository(table),
        AnomalyResultRepository(table),
        Alerting(AlertRepository(table), RecordingPublisher()),
        pendulum.now("UTC"),
    )

    assert [r.verdict.baseline_count for r in found] == [6]
    assert table_reads == [("GSI1", 7)]  # six baseline runs and the run itself, nothing else


def test_rule_upsert_list_get_and_patch(table, monitor_api):
    put_pipeline(table)
    put_pipeline(table, pipeline_id=2)
    rule_id = add_rule(monitor_api, z_threshold=2.0)

    again = invoke(
        monitor_api,
        "POST",
        "/anomaly_detection_rule",
        {"pipeline_id": 1, "metric_field": "TOTAL_ROWS", "z_threshold": 9},
        EDITOR,
    )
    assert again == (200, {"id": rule_id})
    other = invoke(
        monitor_api,
        "POST",
        "/anomaly_detection_rule",
        {"pipeline_id": 1, "metric_field": "throughput"},
        EDITOR,
    )
    assert other[0] == 201

    status, listed = invoke(monitor_api, "GET", "/anomaly_detection_rule", principal=VIEWER)
    assert status == 200
    assert [(r["id"], r["metric_field"], r["z_threshold"], r["updated_at"]) for r in listed] == [
        (rule_id, "total_rows", 2.0, None),
        (other[1]["id"], "throughput", 3.0, None),
    ]
    assert listed[1]["lookback_days"] == 30 and listed[1]["minimum_executions"] == 30 and listed[1]["active"]

    status, patched = invoke(
        monitor_api,
        "PATCH",
        "/anomaly_detection_rule",
        {"id": rule_id, "z_threshold": 2.5, "metric_field": "updates", "active": False},
        EDITOR,
    )
    assert status == 200
    assert (patched["z_threshold"], patched["metric_field"], patched["active"]) == (2.5, "updates", False)
    assert patched["updated_at"] is not None
    assert invoke(monitor_api, "GET", f"/anomaly_detection_rule/{rule_id}", principal=VIEWER)[1] == patched
    # the old (pipeline, metric) is free again; the new one is taken
    assert (
        invoke(
            monitor_api,
            "POST",
            "/anomaly_detection_rule",
            {"pipeline_id": 1, "metric_field": "total_rows"},
            EDITOR,
        )[0]
        == 201
    )
    taken = invoke(
        monitor_api,
        "PATCH",
        "/anomaly_detection_rule",
        {"id": other[1]["id"], "metric_field": "updates"},
        EDITOR,
    )
    assert taken[0] == 409 and taken[1]["detail"]
    moved = invoke(
        monitor_api, "PATCH", "/anomaly_detection_rule", {"id": other[1]["id"], "pipeline_id": 2}, EDITOR
    )
    assert moved[0] == 200 and moved[1]["pipeline_id"] == 2


@pytest.mark.parametrize(
    ("method", "body", "status"),
    [
        ("POST", {"pipeline_id": 9, "metric_field": "total_rows"}, 404),
        ("POST", {"pipeline_id": 1, "metric_field": "total_rows", "z_threshold": 0.5}, 422),
        ("POST", {"pipeline_id": 1, "metric_field": "total_rows", "z_threshold": 10.5}, 422),
        ("POST", {"pipeline_id": 1, "metric_field": "total_rows", "lookback_days": 366}, 422),
        ("POST", {"pipeline_id": 1, "metric_field": "total_rows", "minimum_executions": 4}, 422),
        ("POST", {"pipeline_id": 1, "metric_field": "row_count"}, 422),
        ("PATCH", {"id": 77, "z_threshold": 2.0}, 404),
        ("PATCH", {"id": 1, "z_threshold": 11}, 422),
        ("PATCH", {"id": 1, "pipeline_id": 9}, 404),
        ("PATCH", {"z_threshold": 2}, 422),
    ],
)
def test_bad_rule_requests_are_refused_and_write_nothing(table, monitor_api, method, body, status):
    put_pipeline(table)
    if method == "PATCH":
        add_rule(monitor_api)
    before = invoke(monitor_api, "GET", "/anomaly_detection_rule", principal=VIEWER)[1]

    code, payload = invoke(monitor_api, method, "/anomaly_detection_rule", body, EDITOR)

    assert code == status and payload["detail"]
    assert invoke(monitor_api, "GET", "/anomaly_detection_rule", principal=VIEWER)[1] == before
    assert invoke(monitor_api, "GET", "/anomaly_detection_rule/77", principal=VIEWER)[0] == 404


def test_unflag_clears_flags_and_drops_results(table, runs_api, monitor_api, jobs, bus):
    put_pipeline(table)
    add_rule(monitor_api)
    add_rule(monitor_api, metric_field="inserts")
    for day, rows in zip(range(5, 0, -1), (10, 12, 14, 16, 18), strict=True):
        run_once(runs_api, NOW.subtract(days=day).set(hour=10, minute=0), total_rows=rows, inserts=rows)
    bus()
    flagged = run_once(runs_api, NOW.set(hour=10, minute=0), total_rows=100, inserts=100)
    deliver(jobs, bus())
    assert invoke(runs_api, "GET", f"/pipeline_execution/{flagged}", principal=VIEWER)[1][
        "anomaly_flags"
    ] == {"total_rows": True, "inserts": True}

    body = {
        "pipeline_id": 1,
        "pipeline_execution_id": flagged,
        "metric_field": ["total_rows", "duration_seconds"],
    }
    assert invoke(monitor_api, "POST", "/unflag_anomaly", body, EDITOR) == (204, None)

    assert invoke(runs_api, "GET", f"/pipeline_execution/{flagged}", principal=VIEWER)[1][
        "anomaly_flags"
    ] == {"total_rows": False, "inserts": True}
    assert [r["metric_field"] for r in AnomalyResultRepository(table).results_of_run("acme", flagged)] == [
        "inserts"
    ]
    again = invoke(monitor_api, "POST", "/unflag_anomaly", body, EDITOR)
    assert again[0] == 404 and again[1]["detail"]
    plain = run_once(runs_api, NOW.subtract(days=9), total_rows=1)
    assert (
        invoke(monitor_api, "POST", "/unflag_anomaly", {**body, "pipeline_execution_id": plain}, EDITOR)[0]
        == 404
    )
    assert invoke(monitor_api, "POST", "/unflag_anomaly", {**body, "pipeline_id": 2}, EDITOR)[0] == 404
    assert (
        invoke(monitor_api, "POST", "/unflag_anomaly", {**body, "metric_field": ["rows"]}, EDITOR)[0] == 422
    )
    assert invoke(monitor_api, "POST", "/unflag_anomaly", body, VIEWER)[0] == 403


# -- timeliness and freshness ----------------------------------------------------------------------------
def test_a_late_running_execution_raises_one_timeliness_alert_however_often_checked(
    table, runs_api, monitor_api, jobs, queues
):
    put_pipeline_type(table)
    put_pipeline(table, timeliness_number=10, timeliness_datepart="minute")
    put_pipeline(
        table, pipeline_id=2, timeliness_number=10, timeliness_datepart="minute", mute_timeliness_check=True
    )
    put_pipeline_type(
        table, type_id=3, timeliness_number=1, timeliness_datepart="minute", mute_timeliness_check=True
    )
    put_pipeline(table, pipeline_id=3, pipeline_type_id=3)
    late = start(runs_api, start_date=timeutil.iso(NOW.subtract(minutes=30)))
    start(runs_api, pipeline_id=2, start_date=timeutil.iso(NOW.subtract(minutes=30)))
    start(runs_api, pipeline_id=3, start_date=timeutil.iso(NOW.subtract(minutes=30)))
    start(runs_api, start_date=timeutil.iso(NOW.subtract(minutes=5)))  # not late yet

    for _ in range(3):
        assert invoke(monitor_api, "POST", "/timeliness", {"lookback_minutes": 60}, EDITOR) == (
            200,
            {"status": "queued"},
        )
    messages = drain(queues["checks"])
    assert json.loads(messages[0]["Body"]) == {
        "check": "timeliness",
        "project": "acme",
        "lookback_minutes": 60,
    }
    records = [{"messageId": m["MessageId"], "body": m["Body"]} for m in messages]
    assert jobs.on_check_requested({"Records": records}, LambdaContext()) == {"batchItemFailures": []}
    jobs.scheduled_timeliness(
        {"detail-type": "Scheduled Event", "source": "aws.events", "detail": {"lookback_minutes": 45}},
        LambdaContext(),
    )

    raised = alerts(table, alert_type="timeliness")
    assert [
        (a.pipeline_id, a.details["pipeline_execution_id"], a.details["execution_status"]) for a in raised
    ] == [(1, late, "running")]
    assert [r["pipeline_execution_id"] for r in CheckRepository(table).timeliness_records("acme")] == [late]


def test_timeliness_reads_the_lookback_lazily_across_month_shards_and_judges_finished_runs(table, runs_api):
    """The check streams the runs of its lookback (a page at a time, a few attributes each): a run
    that started in the previous month's shard and succeeded past its deadline is still found, with
    what the check judges; one that failed, or succeeded in time, is not late."""
    put_pipeline_type(table)
    put_pipeline(table, timeliness_number=10, timeliness_datepart="minute")
    month_start = NOW.start_of("month")
    check_at = month_start.add(minutes=20)
    late = start(runs_api, start_date=timeutil.iso(month_start.subtract(minutes=15)))  # last month's shard
    ended = {"end_date": timeutil.iso(month_start.add(minutes=5)), "completed_successfully": True}
    assert invoke(runs_api, "POST", "/end_pipeline_execution", {"id": late, **ended}, EDITOR)[0] == 204
    failed = start(runs_api, start_date=timeutil.iso(month_start.subtract(minutes=14)))
    body = {"id": failed, **ended, "completed_successfully": False}
    assert invoke(runs_api, "POST", "/end_pipeline_execution", body, EDITOR)[0] == 204
    run_once(runs_api, month_start.add(minutes=1))  # 5 minutes: in time

    streamed = RunRepository(table).started_between("acme", check_at.subtract(minutes=60), check_at)
    assert not isinstance(streamed, list)
    runs = list(streamed)
    assert [(r.id, r.status, r.completed_successfully) for r in runs][:2] == [
        (late, "success", True),
        (failed, "failed", False),
    ]
    assert runs[0].end_date == month_start.add(minutes=5) and runs[0].execution_metadata is None

    desk = Alerting(AlertRepository(table), RecordingPublisher())
    found = check_timeliness(
        "acme", 60, check_at, RunRepository(table), WatchedPipelines(table), CheckRepository(table), desk
    )
    assert [(r.execution_id, r.execution_status) for r in found] == [(late, "completed")]


def test_freshness_raises_one_alert_per_last_write_and_skips_muted_pipelines(
    table, monitor_api, jobs, queues
):
    put_pipeline_type(table, freshness_number=1, freshness_datepart="hour")
    stale_at = timeutil.iso(NOW.subtract(hours=3))
    put_pipeline(table, name="orders", last_target_insert=stale_at)  # inherits the type's 1 hour
    put_pipeline(table, pipeline_id=2, name="muted", last_target_insert=stale_at, mute_freshness_check=True)
    put_pipeline(
        table,
        pipeline_id=3,
        name="fresh",
        freshness_number=1,
        freshness_datepart="day",
        last_target_update=stale_at,
    )

    assert invoke(monitor_api, "POST", "/freshness", None, EDITOR) == (200, {"status": "queued"})
    [message] = drain(queues["checks"])
    assert json.loads(message["Body"]) == {"check": "freshness", "project": "acme"}
    jobs.on_check_requested({"Records": [{"messageId": "m1", "body": message["Body"]}]}, LambdaContext())
    jobs.scheduled_freshness(
        {"detail-type": "Scheduled Event", "source": "aws.events", "detail": {}}, LambdaContext()
    )

    raised = alerts(table, alert_type="freshness")
    assert [(a.pipeline_id, a.severity, a.status) for a in raised] == [(1, "warning", "active")]
    assert [r["pipeline_name"] for r in CheckRepository(table).freshness_records("acme")] == ["orders"]
    status, report = invoke(monitor_api, "GET", "/api/pipeline/freshness", principal=VIEWER)
    assert status == 200
    assert [
        (r["pipeline_name"], r["freshness_threshold"], r["is_fresh"], r["last_refresh_at"]) for r in report
    ] == [
        ("orders", "1 hour", False, stale_at),
        ("muted", "1 hour", False, stale_at),
        ("fresh", "1 day", True, stale_at),
    ]


def test_bad_check_requests(table, monitor_api, queues, monkeypatch):
    assert invoke(monitor_api, "POST", "/timeliness", {"lookback_minutes": 4}, EDITOR)[0] == 422
    assert invoke(monitor_api, "POST", "/timeliness", {"lookback_minutes": "soon"}, EDITOR)[0] == 422
    assert invoke(monitor_api, "POST", "/timeliness", None, VIEWER)[0] == 403
    assert drain(queues["checks"]) == []
    assert invoke(monitor_api, "POST", "/timeliness", None, EDITOR) == (200, {"status": "queued"})
    assert json.loads(drain(queues["checks"])[0]["Body"])["lookback_minutes"] == 60

    monkeypatch.setenv("CHECK_QUEUE_URL", "https://sqs.us-east-1.amazonaws.com/123456789012/gone")
    status, body = invoke(monitor_api, "POST", "/freshness", None, EDITOR)
    assert status == 503 and "check queue" in body["detail"]


def test_check_messages_that_fail_are_returned_and_malformed_ones_dropped(table, jobs, monkeypatch):
    def broken(message):
        raise RuntimeError("table unavailable")

    monkeypatch.setattr(jobs, "_run_check", broken)
    event = {
        "Records": [
            {"messageId": "good-but-failing", "body": json.dumps({"check": "freshness", "project": "acme"})},
            {"messageId": "malformed", "body": "{not json"},
            {"messageId": "unknown-check", "body": json.dumps({"check": "volume", "project": "acme"})},
        ]
    }

    assert jobs.on_check_requested(event, LambdaContext()) == {
        "batchItemFailures": [{"itemIdentifier": "good-but-failing"}]
    }


# -- queue monitor and alert webhook ------------------------------------------------------------------------
class Receiver(http.server.BaseHTTPRequestHandler):
    received: list[dict] = []

    def do_POST(self):
        length = int(self.headers.get("Content-Length", 0))
        Receiver.received.append(json.loads(self.rfile.read(length)))
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        return None


@pytest.fixture
def webhook(monkeypatch):
    Receiver.received = []
    server = http.server.HTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("SLUICE_ALERT_WEBHOOK_URL", f"http://127.0.0.1:{server.server_port}/hooks/alerts")
    yield Receiver.received
    server.shutdown()
    server.server_close()


def fill(queue_url: str, visible: int, in_flight: int = 0, delayed: int = 0) -> None:
    sqs = boto3.client("sqs")
    for n in range(visible + in_flight):
        sqs.send_message(QueueUrl=queue_url, MessageBody=f"run {n}")
    taken = 0
    while taken < in_flight:
        taken += len(
            sqs.receive_message(
                QueueUrl=queue_url, MaxNumberOfMessages=min(10, in_flight - taken), VisibilityTimeout=300
            ).get("Messages", [])
        )
    for n in range(delayed):
        sqs.send_message(QueueUrl=queue_url, MessageBody=f"later {n}", DelaySeconds=600)


def test_queue_monitor_warns_at_50_and_notifies_the_webhook(table, monitor_api, queues, bus, webhook):
    fill(queues["runs"], visible=40, in_flight=8, delayed=2)

    status, body = invoke(monitor_api, "POST", "/celery/monitor-queue", None, EDITOR)

    assert (status, body) == (
        200,
        {"status": "success", "total_pending": 50, "visible": 40, "in_flight": 8, "delayed": 2},
    )
    [alert] = alerts(table, alert_type="queue")
    assert (alert.severity, alert.pipeline_id, alert.details["total_pending"]) == ("warning", None, 50)
    assert [e["detail-type"] for e in bus()] == ["alert.raised"]
    assert len(webhook) == 1 and "[WARNING]" in webhook[0]["text"] and "50 pending" in webhook[0]["text"]


def test_queue_monitor_is_critical_at_100_and_quiet_below_50(table, monitor_api, queues):
    fill(queues["runs"], visible=49)
    assert invoke(monitor_api, "POST", "/celery/monitor-queue", None, EDITOR)[1]["total_pending"] == 49
    assert alerts(table) == []

    fill(queues["runs"], visible=51)
    invoke(monitor_api, "POST", "/celery/monitor-queue", None, EDITOR)
    assert [a.severity for a in alerts(table, alert_type="queue")] == ["critical"]


def test_an_unreadable_queue_reports_an_error(table, monitor_api, queues, monkeypatch):
    monkeypatch.setenv("RUN_QUEUE_URL", "https://sqs.us-east-1.amazonaws.com/123456789012/gone")

    status, body = invoke(monitor_api, "POST", "/celery/monitor-queue", None, EDITOR)

    assert status == 200 and body["status"] == "error" and body["detail"]


def test_a_failing_webhook_never_fails_the_check(table, monitor_api, queues, monkeypatch):
    monkeypatch.setenv("SLUICE_ALERT_WEBHOOK_URL", "http://127.0.0.1:9/unreachable")
    fill(queues["runs"], visible=60)

    status, body = invoke(monitor_api, "POST", "/celery/monitor-queue", None, EDITOR)

    assert status == 200 and body["status"] == "success"
    assert len(alerts(table, alert_type="queue")) == 1


def test_scheduled_jobs_visit_every_registered_project(table, jobs, queues):
    put_pipeline(
        table,
        project="acme",
        freshness_number=1,
        freshness_datepart="hour",
        last_target_insert=timeutil.iso(NOW.subtract(hours=2)),
    )
    put_pipeline(
        table,
        project="globex",
        freshness_number=1,
        freshness_datepart="hour",
        last_target_insert=timeutil.iso(NOW.subtract(hours=2)),
    )
    fill(queues["runs"], visible=120)

    freshness = jobs.scheduled_freshness(
        {"detail-type": "Scheduled Event", "source": "aws.events", "detail": {}}, LambdaContext()
    )
    queue = jobs.scheduled_queue_monitor(
        {"detail-type": "Scheduled Event", "source": "aws.events", "detail": {}}, LambdaContext()
    )

    assert freshness == {"projects": 2, "recorded": 2, "failed_projects": []}
    assert queue["total_pending"] == 120
    for project in ("acme", "globex"):
        assert sorted(a.type for a in alerts(table, project)) == ["freshness", "queue"]


# -- log cleanup ---------------------------------------------------------------------------------------------
def old_and_young_history(table, runs_api):
    """Runs, closure rows, results and records on both sides of a 90-day retention."""
    put_pipeline(
        table,
        timeliness_number=1,
        timeliness_datepart="minute",
        freshness_number=1,
        freshness_datepart="hour",
    )
    long_ago, recently = NOW.subtract(days=200), NOW.subtract(days=10)
    root = start(runs_api, start_date=timeutil.iso(long_ago))
    child = start(runs_api, start_date=timeutil.iso(long_ago.add(minutes=1)), parent_id=root)
    young_child = start(runs_api, start_date=timeutil.iso(recently), parent_id=root)
    young_parent = start(runs_api, start_date=timeutil.iso(recently))
    # An external system may report a child that started before its parent.
    old_under_young = start(
        runs_api, start_date=timeutil.iso(long_ago.add(minutes=2)), parent_id=young_parent
    )
    lone = start(runs_api, start_date=timeutil.iso(long_ago.add(minutes=3)))
    young = start(runs_api, start_date=timeutil.iso(recently.add(minutes=1)))
    checks, runs, pipelines = CheckRepository(table), RunRepository(table), WatchedPipelines(table)
    desk = Alerting(AlertRepository(table), RecordingPublisher())
    # Timeliness records for `lone` (then) and `young` (now-ish): both still running past 1 minute
    check_timeliness("acme", 10, long_ago.add(minutes=5), runs, pipelines, checks, desk)
    check_timeliness("acme", 10, recently.add(minutes=5), runs, pipelines, checks, desk)
    verdict = Verdict(
        value=100, mean=14, std=3, z_threshold=1, lower_bound=11, upper_bound=17, baseline_count=5
    )
    result = AnomalyResult(lone, 1, 1, "total_rows", verdict, 30, long_ago)
    AnomalyResultRepository(table).record(
        "acme", result, desk.draft("acme", "anomaly", "warning", "old", long_ago, 1)
    )
    for last_write in (long_ago, recently):
        table.update(*keys.pipeline("acme", 1), set_={"last_target_insert": timeutil.iso(last_write)})
        check_freshness("acme", last_write.add(hours=2), pipelines, checks, desk)
    return {
        "old": [root, child, old_under_young, lone],
        "young": [young_child, young_parent, young],
        "root": root,
        "young_parent": young_parent,
        "young_child": young_child,
    }


EXPECTED = {
    "total_pipeline_executions_deleted": 4,
    "total_timeliness_pipeline_execution_logs_deleted": 4,  # every old run was running late
    "total_anomaly_detection_results_deleted": 1,
    "total_pipeline_execution_closure_parent_deleted": 2,  # root -> child, root -> young child
    "total_pipeline_execution_closure_child_deleted": 1,  # young parent -> old child
    "total_freshness_pipeline_logs_deleted": 1,
}


def test_log_cleanup_deletes_only_what_is_older_than_the_retention(table, runs_api, monitor_api):
    history = old_and_young_history(table, runs_api)
    young_records = CheckRepository(table).timeliness_records("acme")  # old and young alike

    status, counts = invoke(
        monitor_api, "POST", "/log_cleanup", {"retention_days": 90, "batch_size": 2}, ADMIN
    )

    assert status == 200
    assert counts == EXPECTED
    repository = RunRepository(table)
    assert all(repository.get("acme", i) is None for i in history["old"])
    assert all(repository.get("acme", i) is not None for i in history["young"])
    assert repository.children("acme", history["young_parent"]) == []
    assert repository.get("acme", history["young_child"]).parent_id == history["root"]
    remaining = CheckRepository(table).timeliness_records("acme")
    assert sorted(r["pipeline_execution_id"] for r in remaining) == sorted(history["young"])
    assert len(young_records) == 7
    assert len(CheckRepository(table).freshness_records("acme")) == 1
    again = invoke(monitor_api, "POST", "/log_cleanup", {"retention_days": 90}, ADMIN)[1]
    assert set(again.values()) == {0}


def test_log_cleanup_input_and_role(table, monitor_api):
    assert invoke(monitor_api, "POST", "/log_cleanup", {"retention_days": 89}, ADMIN)[0] == 422
    assert invoke(monitor_api, "POST", "/log_cleanup", {}, ADMIN)[0] == 422
    assert (
        invoke(monitor_api, "POST", "/log_cleanup", {"retention_days": 90, "batch_size": 0}, ADMIN)[0] == 422
    )
    status, body = invoke(monitor_api, "POST", "/log_cleanup", {"retention_days": 90}, EDITOR)
    assert status == 403 and body["detail"]


def test_concurrent_cleanups_count_each_deletion_once(table, runs_api, monitor_api, atomic_writes):
    put_pipeline(table)
    long_ago = NOW.subtract(days=120)
    parent = start(runs_api, start_date=timeutil.iso(long_ago))
    for n in range(24):
        start(runs_api, start_date=timeutil.iso(long_ago.add(minutes=n)), parent_id=parent if n % 2 else None)
    answers: list[tuple[int, dict]] = []

    def clean() -> None:
        answers.append(
            invoke(monitor_api, "POST", "/log_cleanup", {"retention_days": 90, "batch_size": 5}, ADMIN)
        )

    threads = [threading.Thread(target=clean) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert [status for status, _ in answers] == [200, 200, 200]
    total = {name: sum(body[name] for _, body in answers) for name in EXPECTED}
    assert total["total_pipeline_executions_deleted"] == 25
    assert (
        total["total_pipeline_execution_closure_parent_deleted"]
        + total["total_pipeline_execution_closure_child_deleted"]
        == 12
    )


def test_the_scheduled_cleanup_loop_visits_every_project(table, runs_api):
    put_pipeline(table, project="acme")
    put_pipeline(table, project="globex")
    put_pipeline(table, project="initech")  # nothing to delete there
    globex = Principal("globex", Role.editor, "user:g")
    for n in range(3):
        start(runs_api, start_date=timeutil.iso(NOW.subtract(days=100 + n)))
        start(runs_api, globex, start_date=timeutil.iso(NOW.subtract(days=150 + 40 * n)))
    start(runs_api, globex, start_date=timeutil.iso(NOW.subtract(days=5)))
    jobs = load_jobs()

    state: dict = {"retention_days": 90, "batch_size": 2}
    steps = 0
    while True:
        state = jobs.scheduled_log_cleanup(json.loads(json.dumps(state)), LambdaContext())
        steps += 1
        if state["done"]:
            break
        assert steps < 50

    assert state["totals"]["total_pipeline_executions_deleted"] == 6
    assert state["cursor"] is None and steps > 3
    assert RunRepository(table).get("globex", 4) is not None  # the young one
    assert [r.id for r in RunRepository(table).started_between("globex", NOW.subtract(days=400), NOW)] == [4]
