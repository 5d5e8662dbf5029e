"""The SDK (sluice.client) end to end against `sluice dev`: seed 001's calls, Watcher's executions,
OpenLineage in (events written with the openlineage-python client's own classes), the served
OpenAPI document, and the typed errors of a wrong URL or key."""

from __future__ import annotations

import datetime as _dt
import time
import uuid

import httpx
import pytest
from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
from openlineage.client.facet_v2 import (
    column_lineage_dataset,
    error_message_run,
    output_statistics_output_dataset,
    parent_run,
)
from openlineage.client.serde import Serde

from sluice.client import (
    AuthenticationFailed,
    Client,
    Conflict,
    ConnectionFailed,
    NotFound,
    PayloadTooLarge,
    RunFailed,
    RunTimeout,
    ValidationFailed,
)
from tests.e2e.conftest import eventually, free_port, moto_client

PIPELINE_YAML = """
name: {name}
version: "1.0"
sources:
  - name: orders
    type: inline
    rows:
      - {{id: 1, amount: 5}}
      - {{id: 2, amount: 50}}
      - {{id: 3, amount: 500}}
transforms:
  - name: big
    type: sql
    inputs: [orders]
    sql: SELECT id, amount FROM orders WHERE amount > 10
destinations:
  - name: {name}_big
    type: dataset
    inputs: [big]
"""
BROKEN_YAML = """
name: {name}
sources:
  - name: orders
    type: inline
    rows: [{{id: 1}}]
transforms:
  - name: broken
    type: sql
    inputs: [orders]
    sql: SELECT no_such_column FROM orders
destinations:
  - name: {name}_out
    type: dataset
    inputs: [broken]
"""


@pytest.fixture
def client(stack, project_admin):
    _project, key = project_admin
    with Client(stack.base_url, key) as sdk:
        yield sdk


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


# -- seed 001's calls ---------------------------------------------------------------------------------
def test_pipeline_created_from_yaml_runs_to_success_with_its_rows(client):
    name = unique("sdk")
    created = client.pipelines.create(PIPELINE_YAML.format(name=name))
    assert created.name == name
    assert [p.name for p in client.pipelines.list()] == [name]
    assert client.pipelines.get(name).version == "1.0"

    run = client.pipelines.run(name, full_refresh=True)
    result = run.wait(timeout=60)

    assert result.status == "success"
    assert result.rows_loaded == 2
    assert {n.node_id: n.row_count for n in result.node_runs} == {"orders": 3, "big": 2, f"{name}_big": 2}
    history = client.pipelines.runs(name, limit=10)
    assert [r.id for r in history] == [run.id]
    assert history[0].rows_loaded == 2
    assert client.runs.logs(run.id), "a finished run has log lines"


def test_dict_create_update_delete_and_a_taken_name(client):
    name = unique("dict")
    definition = {
        "name": name,
        "sources": [{"name": "src", "type": "inline", "rows": [{"a": 1}]}],
        "destinations": [{"name": f"{name}_out", "type": "dataset", "inputs": ["src"]}],
    }
    client.pipelines.create(definition)
    with pytest.raises(Conflict):
        client.pipelines.create(definition)
    updated = client.pipelines.update(name, {**definition, "description": "second"})
    assert updated.description == "second"
    _, created = client.pipelines.apply(definition)
    assert created is False
    client.pipelines.delete(name)
    with pytest.raises(NotFound) as missing:
        client.pipelines.get(name)
    assert missing.value.status_code == 404 and missing.value.detail


def test_a_failing_run_raises_run_failed_naming_the_node(client):
    name = unique("broken")
    client.pipelines.create(BROKEN_YAML.format(name=name))
    run = client.pipelines.run(name)
    with pytest.raises(RunFailed) as failed:
        run.wait(timeout=60)
    assert failed.value.run.status == "failed"
    assert "broken" in str(failed.value)
    # Resume makes a new run that points at the failed one (it fails again: the SQL is wrong).
    resumed = client.runs.resume(run.id)
    assert resumed.id != run.id
    assert resumed.wait(timeout=60, raise_on_failure=False).resumed_from == run.id


def test_cancel_of_a_waiting_run_and_wait_timeout(stack, client, project_admin):
    project, _ = project_admin
    name = unique("queued")
    client.pipelines.create(PIPELINE_YAML.format(name=name))
    # No execution slot for the project: runs wait as pending (SPEC 4's queue).
    table = next(n for n in moto_client(stack, "dynamodb").list_tables()["TableNames"] if "Table" in n)
    moto_client(stack, "dynamodb").put_item(
        TableName=table,
        Item={"PK": {"S": f"P#{project}"}, "SK": {"S": "SETTINGS"}, "max_concurrent_runs": {"N": "0"}},
    )
    run = client.pipelines.run(name)
    with pytest.raises(RunTimeout):
        run.wait(timeout=0.5)
    assert client.runs.cancel(run.id) == {"status": "cancelled"}
    assert client.runs.get(run.id).status == "cancelled"
    with pytest.raises(RunFailed):
        run.wait(timeout=5)
    with pytest.raises(Conflict):
        client.runs.cancel(run.id)


def test_wait_overhead_over_the_runs_own_span_is_small(client):
    name = unique("span")
    client.pipelines.create(PIPELINE_YAML.format(name=name))
    started = time.monotonic()
    result = client.pipelines.run(name).wait(timeout=60)
    waited = time.monotonic() - started
    assert result.seconds is not None and waited >= result.seconds
    assert waited - result.seconds < 1.5, (waited, result.seconds)


# -- executions (Watcher's calls) ---------------------------------------------------------------------
def test_track_ends_the_execution_with_counts_or_with_the_failure(client):
    with client.executions.track("nightly-export") as execution:
        execution.record(total_rows=120, inserts=100, updates=20)
    ended = client.executions.get(execution.id)
    assert ended.completed_successfully is True
    assert ended.total_rows == 120

    with (
        pytest.raises(RuntimeError),
        client.executions.track("nightly-export", parent_id=execution.id) as child,
    ):
        raise RuntimeError("source unreachable")
    failed = client.executions.get(child.id)
    assert failed.completed_successfully is False
    assert "source unreachable" in failed.execution_metadata["error"]
    assert [c.id for c in client.executions.get(execution.id).child_executions] == [child.id]


# -- errors --------------------------------------------------------------------------------------------
def test_a_wrong_key_is_authentication_failed_and_a_wrong_url_connection_failed(stack):
    with (
        Client(stack.base_url, "df_key_" + "w" * 40) as wrong_key,
        pytest.raises(AuthenticationFailed) as denied,
    ):
        wrong_key.pipelines.list()
    assert denied.value.status_code == 401 and "key" in denied.value.message.lower()

    with (
        Client(f"http://127.0.0.1:{free_port()}", "df_key_x", retries=1) as nowhere,
        pytest.raises(ConnectionFailed) as unreachable,
    ):
        nowhere.pipelines.list()
    assert "No Sluice answered at" in str(unreachable.value)

    with (
        Client(stack.base_url + "/not-the-api", stack.admin_key) as wrong_path,
        pytest.raises(NotFound) as nf,
    ):
        wrong_path.pipelines.list()
    assert "No route" in nf.value.message


def test_validation_errors_name_the_field(client):
    with pytest.raises(ValidationFailed) as invalid:
        client.pipelines.create({"name": unique("bad"), "status": "sleeping"})
    assert "status" in invalid.value.message


# -- the served OpenAPI document --------------------------------------------------------------------
def test_openapi_and_docs_are_served_without_auth(stack):
    document = httpx.get(stack.base_url + "/openapi.json", timeout=30)
    assert document.status_code == 200
    body = document.json()
    assert body["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    assert "/api/v1/lineage" in body["paths"] and "/api/v1/pipelines/{name}/runs" in body["paths"]
    page = httpx.get(stack.base_url + "/docs", timeout=30)
    assert page.status_code == 200 and "/openapi.json" in page.text


# -- OpenLineage in ------------------------------------------------------------------------------------
PRODUCER = "https://github.com/example/airflow-provider/1.0"


def ol_event(state, run_id, job, at, *, parent=None, inputs=(), outputs=(), run_facets=None):
    facets = dict(run_facets or {})
    if parent is not None:
        facets["parent"] = parent_run.ParentRunFacet(
            run=parent_run.Run(runId=parent[0]), job=parent_run.Job(namespace="airflow", name=parent[1])
        )
    event = RunEvent(
        eventType=state,
        eventTime=at.isoformat(),
        run=Run(runId=run_id, facets=facets),
        job=Job(namespace="airflow", name=job),
        producer=PRODUCER,
        inputs=list(inputs),
        outputs=list(outputs),
    )
    return Serde.to_dict(event)


def test_openlineage_job_with_a_parent_and_two_datasets(client):
    dag_run, task_run = str(uuid.uuid4()), str(uuid.uuid4())
    t0 = _dt.datetime.now(_dt.UTC)
    orders = InputDataset(namespace="postgres://warehouse:5432", name="shop.public.orders")
    big = OutputDataset(
        namespace="postgres://warehouse:5432",
        name="shop.public.big_orders",
        facets={
            "columnLineage": column_lineage_dataset.ColumnLineageDatasetFacet(
                fields={
                    "amount": column_lineage_dataset.Fields(
                        inputFields=[
                            column_lineage_dataset.InputField(
                                namespace="postgres://warehouse:5432",
                                name="shop.public.orders",
                                field="amount",
                            )
                        ]
                    )
                }
            )
        },
        outputFacets={
            "outputStatistics": output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet(
                rowCount=42
            )
        },
    )
    events = [
        ol_event(RunState.START, dag_run, "daily_orders", t0),
        ol_event(
            RunState.START,
            task_run,
            "daily_orders.filter",
            t0 + _dt.timedelta(seconds=1),
            parent=(dag_run, "daily_orders"),
            inputs=[orders],
            outputs=[big],
        ),
        ol_event(
            RunState.COMPLETE,
            task_run,
            "daily_orders.filter",
            t0 + _dt.timedelta(seconds=3),
            parent=(dag_run, "daily_orders"),
            inputs=[orders],
            outputs=[big],
        ),
        ol_event(RunState.COMPLETE, dag_run, "daily_orders", t0 + _dt.timedelta(seconds=4)),
    ]
    answer = client.lineage.send(events)
    assert (answer["received"], answer["applied"], answer["duplicates"]) == (4, 4, 0)
    dag_execution = answer["events"][0]["execution_id"]
    task_execution = answer["events"][1]["execution_id"]
    assert answer["events"][2]["execution_id"] == task_execution

    parent = client.executions.get(dag_execution)
    assert parent.completed_successfully is True and parent.duration_seconds == 4
    assert [c.id for c in parent.child_executions] == [task_execution]
    child = client.executions.get(task_execution)
    assert child.parent_id == dag_execution
    assert (child.total_rows, child.duration_seconds, child.completed_successfully) == (42, 2, True)

    target = client.datasets.find("postgres://warehouse:5432/shop.public.big_orders")
    source = client.datasets.find("postgres://warehouse:5432/shop.public.orders")
    assert client.lineage.of(target.id)["upstream"] == [
        {"address_id": source.id, "name": source.name, "depth": 1}
    ]
    assert target.model_extra["address_metadata"]["column_lineage"] == {
        "amount": [{"dataset": "postgres://warehouse:5432/shop.public.orders", "field": "amount"}]
    }

    # The same events again change nothing (idempotent on runId + eventType + eventTime).
    again = client.lineage.send(events)
    assert (again["applied"], again["duplicates"]) == (0, 4)
    assert [e["execution_id"] for e in again["events"]] == [e["execution_id"] for e in answer["events"]]


def test_openlineage_fail_ends_the_execution_failed_with_its_message(client):
    run_id = str(uuid.uuid4())
    t0 = _dt.datetime.now(_dt.UTC)
    failure = error_message_run.ErrorMessageRunFacet(message="division by zero", programmingLanguage="python")
    answer = client.lineage.send(
        [
            ol_event(RunState.START, run_id, "flaky", t0),
            ol_event(
                RunState.FAIL,
                run_id,
                "flaky",
                t0 + _dt.timedelta(seconds=2),
                run_facets={"errorMessage": failure},
            ),
        ]
    )
    ended = client.executions.get(answer["events"][1]["execution_id"])
    assert ended.completed_successfully is False
    assert ended.execution_metadata["error"] == "division by zero"


def test_openlineage_bad_events_are_422_naming_the_field_and_a_big_batch_413(client):
    good = ol_event(RunState.START, str(uuid.uuid4()), "job", _dt.datetime.now(_dt.UTC))
    bad = {**good, "run": {"runId": "not-a-uuid"}}
    with pytest.raises(ValidationFailed) as invalid:
        client.lineage.send([good, bad])
    assert invalid.value.detail[0]["loc"] == ["body", "1", "run", "runId"]
    no_time = {k: v for k, v in good.items() if k != "eventTime"}
    with pytest.raises(ValidationFailed) as missing:
        client.lineage.send(no_time)
    assert missing.value.detail[0]["loc"] == ["body", "eventTime"]
    with pytest.raises(PayloadTooLarge) as too_many:
        client.lineage.send([good] * 1001)
    assert "at most 1000" in too_many.value.message
    # Nothing of the refused batches was applied: the good event is still new.
    assert client.lineage.send(good)["applied"] == 1


def test_openlineage_batch_of_1000_events(stack, project_admin):
    """500 task runs of 50 jobs, START and COMPLETE each, in one request (docs/performance.md 14
    has the figure; this machine is shared, so the test asserts the outcome, not the time)."""
    client = Client(stack.base_url, project_admin[1], timeout=300)
    t0 = _dt.datetime.now(_dt.UTC) - _dt.timedelta(hours=1)
    events = []
    for n in range(500):
        run_id, job = str(uuid.uuid4()), f"batch_job_{n % 50}"
        src = InputDataset(namespace="s3://lake", name=f"raw/{n % 50}")
        out = OutputDataset(
            namespace="s3://lake",
            name=f"clean/{n % 50}",
            outputFacets={
                "outputStatistics": output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet(
                    rowCount=n
                )
            },
        )
        at = t0 + _dt.timedelta(seconds=n)
        events.append(ol_event(RunState.START, run_id, job, at, inputs=[src], outputs=[out]))
        events.append(
            ol_event(
                RunState.COMPLETE,
                run_id,
                job,
                at + _dt.timedelta(milliseconds=500),
                inputs=[src],
                outputs=[out],
            )
        )
    started = time.monotonic()
    answer = client.lineage.send(events)
    elapsed = time.monotonic() - started
    assert (answer["received"], answer["applied"]) == (1000, 1000)
    last = client.executions.get(answer["events"][-1]["execution_id"])
    assert (last.total_rows, last.completed_successfully) == (499, True)
    print(f"\n1,000 OpenLineage events in one batch: {elapsed:.2f} s ({1000 / elapsed:.0f} events/s)")
    eventually(lambda: client.datasets.find("s3://lake/clean/49"))
    client.close()


def test_openlineage_roles_and_tenancy(stack, client, project_admin):
    from tests.e2e.conftest import jwt_for

    project, _ = project_admin
    run_id = str(uuid.uuid4())
    event = ol_event(RunState.START, run_id, "shared_name", _dt.datetime.now(_dt.UTC))
    with Client(stack.base_url, jwt_for(project, "viewer")) as viewer:
        from sluice.client import PermissionDenied

        with pytest.raises(PermissionDenied):
            viewer.lineage.send(event)
    at = _dt.datetime.now(_dt.UTC) - _dt.timedelta(hours=1)  # applied first: the batch goes in time order
    earlier = [ol_event(RunState.START, str(uuid.uuid4()), "other_job", at) for _ in range(3)]
    mine = client.lineage.send([*earlier, event])["events"][-1]["execution_id"]

    # Another project sending the same event gets its own execution; neither sees the other's.
    other_project = "e2e-other-" + uuid.uuid4().hex[:6]
    with Client(stack.base_url, jwt_for(other_project, "editor")) as other:
        theirs = other.lineage.send(event)
        assert theirs["applied"] == 1, "the idempotency key is per project"
        their_execution = theirs["events"][0]["execution_id"]
        assert other.executions.get(their_execution).execution_metadata["openlineage"]["run_id"] == run_id
        assert their_execution < mine  # the other project's counter started at 1
        with pytest.raises(NotFound):
            other.executions.get(mine)
        assert [a.name for a in other.datasets.list()] == []
    assert client.executions.get(mine).pipeline_id is not None
