"""Backfills and the run counters on moto (issue 12): what a backfill writes, its Map's tasks run
in-process, the reconciler ending a backfill whose execution died, and the per-day counters moving
once per status change."""

from __future__ import annotations

import datetime as _dt

import pendulum
import pytest

from sluice import timeutil
from sluice.adapters.queues import SqsRunQueue
from sluice.domain.run_engine import RunEngine
from sluice.store import keys
from sluice.store.pipelines import PipelineDefinitionRepository
from sluice.store.run_calendar import RunCalendarRepository
from sluice.store.run_control import RunControl
from sluice.store.runs import RunEngineRepository
from tests.integration.test_run_reconciler import PROJECT, Clock, queued


class Machine:
    """The Backfill state machine's port: starts are recorded; executions report `state`."""

    def __init__(self) -> None:
        self.started: list[tuple[str, dict]] = []
        self.state = "RUNNING"

    def start(self, name: str, payload: dict) -> None:
        self.started.append((name, payload))

    def status(self, name: str) -> str:
        return self.state


@pytest.fixture
def machine():
    return Machine()


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def engine(table, aws, monkeypatch, machine, clock):
    import boto3

    url = boto3.client("sqs").create_queue(
        QueueName="sluice-test-runs.fifo", Attributes={"FifoQueue": "true"}
    )["QueueUrl"]
    monkeypatch.setenv("RUN_QUEUE_URL", url)
    definitions = PipelineDefinitionRepository(table)
    graph = {
        "nodes": [{"id": "rows", "nodeType": "source", "config": {"kind": "inline", "rows": [{"a": 1}]}}]
    }
    graph["edges"] = []
    definitions.create(
        PROJECT,
        definitions.next_id(PROJECT),
        {"name": "daily", "graph": graph, "status": "active", "revision": 1},
        {"revision": 1, "author": "test", "created_at": timeutil.iso(timeutil.now()), "graph": graph},
    )
    built = RunEngine(
        RunEngineRepository(table),
        definitions,
        RunControl(table),
        SqsRunQueue(url),
        clock=clock,
        backfills=machine,
        dated_runs=RunCalendarRepository(table),
    )
    built.queue_url = url
    return built


def today(table) -> dict:
    return table.get(*keys.run_day(PROJECT, timeutil.now().date().isoformat())) or {}


def backfill(engine, days: int, **kw):
    record = engine.definitions.get(PROJECT, 1)
    start = _dt.date(2024, 1, 1)
    return engine.backfill(PROJECT, record, start, start + _dt.timedelta(days=days - 1), **kw)


def test_a_backfill_writes_a_parent_and_pending_children_and_starts_one_execution(engine, table, machine):
    answer, created = backfill(engine, 50)
    assert created and answer["count"] == 50 and len(answer["runs"]) == 50
    parent_id = int(answer["id"].removeprefix("run-"))
    ((name, payload),) = machine.started
    assert payload["parent_id"] == parent_id and len(payload["children"]) == 50
    assert payload["concurrency"] == 5  # the project's run slots
    children = engine.runs.children(PROJECT, parent_id)
    assert [c.param_date for c in children] == [
        (_dt.date(2024, 1, 1) + _dt.timedelta(days=n)).isoformat() for n in range(50)
    ]
    assert all(
        c.status == "pending" and c.queued_at is None and c.backfill_parent == parent_id for c in children
    )
    # The day's counter: the parent (running) and 50 pending children, counted once each.
    day = today(table)
    assert (day["total"], day["running"], day["pending"]) == (51, 1, 50)
    # Nothing was sent yet: the Map releases children.
    assert queued(engine.queue_url) == []


def test_the_maps_tasks_release_children_and_the_parent_ends_as_they_did(engine, table):
    answer, _ = backfill(engine, 3)
    parent_id = int(answer["id"].removeprefix("run-"))
    child_ids = [int(r.removeprefix("run-")) for r in answer["runs"]]
    for child in child_ids:
        assert engine.backfill_release(PROJECT, parent_id, child)["done"] is False
    assert sorted(m["run_id"] for m in queued(engine.queue_url)) == child_ids
    assert all(engine.runs.get(PROJECT, c).queued_at for c in child_ids)
    # Two succeed, one fails (as FinishRun ends them), then the Map's last task ends the parent.
    for child, outcome in zip(child_ids, ("success", "failed", "success"), strict=True):
        engine.finish(PROJECT, child, outcome)
        assert engine.backfill_child_done(PROJECT, parent_id, child)["done"] is True
    ended = engine.backfill_finish(PROJECT, parent_id)
    assert ended["status"] == "failed"
    parent = engine.runs.get(PROJECT, parent_id)
    assert "2024-01-02" in parent.error
    day = today(table)
    assert (day["total"], day["success"], day["failed"], day["pending"], day["running"]) == (4, 2, 2, 0, 0)
    assert day["failed#1"] == 2
    # The dates' latest runs, which reprocess reads.
    latest = RunCalendarRepository(table).dated(PROJECT, 1, "2024-01-01", "2024-01-03")
    assert {d: i["status"] for d, i in latest.items()} == {
        "2024-01-01": "success",
        "2024-01-02": "failed",
        "2024-01-03": "success",
    }
    again, _ = backfill(engine, 3, reprocess="failed", dry_run=True)
    assert again["dates"] == ["2024-01-02"]


def test_a_cancelled_backfill_releases_no_more_children(engine, table):
    answer, _ = backfill(engine, 4)
    parent_id = int(answer["id"].removeprefix("run-"))
    child_ids = [int(r.removeprefix("run-")) for r in answer["runs"]]
    assert engine.backfill_release(PROJECT, parent_id, child_ids[0])["done"] is False
    engine.cancel(PROJECT, parent_id)
    # Every pending child (released or not) is cancelled; the Map's next releases are no-ops.
    assert {engine.runs.get(PROJECT, c).status for c in child_ids} == {"cancelled"}
    assert engine.backfill_release(PROJECT, parent_id, child_ids[1])["done"] is True
    assert engine.backfill_finish(PROJECT, parent_id)["status"] == "cancelled"
    assert today(table)["cancelled"] == 5


def test_the_reconciler_ends_a_backfill_whose_execution_died(engine, machine, clock):
    answer, _ = backfill(engine, 3)
    parent_id = int(answer["id"].removeprefix("run-"))
    child_ids = [int(r.removeprefix("run-")) for r in answer["runs"]]
    engine.backfill_release(PROJECT, parent_id, child_ids[0])
    engine.finish(PROJECT, child_ids[0], "success")
    # Alive: nothing to do, and unreleased children are not re-sent as lost messages.
    clock.offset = 3600
    report = engine.reconcile(PROJECT, lambda name: "RUNNING", machine.status)
    assert report.flows == 0 and report.requeued == 0
    assert engine.runs.get(PROJECT, child_ids[1]).status == "pending"
    # Dead: the children it never released are cancelled and the parent ends.
    machine.state = "FAILED"
    engine.reconcile(PROJECT, lambda name: "RUNNING", machine.status)
    assert [engine.runs.get(PROJECT, c).status for c in child_ids] == ["success", "cancelled", "cancelled"]
    assert engine.runs.get(PROJECT, parent_id).status == "failed"


def test_bad_ranges_write_nothing(engine, table, machine):
    from sluice.errors import ValidationFailed

    record = engine.definitions.get(PROJECT, 1)
    with pytest.raises(ValidationFailed):
        engine.backfill(PROJECT, record, _dt.date(2024, 1, 2), _dt.date(2024, 1, 1))
    with pytest.raises(ValidationFailed):
        engine.backfill(PROJECT, record, _dt.date(2024, 1, 1), _dt.date(2025, 1, 1))  # 367 days
    assert machine.started == [] and today(table) == {}


def test_counters_move_once_per_transition_of_an_ordinary_run(engine, table):
    from sluice.domain.run_engine import RunRequest
    from sluice.domain.views.runs import triggered_view

    record = engine.definitions.get(PROJECT, 1)
    view, _ = engine.trigger(PROJECT, record, RunRequest(), triggered_view)
    run_id = int(view["id"].removeprefix("run-"))
    assert (today(table)["total"], today(table)["pending"]) == (1, 1)
    assert engine.dispatch(PROJECT, run_id, lambda name: None) == "started"
    assert (today(table)["pending"], today(table)["running"]) == (0, 1)
    engine.finish(PROJECT, run_id, "success")
    engine.finish(PROJECT, run_id, "success")  # a retried finish moves nothing again
    day = today(table)
    assert (day["total"], day["pending"], day["running"], day["success"]) == (1, 0, 0, 1)
    assert day["bytes"] > 0
    last = RunCalendarRepository(table).last_runs(PROJECT)[1]
    assert last["run_id"] == run_id and last["status"] == "success"
    assert pendulum.parse(last["end_date"])


def test_watcher_executions_move_the_counters_on_start_and_on_each_end(table):
    from dataclasses import replace

    from sluice.domain.executions import Run
    from sluice.store.executions import RunRepository

    runs = RunRepository(table)
    now = timeutil.now()
    run = Run(id=runs.next_run_id(PROJECT), pipeline_id=3, status="running", start_date=now, created_at=now)
    runs.create(PROJECT, run)
    assert (today(table)["total"], today(table)["running"]) == (1, 1)
    runs.record_end(PROJECT, replace(run, status="success", end_date=now, end_count=1), 0, None)
    assert (today(table)["running"], today(table)["success"]) == (0, 1)
    # A second end that changes the outcome moves it from success to failed.
    runs.record_end(PROJECT, replace(run, status="failed", end_date=now, end_count=2), 1, None)
    day = today(table)
    assert (day["total"], day["running"], day["success"], day["failed"], day["failed#3"]) == (1, 0, 0, 1, 1)
    assert RunCalendarRepository(table).last_runs(PROJECT)[3]["status"] == "failed"


def test_a_map_that_ended_early_leaves_no_child_waiting_for_ever(engine):
    answer, _ = backfill(engine, 3)
    parent_id = int(answer["id"].removeprefix("run-"))
    first, *rest = [int(r.removeprefix("run-")) for r in answer["runs"]]
    engine.backfill_release(PROJECT, parent_id, first)
    engine.finish(PROJECT, first, "success")
    # The Map failed (its Catch) before releasing the others: FinishBackfill cancels them.
    assert engine.backfill_finish(PROJECT, parent_id)["status"] == "failed"
    assert [engine.runs.get(PROJECT, c).status for c in rest] == ["cancelled", "cancelled"]
