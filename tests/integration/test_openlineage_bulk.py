"""The OpenLineage ingest's bulk path on moto: a batch's events grouped by run and written in
transactions (START + COMPLETE in one batch = one execution created already ended), runs split
across batches, duplicates, failed ends, anomaly detection queued in batches, an idempotent retry
of a batch that failed half way, and two requests racing on one new run (deterministically here;
with threads against DynamoDB Local in tests/e2e/test_openlineage_race.py, as moto's transactions
are not thread-safe)."""

from __future__ import annotations

import datetime as _dt
import json
import time
import uuid

import boto3
import pytest
from botocore.exceptions import ClientError

from sluice import composition
from sluice.domain import openlineage as ol
from sluice.domain.events import RecordingPublisher
from sluice.store import keys
from sluice.store.executions import RunRepository, WatchedPipelines
from sluice.store.table import Table

PROJECT = "acme"
T0 = _dt.datetime(2026, 12, 3, 10, 0, tzinfo=_dt.UTC)


def event(
    kind, run_id, job="etl", at=T0, *, parent=None, rows=None, error=None, namespace="airflow", inputs=None
):
    facets = {}
    if parent is not None:
        parent_run, parent_job = parent
        facets["parent"] = {
            "_producer": "https://example.com/p",
            "_schemaURL": "https://openlineage.io/spec/facets/1-0-1/ParentRunFacet.json",
            "run": {"runId": parent_run},
            "job": {"namespace": namespace, "name": parent_job},
        }
    if error is not None:
        facets["errorMessage"] = {
            "_producer": "https://example.com/p",
            "_schemaURL": "https://openlineage.io/spec/facets/1-0-1/ErrorMessageRunFacet.json",
            "message": error,
            "programmingLanguage": "python",
        }
    output = {"namespace": "s3://lake", "name": f"clean/{job}"}
    if rows is not None:
        output["outputFacets"] = {
            "outputStatistics": {
                "_producer": "https://example.com/p",
                "_schemaURL": "https://openlineage.io/spec/facets/1-0-2/OutputStatisticsOutputDatasetFacet.json",
                "rowCount": rows,
            }
        }
    return ol.RunEvent.model_validate(
        {
            "eventType": kind,
            "eventTime": at.isoformat(),
            "producer": "https://example.com/producer",
            "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
            "run": {"runId": run_id, "facets": facets},
            "job": {"namespace": namespace, "name": job},
            "inputs": [{"namespace": "s3://lake", "name": name} for name in (inputs or [f"raw/{job}"])],
            "outputs": [output],
        }
    )


def new_run() -> str:
    return str(uuid.uuid4())


def sequential_ingest():
    """The ingest with one worker and one writer: moto's DynamoDB is not thread-safe (its
    transactions copy tables that other threads change); DynamoDB Local and AWS are, and the e2e
    tests run the default 8."""
    made = composition.openlineage_ingest()
    made.publisher = RecordingPublisher()
    made.workers = 1
    made.marks.writers = 1
    return made


@pytest.fixture
def ingest(table):
    return sequential_ingest()


def executions_of(table: Table, project: str = PROJECT) -> list[dict]:
    """Every execution item of the project (a test may scan moto; a request path never does)."""
    items = boto3.client("dynamodb").scan(TableName=table.name)["Items"]
    from sluice.store.table import deserialize

    found = [deserialize(i) for i in items]
    return [i for i in found if i.get("kind") == "run" and i.get("project") == project]


def mappings_of(table: Table, project: str = PROJECT) -> list[dict]:
    return list(table.query_all(keys.openlineage(project), begins_with="RUN#", consistent=True))


def test_start_and_complete_in_one_batch_is_one_execution_created_ended(table, ingest):
    run = new_run()
    answer = ingest.ingest(
        PROJECT,
        [event("COMPLETE", run, at=T0 + _dt.timedelta(seconds=30), rows=7), event("START", run, at=T0)],
    ).view()
    assert (answer["applied"], answer["duplicates"]) == (2, 0)
    execution_id = answer["events"][0]["execution_id"]
    assert answer["events"][1]["execution_id"] == execution_id
    [item] = executions_of(table)
    stored = RunRepository(table).get(PROJECT, execution_id)
    assert stored.status == "success" and stored.completed_successfully is True
    assert (stored.total_rows, stored.inserts, stored.end_count) == (7, 7, 1)
    assert stored.duration_seconds == 30 and stored.throughput == round(7 / 30, 4)
    assert stored.start_date == T0 and item["GSI1PK"]  # on the hour index anomaly detection reads
    assert stored.execution_metadata["openlineage"]["event_type"] == "COMPLETE"
    # The pipeline moved as a successful end moves it, and lineage was recorded once.
    pipeline = WatchedPipelines(table).get(PROJECT, stored.pipeline_id)
    assert pipeline.last_target_insert == T0 + _dt.timedelta(seconds=30)
    assert pipeline.load_lineage is False
    [mapping] = mappings_of(table)
    assert (mapping["execution_id"], mapping["ended"]) == (execution_id, True)
    assert ingest.publisher.of_type("execution.ended") == [
        {"project": PROJECT, "pipeline_id": stored.pipeline_id, "execution_id": execution_id}
    ]


def test_events_of_one_run_split_across_batches_end_the_same_execution(table, ingest):
    run, child = new_run(), new_run()
    first = ingest.ingest(PROJECT, [event("START", run, at=T0)]).view()
    execution_id = first["events"][0]["execution_id"]
    assert RunRepository(table).get(PROJECT, execution_id).status == "running"
    second = ingest.ingest(
        PROJECT,
        [
            event("RUNNING", run, at=T0 + _dt.timedelta(seconds=5)),
            event("START", child, "etl.task", at=T0 + _dt.timedelta(seconds=6), parent=(run, "etl")),
            event("COMPLETE", run, at=T0 + _dt.timedelta(seconds=10), rows=3),
        ],
    ).view()
    assert second["applied"] == 3
    assert second["events"][0]["execution_id"] == second["events"][2]["execution_id"] == execution_id
    repository = RunRepository(table)
    ended = repository.get(PROJECT, execution_id)
    assert (ended.status, ended.total_rows, ended.end_count, ended.duration_seconds) == ("success", 3, 1, 10)
    task = repository.get(PROJECT, second["events"][1]["execution_id"])
    assert (task.parent_id, task.ancestors) == (execution_id, (execution_id,))
    assert [c.id for c in repository.children(PROJECT, execution_id)] == [task.id]
    assert len(executions_of(table)) == 2 and len(mappings_of(table)) == 2


def test_a_parent_named_first_is_started_and_its_own_events_reuse_it(table, ingest):
    parent, child = new_run(), new_run()
    answer = ingest.ingest(
        PROJECT,
        [
            event("START", child, "dag.task", at=T0, parent=(parent, "dag")),
            event("START", parent, "dag", at=T0 + _dt.timedelta(seconds=1)),
            event("COMPLETE", child, "dag.task", at=T0 + _dt.timedelta(seconds=2)),
            event("COMPLETE", parent, "dag", at=T0 + _dt.timedelta(seconds=3)),
        ],
    ).view()
    ids = [e["execution_id"] for e in answer["events"]]
    assert ids[0] == ids[2] and ids[1] == ids[3] and ids[0] != ids[1]
    repository = RunRepository(table)
    parent_run, child_run = repository.get(PROJECT, ids[1]), repository.get(PROJECT, ids[0])
    assert child_run.parent_id == parent_run.id and parent_run.status == child_run.status == "success"
    assert parent_run.start_date == T0 - _dt.timedelta(milliseconds=1)  # started when first named
    assert len(ingest.publisher.of_type("execution.ended")) == 2


def test_duplicates_inside_a_batch_and_a_replayed_batch(table, ingest):
    run = new_run()
    start, complete = event("START", run, at=T0), event("COMPLETE", run, at=T0 + _dt.timedelta(seconds=1))
    answer = ingest.ingest(PROJECT, [start, start, complete, complete]).view()
    assert (answer["applied"], answer["duplicates"]) == (2, 2)
    assert [e["status"] for e in answer["events"]] == ["applied", "duplicate", "applied", "duplicate"]
    again = ingest.ingest(PROJECT, [start, complete]).view()
    assert (again["applied"], again["duplicates"]) == (0, 2)
    assert {e["execution_id"] for e in again["events"]} == {answer["events"][0]["execution_id"]}
    [stored] = executions_of(table)
    assert stored["end_count"] == 1
    assert len(ingest.publisher.of_type("execution.ended")) == 1  # a duplicate queues nothing


def test_a_failed_end_is_recorded_failed_and_moves_nothing(table, ingest):
    run = new_run()
    answer = ingest.ingest(
        PROJECT,
        [event("START", run, at=T0), event("FAIL", run, at=T0 + _dt.timedelta(seconds=2), error="boom")],
    ).view()
    stored = RunRepository(table).get(PROJECT, answer["events"][0]["execution_id"])
    assert (stored.status, stored.completed_successfully) == ("failed", False)
    assert stored.execution_metadata["error"] == "boom"
    assert "GSI1PK" not in executions_of(table)[0]  # not a baseline for anomaly detection
    pipeline = WatchedPipelines(table).get(PROJECT, stored.pipeline_id)
    assert pipeline.last_target_insert is None and pipeline.load_lineage is True
    assert ingest.publisher.events == []
    # A later COMPLETE of an ended run changes nothing (it is applied, as the per-event path did).
    late = ingest.ingest(PROJECT, [event("COMPLETE", run, at=T0 + _dt.timedelta(seconds=9))]).view()
    assert late["applied"] == 1
    assert RunRepository(table).get(PROJECT, stored.id).status == "failed"


def test_anomaly_detection_is_queued_for_each_successful_end_at_once(table, ingest):
    events = []
    for n in range(25):
        run = new_run()
        at = T0 + _dt.timedelta(minutes=n)
        events += [
            event("START", run, f"job{n % 3}", at),
            event("COMPLETE", run, f"job{n % 3}", at + _dt.timedelta(seconds=1), rows=n),
        ]
    events.append(event("FAIL", new_run(), "job0", T0))
    answer = ingest.ingest(PROJECT, events).view()
    assert answer["applied"] == 51
    ended = ingest.publisher.of_type("execution.ended")
    assert len(ended) == 25 and len({e["execution_id"] for e in ended}) == 25
    # Each pipeline's last insert is the latest of its successful ends in the batch.
    pipelines = WatchedPipelines(table)
    for n in range(3):
        pipeline_id = next(
            e["pipeline_id"] for e in ended if e["execution_id"] == answer["events"][2 * n]["execution_id"]
        )
        latest = max(m for m in range(25) if m % 3 == n)
        last_insert = pipelines.get(PROJECT, pipeline_id).last_target_insert
        assert last_insert == T0 + _dt.timedelta(minutes=latest, seconds=1)


def test_the_event_bus_gets_the_ends_in_puts_of_ten(table, ingest, monkeypatch):
    from sluice.adapters.events import EventBridgePublisher

    events_client, sqs = boto3.client("events"), boto3.client("sqs")
    events_client.create_event_bus(Name="sluice-test")
    queue_url = sqs.create_queue(QueueName="bus-tap")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events_client.put_rule(
        Name="tap", EventBusName="sluice-test", EventPattern=json.dumps({"source": ["sluice"]})
    )
    events_client.put_targets(Rule="tap", EventBusName="sluice-test", Targets=[{"Id": "q", "Arn": arn}])
    from sluice import aws

    ingest.publisher = EventBridgePublisher("sluice-test")
    calls = []
    bus = aws.client("events")
    original = bus.put_events

    def counting(**kwargs):
        calls.append(len(kwargs["Entries"]))
        return original(**kwargs)

    monkeypatch.setattr(bus, "put_events", counting)
    batch = []
    for n in range(12):
        run = new_run()
        batch += [
            event("START", run, at=T0 + _dt.timedelta(minutes=n)),
            event("COMPLETE", run, at=T0 + _dt.timedelta(minutes=n, seconds=1)),
        ]
    ingest.ingest(PROJECT, batch)
    received = []
    while messages := sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", []):
        for message in messages:
            received.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    assert calls == [10, 2]
    assert len(received) == 12 and {m["detail-type"] for m in received} == {"execution.ended"}


class FailingTransactions:
    """The bulk write's transactions, the `fail_at`-th of which fails as DynamoDB throttling would."""

    def __init__(self, table: Table, fail_at: int):
        self.table, self.fail_at, self.count = table, fail_at, 0
        self.original = table.transact

    def __call__(self, operations):
        if any(
            op.get("Put", {}).get("Item", {}).get("kind") == {"S": "openlineage_run"} for op in operations
        ):
            self.count += 1  # a transaction of the bulk write (the registry's and lineage's pass)
        if self.count == self.fail_at:
            raise ClientError(
                {"Error": {"Code": "ProvisionedThroughputExceededException"}}, "TransactWriteItems"
            )
        return self.original(operations)


def test_a_batch_failed_half_way_leaves_whole_runs_and_its_retry_completes_it(table, ingest, monkeypatch):
    events = []
    for n in range(60):  # 60 runs of 5 items each: more than one transaction
        run = new_run()
        at = T0 + _dt.timedelta(minutes=n)
        events += [
            event("START", run, f"job{n % 4}", at),
            event("COMPLETE", run, f"job{n % 4}", at + _dt.timedelta(seconds=1), rows=n),
        ]
    marks = ingest.marks
    failing = FailingTransactions(marks.table, fail_at=2)
    monkeypatch.setattr(marks.table, "transact", failing)
    with pytest.raises(ClientError):
        ingest.ingest(PROJECT, events)
    written = executions_of(table)
    assert 0 < len(written) < 60
    # Every execution written is whole: ended, mapped, its events claimed; nothing else is.
    assert all(i["status"] == "success" and i["end_count"] == 1 for i in written)
    assert {m["execution_id"] for m in mappings_of(table)} == {i["id"] for i in written}
    first_ended = len(ingest.publisher.events)
    assert first_ended == 0  # queued only once the batch is written

    monkeypatch.setattr(marks.table, "transact", failing.original)
    retry = ingest.ingest(PROJECT, events).view()
    assert retry["applied"] + retry["duplicates"] == 120
    assert retry["duplicates"] == 2 * len(written) and retry["applied"] == 120 - 2 * len(written)
    final = executions_of(table)
    assert len(final) == 60 and all(i["status"] == "success" and i["end_count"] == 1 for i in final)
    assert len(mappings_of(table)) == 60
    assert len({e["execution_id"] for e in retry["events"]}) == 60
    # The retry queues the ends it wrote; those of the failed attempt's runs were never queued.
    assert len(ingest.publisher.of_type("execution.ended")) == 60 - len(written)


class RacingMarks:
    """Marks whose first write lets another request apply its batch first: the two requests both
    read the new run as unmapped, and the other one writes first (a deterministic race)."""

    def __init__(self, marks, other):
        self.marks, self.other, self.raced = marks, other, False

    def __getattr__(self, name):
        return getattr(self.marks, name)

    def write(self, project, changes, now):
        if not self.raced:
            self.raced = True
            self.other()
        return self.marks.write(project, changes, now)


def test_two_requests_seeing_one_new_run_make_one_execution(table, ingest):
    run = new_run()
    start, complete = (
        event("START", run, at=T0, rows=None),
        event("COMPLETE", run, at=T0 + _dt.timedelta(seconds=4), rows=2),
    )
    rival = sequential_ingest()
    answers = {}
    ingest.marks = RacingMarks(
        ingest.marks, lambda: answers.setdefault("rival", rival.ingest(PROJECT, [start]).view())
    )
    mine = ingest.ingest(PROJECT, [start, complete]).view()
    theirs = answers["rival"]
    assert theirs["applied"] == 1
    # The loser re-read the mapping and ended the winner's execution; its START was a duplicate.
    assert [e["status"] for e in mine["events"]] == ["duplicate", "applied"]
    execution_id = theirs["events"][0]["execution_id"]
    assert {e["execution_id"] for e in mine["events"]} == {execution_id}
    [stored] = executions_of(table)
    assert (stored["id"], stored["status"], stored["total_rows"]) == (execution_id, "success", 2)
    [mapping] = mappings_of(table)
    assert (mapping["execution_id"], mapping["ended"]) == (execution_id, True)


def test_a_batch_of_known_jobs_costs_a_few_batched_calls(table, ingest):
    from tests.perf.dynamodb_calls import DynamoDBCalls

    def batch(hour):
        events = []
        for n in range(10):
            run, at = new_run(), T0 + _dt.timedelta(hours=hour, minutes=n)
            events += [
                event("START", run, f"job{n % 2}", at),
                event("COMPLETE", run, f"job{n % 2}", at, rows=n),
            ]
        return events

    ingest.ingest(PROJECT, batch(0))  # the jobs' pipelines, types and addresses now exist
    with DynamoDBCalls() as calls:
        assert ingest.ingest(PROJECT, batch(1)).applied == 20
        by_operation = {op: tally.calls for op, tally in calls.by_operation().items()}
    # No per-job or per-run reads: names, mappings and pipelines in batches, the ten runs
    # and both pipelines' advances in one transaction, the ids in one counter update.
    assert by_operation.get("GetItem", 0) == 0 and by_operation.get("PutItem", 0) == 0
    assert by_operation["TransactWriteItems"] == 1
    assert by_operation["UpdateItem"] == 2  # the id counter and the month registry
    # mappings, 2 + 2 names, pipelines twice; no claims: no mapping names these new runs
    assert by_operation["BatchGetItem"] == 7
    assert sum(by_operation.values()) == 10, by_operation


def test_a_run_with_many_events_is_claimed_across_transactions(table, ingest):
    run = new_run()
    running = [event("RUNNING", run, at=T0 + _dt.timedelta(seconds=n)) for n in range(1, 121)]
    events = [event("START", run, at=T0), *running, event("COMPLETE", run, at=T0 + _dt.timedelta(minutes=5))]
    answer = ingest.ingest(PROJECT, events).view()
    assert (answer["applied"], answer["duplicates"]) == (122, 0)
    [stored] = executions_of(table)
    assert (stored["status"], stored["end_count"]) == ("success", 1)
    # The 120 RUNNING events change nothing and are claimed on their own, 40 to a change.
    claims = list(table.query_all(keys.openlineage(PROJECT), begins_with="EVENT#", consistent=True))
    assert len(claims) == 120
    [mapping] = mappings_of(table)
    assert len(mapping["events"]) == 2  # the START and the COMPLETE
    again = ingest.ingest(PROJECT, events).view()
    assert (again["applied"], again["duplicates"]) == (0, 122)


def test_ingested_runs_move_the_platforms_day_counters_and_last_runs(table, ingest):
    # Given a run that completes in one batch, one that fails, and one that only starts
    done, broken, open_ = new_run(), new_run(), new_run()
    later = T0 + _dt.timedelta(seconds=20)
    ingest.ingest(
        PROJECT,
        [
            event("START", done, at=T0),
            event("COMPLETE", done, at=later, rows=5),
            event("START", broken, "load", at=T0),
            event("START", open_, "report", at=T0),
        ],
    )
    # When the failure arrives in a later batch (an end of an execution written before)
    ingest.ingest(PROJECT, [event("FAIL", broken, "load", at=later, error="boom")])

    # Then the run calendar counts them as the run writers do, in their own transactions
    day = table.get(*keys.run_day(PROJECT, T0.date().isoformat()), consistent=True)
    assert (day["total"], day["success"], day["failed"], day["running"]) == (3, 1, 1, 1)
    assert day["bytes"] > 0
    load = next(r for r in executions_of(table) if r["status"] == "failed")
    assert day[f"failed#{load['pipeline_id']}"] == 1
    last = table.get(*keys.last_run(PROJECT, int(load["pipeline_id"])), consistent=True)
    assert (last["run_id"], last["status"]) == (int(load["id"]), "failed")


def test_claims_past_a_new_runs_transaction_commit_only_after_it(table, ingest, monkeypatch):
    """The ingest reads no claims for runs no mapping names, so a claim must never exist without
    its run's mapping: the claims that overflow a new run's transaction wait for it, and are not
    written when it fails."""
    from sluice.store.table import TransactionCancelled

    run = new_run()
    running = [event("RUNNING", run, at=T0 + _dt.timedelta(seconds=n)) for n in range(1, 121)]
    events = [event("START", run, at=T0), *running]
    original = Table.transact

    def failing_creation(self, operations):
        if any("Put" in op and op["Put"]["Item"].get("kind", {}).get("S") == "run" for op in operations):
            raise TransactionCancelled(["ThrottlingError"])
        return original(self, operations)

    monkeypatch.setattr(Table, "transact", failing_creation)
    with pytest.raises(TransactionCancelled):
        ingest.ingest(PROJECT, events)
    assert list(table.query_all(keys.openlineage(PROJECT), begins_with="EVENT#", consistent=True)) == []
    assert mappings_of(table) == []
    monkeypatch.setattr(Table, "transact", original)
    answer = ingest.ingest(PROJECT, events).view()
    assert (answer["applied"], answer["duplicates"]) == (121, 0)


def test_a_claim_found_for_a_run_no_mapping_names_is_a_duplicate_after_a_replan(table, ingest):
    """Data an older writer left (a claim without its run's mapping) is not trusted away: the
    plan that skipped the claim read conflicts on it, and the re-plan reads every claim."""
    run = new_run()
    start, running = event("START", run, at=T0), event("RUNNING", run, at=T0 + _dt.timedelta(seconds=1))
    pk, sk = keys.openlineage_event(PROJECT, ol.event_key(running))
    table.put({"PK": pk, "SK": sk, "kind": "openlineage_event"})
    answer = ingest.ingest(PROJECT, [start, running]).view()
    assert [e["status"] for e in answer["events"]] == ["applied", "duplicate"]
    [stored] = executions_of(table)
    assert stored["status"] == "running"


def address_ids(ingest, *names: str) -> list[int]:
    found = ingest.registry.addresses.find_many_by_name(PROJECT, [f"s3://lake/{n}" for n in names])
    return [int(found[f"s3://lake/{n}"]["id"]) for n in names]


def test_new_jobs_reading_an_existing_chain_get_its_whole_ancestry(table, ingest):
    """The new jobs' pipelines and addresses are known to have no lineage rows (they are created
    under the lease), so their reads are skipped; what they connect to is still read."""
    ingest.ingest(PROJECT, [event("COMPLETE", new_run(), "extract", rows=1)])
    ingest.ingest(PROJECT, [event("COMPLETE", new_run(), "clean", rows=1, inputs=["clean/extract"])])
    batch = [
        event("COMPLETE", new_run(), f"report{n}", rows=n, inputs=["clean/clean", f"extra/{n}"])
        for n in range(3)
    ]
    batch.append(event("COMPLETE", new_run(), "archive", rows=1, inputs=["clean/report0"]))
    assert ingest.ingest(PROJECT, batch).applied == 4
    raw, extract, clean, report0, extra0, archive = address_ids(
        ingest, "raw/extract", "clean/extract", "clean/clean", "clean/report0", "extra/0", "clean/archive"
    )
    upstream = ingest.lineage.store.upstream
    assert upstream(PROJECT, report0) == {clean: 1, extra0: 1, extract: 2, raw: 3}
    assert upstream(PROJECT, archive) == {report0: 1, clean: 2, extra0: 2, extract: 3, raw: 4}
    downstream = ingest.lineage.store.downstream(PROJECT, raw)
    assert downstream[archive] == 4 and downstream[report0] == 3 and len(downstream) == 6


def test_a_batch_of_new_jobs_holds_the_lease_from_before_it_creates_them(table, ingest, monkeypatch):
    """A lineage writer arriving while the batch creates its pipelines waits for the lease (and is
    refused after its wait), so it cannot record an edge naming what the batch takes as fresh."""
    from sluice.errors import Conflict

    rival = sequential_ingest()
    now = [time.time()]  # the rival's wait passes on its own clock, without sleeping
    rival.lineage._clock = lambda: now[0]
    rival.lineage._sleep = lambda seconds: now.__setitem__(0, now[0] + seconds)
    refused = []
    create = ingest.registry.create_pipelines

    def create_while_a_rival_writes(project, bodies):
        try:
            rival.ingest(PROJECT, [event("COMPLETE", new_run(), "rival", rows=1, inputs=["clean/new"])])
        except Conflict as exc:
            refused.append(str(exc))
        return create(project, bodies)

    monkeypatch.setattr(ingest.registry, "create_pipelines", create_while_a_rival_writes)
    assert ingest.ingest(PROJECT, [event("COMPLETE", new_run(), "new", rows=1)]).applied == 1
    assert refused and "retry" in refused[0]
    # Once the batch is done, the rival's retry records its edge onto the batch's new address.
    assert rival.ingest(
        PROJECT, [event("COMPLETE", new_run(), "rival", rows=1, inputs=["clean/new"])]
    ).applied
    raw, new, out = address_ids(ingest, "raw/new", "clean/new", "clean/rival")
    assert ingest.lineage.store.upstream(PROJECT, out) == {new: 1, raw: 2}
