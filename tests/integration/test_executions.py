"""Executions through the runs area's Lambda handler on moto: start, end, hierarchy, the pipeline's
watermark and target times, concurrent ends, and every bad input of SPEC 7."""

from __future__ import annotations

import json
import threading

import boto3
import pendulum
import pytest

from sluice.auth.principal import Principal, Role
from sluice.domain.events import RecordingPublisher
from sluice.domain.executions import ConcurrentEnd, EndExecution, end_execution
from sluice.store import keys
from sluice.store.executions import RunRepository, WatchedPipelines
from tests.apigw import invoke, load_area

EDITOR = Principal("acme", Role.editor, "user:editor")
VIEWER = Principal("acme", Role.viewer, "user:viewer")
STRANGER = Principal("globex", Role.editor, "user:stranger")
START = "2024-01-01T10:00:00Z"


@pytest.fixture
def api(table):
    return load_area("runs").handler


@pytest.fixture
def bus_events(table, monkeypatch):
    """An event bus whose events land in a queue; returns a function that drains it."""
    events, sqs = boto3.client("events"), boto3.client("sqs")
    events.create_event_bus(Name="sluice-test")
    queue_url = sqs.create_queue(QueueName="bus-tap")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    events.put_rule(Name="tap", EventBusName="sluice-test", EventPattern=json.dumps({"source": ["sluice"]}))
    events.put_targets(Rule="tap", EventBusName="sluice-test", Targets=[{"Id": "q", "Arn": queue_arn}])
    monkeypatch.setenv("EVENT_BUS_NAME", "sluice-test")

    def drain() -> list[dict]:
        found = []
        while True:
            messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
            if not messages:
                return found
            for message in messages:
                found.append(json.loads(message["Body"]))
                sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])

    return drain


def put_pipeline(table, project="acme", pipeline_id=1, **attributes):
    """A pipeline item as the registry writes it (the shared contract)."""
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


def pipeline_item(table, project="acme", pipeline_id=1) -> dict:
    return table.get(*keys.pipeline(project, pipeline_id))


def start(api, principal=EDITOR, **body) -> int:
    status, payload = invoke(api, "POST", "/start_pipeline_execution", {"pipeline_id": 1, **body}, principal)
    assert status == 201, payload
    return payload["id"]


def end(api, execution_id, principal=EDITOR, **body) -> tuple[int, object]:
    payload = {"id": execution_id, "end_date": "2024-01-01T10:05:00Z", "completed_successfully": True, **body}
    return invoke(api, "POST", "/end_pipeline_execution", payload, principal)


def get(api, execution_id, principal=VIEWER) -> tuple[int, dict]:
    return invoke(api, "GET", f"/pipeline_execution/{execution_id}", principal=principal)


# -- start ----------------------------------------------------------------------------------------------
def test_start_records_a_running_run_with_its_recorded_hour_and_date(api, table):
    put_pipeline(table)

    execution_id = start(
        api, start_date="2024-01-01T23:30:00-02:00", watermark=10, next_watermark="2024-01-02"
    )

    item = table.get(*keys.run("acme", execution_id))
    assert (item["kind"], item["status"], item["origin"]) == ("run", "running", "watcher")
    assert (item["date_recorded"], item["hour_recorded"]) == ("2024-01-02", 1)
    status, body = get(api, execution_id)
    assert status == 200
    assert body == {
        "id": execution_id,
        "parent_id": None,
        "pipeline_id": 1,
        "start_date": "2024-01-02T01:30:00Z",
        "end_date": None,
        "duration_seconds": None,
        "completed_successfully": None,
        "inserts": None,
        "updates": None,
        "soft_deletes": None,
        "total_rows": None,
        "watermark": "10",
        "next_watermark": "2024-01-02",
        "execution_metadata": None,
        "anomaly_flags": None,
        "throughput": None,
        "child_executions": [],
    }


def test_start_date_defaults_to_now(api, table):
    put_pipeline(table)
    before = pendulum.now("UTC")

    execution_id = start(api)

    started = pendulum.parse(get(api, execution_id)[1]["start_date"])
    assert before.subtract(seconds=1) <= started <= pendulum.now("UTC")


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"pipeline_id": 99}, 404),
        ({"start_date": "yesterday-ish"}, 422),
        ({"start_date": "2024-13-45T10:00:00Z"}, 422),
        ({"parent_id": 42}, 404),
        ({"parent_id": 1}, 404),  # the id this execution would get: it cannot be its own parent
        ({"pipeline_id": True}, 422),
        ({"watermark": "x" * 51}, 422),
    ],
)
def test_bad_starts_are_refused_and_write_nothing(api, table, body, status):
    put_pipeline(table)

    code, payload = invoke(api, "POST", "/start_pipeline_execution", {"pipeline_id": 1, **body}, EDITOR)

    assert code == status
    assert payload["detail"]
    assert table.get(*keys.run("acme", 1)) is None
    assert list(table.query_all(keys.run_months("acme"))) == []


def test_roles_and_tenancy(api, table):
    put_pipeline(table)
    execution_id = start(api)

    assert invoke(api, "POST", "/start_pipeline_execution", {"pipeline_id": 1}, VIEWER)[0] == 403
    assert invoke(api, "POST", "/start_pipeline_execution", {"pipeline_id": 1})[0] == 401
    assert get(api, execution_id, STRANGER)[0] == 404
    assert end(api, execution_id, STRANGER)[0] == 404
    assert invoke(api, "POST", "/start_pipeline_execution", {"pipeline_id": 1}, STRANGER)[0] == 404


# -- end ------------------------------------------------------------------------------------------------
def test_end_computes_duration_and_throughput(api, table):
    put_pipeline(table)
    first, second, third = (
        start(api, start_date=START),
        start(api, start_date=START),
        start(api, start_date=START),
    )

    assert end(api, first, total_rows=1000, inserts=800, updates=200, soft_deletes=0)[0] == 204
    assert end(api, second)[0] == 204
    assert end(api, third, end_date="2024-01-01T10:00:00.400Z", total_rows=50)[0] == 204

    body = get(api, first)[1]
    assert (body["duration_seconds"], body["throughput"], body["completed_successfully"]) == (
        300,
        3.3333,
        True,
    )
    assert get(api, second)[1]["throughput"] is None
    assert (get(api, third)[1]["duration_seconds"], get(api, third)[1]["throughput"]) == (0, 0.0)
    assert table.get(*keys.run("acme", first))["status"] == "success"


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"completed_successfully": None}, 422),
        ({"end_date": START}, 400),
        ({"end_date": "2024-01-01T09:59:59Z"}, 400),
        ({"end_date": "2024-01-01T11:00:00+02:00"}, 400),  # 09:00 UTC
        ({"end_date": "not a date"}, 422),
        ({"total_rows": -1}, 422),
        ({"inserts": -5}, 422),
        ({"soft_deletes": "many"}, 422),
        ({"id": 999}, 404),
    ],
)
def test_bad_ends_are_refused_and_change_nothing(api, table, body, status):
    put_pipeline(table, watermark="w1", next_watermark="w2")
    execution_id = start(api, start_date=START)
    before = table.get(*keys.run("acme", execution_id))
    payload = {"id": execution_id, "end_date": "2024-01-01T10:05:00Z", "completed_successfully": True, **body}
    if body.get("completed_successfully", True) is None:
        del payload["completed_successfully"]

    code, answer = invoke(api, "POST", "/end_pipeline_execution", payload, EDITOR)

    assert code == status
    assert answer["detail"]
    assert table.get(*keys.run("acme", execution_id)) == before
    assert pipeline_item(table)["watermark"] == "w1"


def test_a_successful_end_moves_the_watermark_and_the_target_times(api, table):
    put_pipeline(table, watermark="2024-01-01", next_watermark="2024-01-02")
    execution_id = start(api, start_date=START)

    end(api, execution_id, inserts=5, updates=0)

    pipeline = pipeline_item(table)
    assert (pipeline["watermark"], pipeline["next_watermark"]) == ("2024-01-02", "2024-01-02")
    assert pipeline["last_target_insert"] == "2024-01-01T10:05:00Z"
    assert "last_target_update" not in pipeline and "last_target_soft_delete" not in pipeline
    assert pipeline["updated_at"]

    later = start(api, start_date="2024-01-02T10:00:00Z")
    end(api, later, end_date="2024-01-02T10:30:00Z", updates=3, soft_deletes=1)
    pipeline = pipeline_item(table)
    assert pipeline["last_target_insert"] == "2024-01-01T10:05:00Z"
    assert pipeline["last_target_update"] == pipeline["last_target_soft_delete"] == "2024-01-02T10:30:00Z"


def test_a_failed_end_leaves_the_pipeline_alone(api, table):
    put_pipeline(table, watermark="w1", next_watermark="w2")
    execution_id = start(api, start_date=START)

    end(api, execution_id, completed_successfully=False, inserts=10)

    pipeline = pipeline_item(table)
    assert pipeline["watermark"] == "w1" and "last_target_insert" not in pipeline
    assert table.get(*keys.run("acme", execution_id))["status"] == "failed"


def test_load_lineage_turns_off_after_the_first_successful_end_and_back_on_by_request(api, table):
    """Watcher: lineage is sent once, on the first successful run; POST /pipeline or PATCH with
    load_lineage true asks for it again."""
    pipelines = load_area("pipelines").handler
    status, created = invoke(pipelines, "POST", "/pipeline", {"name": "p", "pipeline_type_name": "t"}, EDITOR)
    assert (status, created["load_lineage"]) == (201, True)
    body = {"pipeline_id": created["id"], "start_date": START}

    failed = invoke(api, "POST", "/start_pipeline_execution", body, EDITOR)[1]["id"]
    end(api, failed, completed_successfully=False)
    assert pipeline_item(table, pipeline_id=created["id"])["load_lineage"] is True

    succeeded = invoke(api, "POST", "/start_pipeline_execution", body, EDITOR)[1]["id"]
    assert end(api, succeeded)[0] == 204
    assert pipeline_item(table, pipeline_id=created["id"])["load_lineage"] is False
    status, again = invoke(pipelines, "POST", "/pipeline", {"name": "p", "pipeline_type_name": "t"}, EDITOR)
    assert (status, again["load_lineage"]) == (200, False)

    status, again = invoke(
        pipelines, "POST", "/pipeline", {"name": "p", "pipeline_type_name": "t", "load_lineage": True}, EDITOR
    )
    assert (status, again["load_lineage"]) == (200, True)
    succeeded = invoke(api, "POST", "/start_pipeline_execution", body, EDITOR)[1]["id"]
    end(api, succeeded)
    assert pipeline_item(table, pipeline_id=created["id"])["load_lineage"] is False
    status, patched = invoke(
        pipelines, "PATCH", "/pipeline", {"id": created["id"], "load_lineage": True}, EDITOR
    )
    assert (status, patched["load_lineage"]) == (200, True)


def test_without_next_watermark_the_watermark_stays(api, table):
    put_pipeline(table, watermark="w1")
    end(api, start(api, start_date=START), inserts=1)

    assert pipeline_item(table)["watermark"] == "w1"


def test_ending_twice_overwrites_the_first_end(api, table, bus_events):
    put_pipeline(table)
    execution_id = start(api, start_date=START)

    end(api, execution_id, total_rows=10, inserts=10, execution_metadata={"try": 1})
    end(api, execution_id, end_date="2024-01-01T10:10:00Z", completed_successfully=False)

    body = get(api, execution_id)[1]
    assert (body["completed_successfully"], body["duration_seconds"], body["total_rows"]) == (
        False,
        600,
        None,
    )
    assert body["execution_metadata"] is None
    item = table.get(*keys.run("acme", execution_id))
    assert item["end_count"] == 2
    assert "GSI1PK" not in item  # a failed run leaves the anomaly baseline
    assert [e["detail-type"] for e in bus_events()] == ["execution.ended"]


def test_a_successful_end_publishes_execution_ended(api, table, bus_events):
    put_pipeline(table, pipeline_id=7)
    execution_id = start(api, pipeline_id=7, start_date=START)

    end(api, execution_id)

    [event] = bus_events()
    assert (event["source"], event["detail-type"]) == ("sluice", "execution.ended")
    assert event["detail"] == {"project": "acme", "pipeline_id": 7, "execution_id": execution_id}


def test_an_unreachable_bus_does_not_fail_the_end(api, table, monkeypatch):
    monkeypatch.setenv("EVENT_BUS_NAME", "no-such-bus")
    put_pipeline(table)

    assert end(api, start(api, start_date=START))[0] == 204


def test_concurrent_ends_leave_one_consistent_result(api, table, atomic_writes):
    # Given one execution ended by eight clients at once with different figures
    put_pipeline(table, next_watermark="w2")
    execution_id = start(api, start_date=START)
    results: list[int] = []

    def finish(n: int) -> None:
        results.append(
            end(api, execution_id, end_date=f"2024-01-01T10:0{n}:00Z", total_rows=n * 100, inserts=n)[0]
        )

    threads = [threading.Thread(target=finish, args=(n,)) for n in range(1, 9)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # Then every end applied in turn and the item holds one end's figures, all of them
    assert results == [204] * 8
    item = table.get(*keys.run("acme", execution_id))
    n = item["inserts"]
    assert item["end_count"] == 8
    assert item["total_rows"] == n * 100
    assert item["end_date"] == f"2024-01-01T10:0{n}:00Z"
    assert item["duration_seconds"] == n * 60
    assert pipeline_item(table)["watermark"] == "w2"


def test_an_end_that_loses_the_race_rereads_and_applies_after_the_winner(table):
    put_pipeline(table)
    repository = RunRepository(table)
    pipelines = WatchedPipelines(table)
    api = load_area("runs").handler
    execution_id = start(api, start_date=START)

    class RacingRuns:
        """Lets another end land between this end's read and its write, once."""

        def __init__(self):
            self.raced = False

        def __getattr__(self, name):
            return getattr(repository, name)

        def record_end(self, project, ended, seen, advance):
            if not self.raced:
                self.raced = True
                end(api, execution_id, total_rows=1)
            return repository.record_end(project, ended, seen, advance)

    request = EndExecution.model_validate(
        {
            "id": execution_id,
            "end_date": "2024-01-01T10:30:00Z",
            "completed_successfully": True,
            "total_rows": 2,
        }
    )
    end_execution("acme", request, RacingRuns(), pipelines, RecordingPublisher(), pendulum.now("UTC"))

    item = table.get(*keys.run("acme", execution_id))
    assert (item["end_count"], item["total_rows"]) == (2, 2)
    with pytest.raises(ConcurrentEnd):
        repository.record_end("acme", repository.get("acme", execution_id), 1, None)


# -- hierarchy ------------------------------------------------------------------------------------------
def test_a_root_execution_lists_its_direct_children(api, table):
    put_pipeline(table)
    put_pipeline(table, pipeline_id=2)
    root = start(api, start_date=START)
    first = start(api, start_date="2024-01-01T10:01:00Z", parent_id=root)
    second = start(api, pipeline_id=2, start_date="2024-01-01T10:02:00Z", parent_id=root)
    grandchild = start(api, start_date="2024-01-01T10:03:00Z", parent_id=first)
    end(api, first, end_date="2024-01-01T10:03:00Z", total_rows=500, inserts=400, updates=100, soft_deletes=0)

    status, body = get(api, root)

    assert status == 200
    assert [(c["id"], c["parent_id"], c["pipeline_id"]) for c in body["child_executions"]] == [
        (first, root, 1),
        (second, root, 2),
    ]
    assert all(c["child_executions"] == [] for c in body["child_executions"])
    assert body["child_executions"][0]["throughput"] == 4.1667
    assert [c["id"] for c in get(api, first)[1]["child_executions"]] == [grandchild]
    assert get(api, grandchild)[1]["parent_id"] == first


def test_descendants_and_children_are_each_one_query(api, table):
    put_pipeline(table)
    chain = [start(api, start_date=START)]
    for _ in range(4):
        chain.append(start(api, start_date=START, parent_id=chain[-1]))
    sibling = start(api, start_date=START, parent_id=chain[0])
    repository = RunRepository(table)

    assert repository.descendants("acme", chain[0]) == [
        (chain[1], 1),
        (sibling, 1),
        (chain[2], 2),
        (chain[3], 3),
        (chain[4], 4),
    ]
    assert repository.get("acme", chain[4]).ancestors == tuple(reversed(chain[:4]))
    assert [r.id for r in repository.children("acme", chain[0])] == [chain[1], sibling]
