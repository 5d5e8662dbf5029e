"""The reconciler on moto: the run store's conditions that make repairing lost flow hand-overs and
lost run-queue messages safe against the normal path and against itself, the dispatcher treating
re-sent messages as no-ops, and the scheduled task wiring it all."""

from __future__ import annotations

import importlib.util
import json
import sys
import threading
from pathlib import Path
from unittest.mock import patch

import pendulum
import pytest

from sluice import timeutil
from sluice.adapters.queues import SqsRunQueue
from sluice.adapters.state_machine import StepFunctionsRuns
from sluice.domain.executions import Run
from sluice.domain.flows import FlowGraph
from sluice.domain.run_engine import (
    STALE_PENDING_SECONDS,
    FlowChildStarted,
    Reconciliation,
    RunEngine,
    RunRequest,
)
from sluice.store import keys
from sluice.store.pipelines import PipelineDefinitionRepository
from sluice.store.run_control import RunControl
from sluice.store.runs import RunEngineRepository
from tests.apigw import LambdaContext

ROOT = Path(__file__).resolve().parents[2]
PROJECT = "acme"


def load_runs_function(module: str):
    """functions/runs/<module>.py under a name of its own (the areas share module names)."""
    name = f"sluice_runs_{module}"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ROOT / "functions" / "runs" / f"{module}.py")
        assert spec and spec.loader
        sys.modules[name] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules[name])
    return sys.modules[name]


@pytest.fixture
def queue_url(aws, monkeypatch):
    import boto3

    url = boto3.client("sqs").create_queue(
        QueueName="sluice-test-runs.fifo", Attributes={"FifoQueue": "true"}
    )["QueueUrl"]
    monkeypatch.setenv("RUN_QUEUE_URL", url)
    return url


def queued(queue_url: str) -> list[dict]:
    """Every message in the queue (received and deleted): their bodies, oldest first."""
    import boto3

    sqs, bodies = boto3.client("sqs"), []
    while True:
        got = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
        if not got:
            return bodies
        for message in got:
            bodies.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])


def dataset_pipeline(pid: int, reads: list[str], writes: str) -> dict:
    nodes = [{"id": "rows", "nodeType": "source", "config": {"kind": "inline", "rows": [{"a": 1}]}}]
    nodes += [{"id": r, "nodeType": "source", "config": {"kind": "dataset", "name": r}} for r in reads]
    nodes.append({"id": "out", "nodeType": "target", "config": {"kind": "dataset", "name": writes}})
    return {"nodes": nodes, "edges": []}


class Clock:
    """The real time, shifted on demand (the reconciler's thresholds are minutes)."""

    def __init__(self) -> None:
        self.offset = 0

    def __call__(self) -> pendulum.DateTime:
        return timeutil.now().add(seconds=self.offset)


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def engine(table, queue_url, clock):
    """p1 writes raw, p2 reads it: a downstream flow of p1 has levels [[1], [2]]."""
    definitions = PipelineDefinitionRepository(table)
    for pid, reads, writes in ((1, [], "raw"), (2, ["raw"], "out")):
        graph = dataset_pipeline(pid, reads, writes)
        definitions.create(
            PROJECT,
            definitions.next_id(PROJECT),
            {"name": f"p{pid}", "graph": graph, "status": "active", "revision": 1},
            {"revision": 1, "author": "test", "created_at": timeutil.iso(timeutil.now()), "graph": graph},
        )
    return RunEngine(
        RunEngineRepository(table), definitions, RunControl(table), SqsRunQueue(queue_url), clock=clock
    )


def start_flow(engine: RunEngine) -> int:
    records = [engine.definitions.get(PROJECT, pid) for pid in (1, 2)]
    view = engine.trigger_flow(
        PROJECT,
        FlowGraph.of(records),
        {"type": "pipeline", "name": "p1"},
        "downstream",
        lambda run: {"id": run.id},
    )
    return int(view["id"])


def alive(name: str) -> str:
    return "RUNNING"


def flow_parent(table, project: str, parent_id: int, members: list[list[int]], level: int) -> None:
    """A running flow parent at `level`, waiting for every pipeline of it."""
    now = timeutil.now()
    run = Run(
        id=parent_id,
        pipeline_id=members[0][0],
        status="running",
        start_date=now,
        origin="sluice",
        created_at=now,
    )
    engine = {"flow": {"levels": members}, "flow_level": level, "flow_remaining": len(members[level])}
    RunEngineRepository(table).create(project, run, engine)


def run_in_parallel(calls: int, call) -> list:
    results, lock = [], threading.Lock()

    def one(i: int) -> None:
        outcome = call(i)
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


# -- the store's conditions -----------------------------------------------------------------------
def test_a_flow_child_is_counted_once_however_often_it_is_reported(table):
    repository = RunEngineRepository(table)
    flow_parent(table, PROJECT, 1, [[5], [6, 7]], 1)
    assert repository.flow_child_done(PROJECT, 1, 1, 6, True).stored["flow_remaining"] == 1
    assert repository.flow_child_done(PROJECT, 1, 1, 6, True) is None
    assert repository.flow_child_done(PROJECT, 1, 0, 7, True) is None  # not the parent's level
    done = repository.flow_child_done(PROJECT, 1, 1, 7, False).stored
    assert done["flow_remaining"] == 0 and done["flow_counted"] == {6, 7} and done["flow_failed"] is True
    assert repository.flow_child_done(PROJECT, 1, 1, 7, False) is None


def test_concurrent_hand_overs_and_reconcilers_count_each_child_once_and_one_of_them_advances(
    table, atomic_writes
):
    repository = RunEngineRepository(table)
    flow_parent(table, PROJECT, 1, [[5], [6, 7], [8]], 1)
    # Every child reported four times at once: its own hand-over, retries and reconcilers
    results = run_in_parallel(8, lambda i: repository.flow_child_done(PROJECT, 1, 1, 6 + i % 2, True))
    counted = [r for r in results if r is not None]
    assert len(counted) == 2 and sorted(r.stored["flow_remaining"] for r in counted) == [0, 1]
    moved = run_in_parallel(6, lambda i: repository.start_flow_level(PROJECT, 1, 2, 1))
    assert moved.count(True) == 1
    parent = repository.get(PROJECT, 1).stored
    assert (parent["flow_level"], parent["flow_remaining"]) == (2, 1)
    assert "flow_counted" not in parent and parent["flow_level_started_at"]


def test_a_second_child_for_the_same_place_in_the_flow_writes_nothing(table):
    repository = RunEngineRepository(table)
    flow_parent(table, PROJECT, 1, [[5]], 0)
    now = timeutil.now()

    def child(run_id: int) -> None:
        run = Run(
            id=run_id,
            pipeline_id=5,
            status="pending",
            start_date=now,
            parent_id=1,
            ancestors=(1,),
            created_at=now,
        )
        repository.create(PROJECT, run, {"flow_parent": 1, "flow_level": 0})

    child(2)
    with pytest.raises(FlowChildStarted):
        child(3)
    assert repository.get(PROJECT, 3) is None and repository.active(PROJECT) == [1, 2]
    assert [c.id for c in repository.children(PROJECT, 1)] == [2]


def test_a_re_send_is_claimed_once_and_never_for_a_run_no_longer_pending(table, atomic_writes):
    repository = RunEngineRepository(table)
    for run_id, status in ((1, "pending"), (2, "running")):
        pk, sk = keys.run(PROJECT, run_id)
        table.put({"PK": pk, "SK": sk, "kind": "run", "id": run_id, "status": status, "queued_at": "t0"})
    claims = run_in_parallel(8, lambda i: repository.requeue(PROJECT, 1, "t0", f"t{i + 1}"))
    assert [c for c in claims if c is not None] == [1]
    assert repository.requeue(PROJECT, 1, "t0", "t9") is None  # what it saw is gone
    assert repository.requeue(PROJECT, 2, "t0", "t1") is None
    assert repository.requeue(PROJECT, 3, None, "t1") is None  # no such run


def test_a_re_send_is_not_swallowed_by_the_queues_deduplication(queue_url):
    queue = SqsRunQueue(queue_url)
    queue.send(PROJECT, 1)
    queue.send(PROJECT, 1)  # the same send twice: one message
    queue.send(PROJECT, 1, resend=1)
    assert queued(queue_url) == [{"project": PROJECT, "run_id": 1}] * 2


# -- the engine on DynamoDB and SQS ---------------------------------------------------------------
def test_a_lost_flow_hand_over_is_repaired_once(engine, queue_url):
    parent = start_flow(engine)
    (first,) = engine.runs.children(PROJECT, parent)
    assert engine.dispatch(PROJECT, first.id, lambda name: None) == "started"
    with patch.object(engine, "_hand_over", lambda *args: None):  # the Lambda dies here
        engine.finish(PROJECT, first.id, "success")
    queued(queue_url)

    assert engine.reconcile(PROJECT, alive) == Reconciliation(flows=1)

    item = engine.runs.get(PROJECT, parent).stored
    assert (item["status"], item["flow_level"], item["flow_remaining"]) == ("running", 1, 1)
    second = [c for c in engine.runs.children(PROJECT, parent) if c.flow_level == 1]
    assert [c.pipeline_id for c in second] == [2]
    assert queued(queue_url) == [{"project": PROJECT, "run_id": second[0].id}]
    assert engine.reconcile(PROJECT, alive) == Reconciliation()
    assert queued(queue_url) == []

    engine.dispatch(PROJECT, second[0].id, lambda name: None)
    with patch.object(engine, "_hand_over", lambda *args: None):
        engine.finish(PROJECT, second[0].id, "success")
    engine.reconcile(PROJECT, alive)
    assert engine.runs.get(PROJECT, parent).status == "success"
    assert engine.runs.active(PROJECT) == []


def test_a_pending_run_whose_message_was_lost_is_sent_again_and_dispatched(engine, queue_url, clock):
    view, _ = engine.trigger(
        PROJECT, engine.definitions.get(PROJECT, 1), RunRequest(), lambda run: {"id": run.id}
    )
    run_id = int(view["id"])
    queued(queue_url)  # the message is lost
    clock.offset = STALE_PENDING_SECONDS

    assert engine.reconcile(PROJECT, alive) == Reconciliation(requeued=1)
    assert engine.reconcile(PROJECT, alive) == Reconciliation()
    assert queued(queue_url) == [{"project": PROJECT, "run_id": run_id}]
    assert engine.runs.get(PROJECT, run_id).stored["requeues"] == 1
    assert engine.dispatch(PROJECT, run_id, lambda name: None) == "started"


# -- the Lambdas ------------------------------------------------------------------------------------
def pending_and_finished_runs(table) -> dict[str, int]:
    """A run in each status, as the dispatcher may meet them in re-sent messages."""
    ids = {}
    for run_id, status in enumerate(("pending", "running", "success", "cancelled"), 1):
        pk, sk = keys.run(PROJECT, run_id)
        table.put({"PK": pk, "SK": sk, "kind": "run", "id": run_id, "pipeline_id": 1, "status": status})
        ids[status] = run_id
    return ids


def message(run_id: int) -> dict:
    return {
        "messageId": f"m{run_id}",
        "receiptHandle": f"r{run_id}",
        "body": json.dumps({"project": PROJECT, "run_id": run_id}),
    }


def test_the_dispatcher_drops_a_message_for_a_run_no_longer_pending(table, queue_url, monkeypatch):
    ids = pending_and_finished_runs(table)
    dispatcher = load_runs_function("dispatcher")
    started = []
    monkeypatch.setattr(StepFunctionsRuns, "start", lambda self, name, p, r: started.append(r))
    records = [message(ids[s]) for s in ("running", "success", "cancelled")]

    assert dispatcher.on_runs_queued({"Records": records}, LambdaContext()) == {"batchItemFailures": []}
    assert started == [] and RunControl(table).running_count(PROJECT) == 0
    assert [RunEngineRepository(table).get(PROJECT, ids[s]).status for s in ("running", "success")] == [
        "running",
        "success",
    ]


def test_the_dispatcher_keeps_a_waiting_runs_copy_in_the_queue_without_starting_it(
    table, queue_url, monkeypatch
):
    ids = pending_and_finished_runs(table)
    pk, sk = keys.project(PROJECT), "SETTINGS"
    table.put({"PK": pk, "SK": sk, "max_concurrent_runs": 1})
    table.put({"PK": pk, "SK": "SLOTS", "running": 1})  # the running run holds the only slot
    dispatcher = load_runs_function("dispatcher")
    started = []
    monkeypatch.setattr(StepFunctionsRuns, "start", lambda self, name, p, r: started.append(r))
    monkeypatch.setattr(dispatcher, "_retry_soon", lambda record: None)

    answer = dispatcher.on_runs_queued({"Records": [message(ids["pending"])]}, LambdaContext())

    assert answer == {"batchItemFailures": [{"itemIdentifier": f"m{ids['pending']}"}]}
    assert started == [] and RunControl(table).running_count(PROJECT) == 1
    assert RunEngineRepository(table).get(PROJECT, ids["pending"]).status == "pending"


def test_the_scheduled_task_re_sends_stale_pending_runs_of_every_project(table, queue_url):
    stale = timeutil.iso(timeutil.now().subtract(seconds=STALE_PENDING_SECONDS + 1))
    for project, queued_at in (("old", stale), ("fresh", timeutil.iso(timeutil.now()))):
        RunEngineRepository(table).next_run_id(project)  # registers the project
        now = pendulum.now("UTC")
        run = Run(id=1, pipeline_id=1, status="pending", start_date=now, origin="sluice", created_at=now)
        RunEngineRepository(table).create(project, run, {"queued_at": queued_at})
    tasks = load_runs_function("tasks")

    first = tasks.reconcile_runs({}, LambdaContext())
    second = tasks.reconcile_runs({}, LambdaContext())

    assert first == {"finished": 0, "requeued": 1, "flows": 0, "errors": 0, "failed_projects": []}
    assert second["requeued"] == 0
    assert queued(queue_url) == [{"project": "old", "run_id": 1}]
