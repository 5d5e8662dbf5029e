"""The reconciler over in-memory fakes: nothing stays pending or running for ever. Flow parents
whose hand-over a dead Lambda lost move on exactly as the hand-over would have, pending runs
whose message was lost are sent again, and a second pass changes nothing."""

from __future__ import annotations

from unittest.mock import patch

import pytest

from sluice.domain.flows import FlowGraph
from sluice.domain.run_engine import (
    EXECUTION_START_GRACE_SECONDS,
    FLOW_START_GRACE_SECONDS,
    STALE_PENDING_SECONDS,
    Reconciliation,
    RunEngine,
    RunRecord,
)
from tests.unit.test_run_engine import (
    NOW,
    FakeDefinitions,
    FakeQueue,
    FakeRuns,
    FakeSlots,
    execution_name,
    trigger,
)

NOTHING = Reconciliation()


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self):
        return self.now

    def advance(self, seconds: float) -> None:
        self.now = self.now.add(seconds=seconds)


def pipeline(pid: int, reads: list[str], writes: list[str]) -> dict:
    nodes = [{"id": "rows", "nodeType": "source", "config": {"kind": "inline", "rows": [{"a": 1}]}}]
    nodes += [
        {"id": f"r{i}", "nodeType": "source", "config": {"kind": "dataset", "name": n}}
        for i, n in enumerate(reads)
    ]
    nodes += [
        {"id": f"w{i}", "nodeType": "target", "config": {"kind": "dataset", "name": n}}
        for i, n in enumerate(writes)
    ]
    return {
        "id": pid,
        "name": f"p{pid}",
        "status": "active",
        "revision": 1,
        "graph": {"nodes": nodes, "edges": []},
    }


class FlowDefinitions:
    """p1 writes raw; p2 and p3 read it; p4 reads what they write: levels [[1], [2, 3], [4]]."""

    def __init__(self) -> None:
        self.records = {
            1: pipeline(1, [], ["raw"]),
            2: pipeline(2, ["raw"], ["left"]),
            3: pipeline(3, ["raw"], ["right"]),
            4: pipeline(4, ["left", "right"], ["joined"]),
        }

    def get(self, project, pipeline_id):
        return self.records.get(pipeline_id)

    def find_by_name(self, project, name):
        return next((r for r in self.records.values() if r["name"] == name), None)

    def revision(self, project, pipeline_id, number):
        return {"graph": self.records[pipeline_id]["graph"]}


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def engine(clock):
    runs = FakeRuns(clock)
    return RunEngine(runs, FlowDefinitions(), FakeSlots(runs, limit=10), FakeQueue(), clock=clock)


def alive(name: str) -> str:
    return "RUNNING"


def start_flow(engine: RunEngine) -> int:
    flow = FlowGraph.of(list(engine.definitions.records.values()))
    view = engine.trigger_flow(
        "acme", flow, {"type": "pipeline", "name": "p1"}, "downstream", lambda run: {"id": run.id}
    )
    return int(view["id"])


def children(engine: RunEngine, parent: int, level: int | None = None) -> dict[int, RunRecord]:
    """The parent's children by pipeline id (of one level when given)."""
    return {
        c.pipeline_id: c
        for c in engine.runs.children("acme", parent)
        if level is None or c.flow_level == level
    }


def run_child(engine: RunEngine, child: RunRecord, outcome: str = "success", lose_hand_over: bool = False):
    """Dispatch and finish a child; `lose_hand_over`: its Lambda dies between ending the child
    and telling the parent."""
    engine.dispatch("acme", child.id, lambda name: None)
    if lose_hand_over:
        with patch.object(engine, "_hand_over", lambda *args: None):
            engine.finish("acme", child.id, outcome)
    else:
        engine.finish("acme", child.id, outcome)


def parent_of(engine: RunEngine, parent: int) -> dict:
    return engine.runs.items[parent]


# -- flow parents ---------------------------------------------------------------------------------
def test_a_child_whose_hand_over_was_lost_is_counted_and_the_next_level_starts_once(engine):
    parent = start_flow(engine)
    run_child(engine, children(engine, parent)[1], lose_hand_over=True)
    assert parent_of(engine, parent)["flow_level"] == 0 and parent_of(engine, parent)["flow_remaining"] == 1

    assert engine.reconcile("acme", alive).flows == 1

    assert parent_of(engine, parent)["flow_level"] == 1
    assert set(children(engine, parent, 1)) == {2, 3}
    assert engine.reconcile("acme", alive) == NOTHING
    assert len(children(engine, parent)) == 3


def test_the_late_hand_over_after_the_reconciler_counted_the_child_changes_nothing(engine):
    parent = start_flow(engine)
    first = children(engine, parent)[1]
    run_child(engine, first, lose_hand_over=True)
    engine.reconcile("acme", alive)
    before = dict(parent_of(engine, parent))

    # The slow Lambda was not dead after all: its hand-over arrives now, and a retried finish too
    engine._hand_over("acme", engine.runs.get("acme", first.id), True)
    engine.finish("acme", first.id, "success")

    assert parent_of(engine, parent) == before
    assert len(children(engine, parent)) == 3


def test_a_retried_finish_repeats_the_hand_over_its_first_attempt_lost(engine):
    parent = start_flow(engine)
    first = children(engine, parent)[1]
    run_child(engine, first, lose_hand_over=True)
    engine.finish("acme", first.id, "success")  # Step Functions retries FinishRun
    assert parent_of(engine, parent)["flow_level"] == 1 and set(children(engine, parent, 1)) == {2, 3}
    assert engine.reconcile("acme", alive) == NOTHING


def test_no_child_is_counted_while_another_child_of_the_level_still_runs(engine):
    parent = start_flow(engine)
    run_child(engine, children(engine, parent)[1])
    level = children(engine, parent, 1)
    run_child(engine, level[2], lose_hand_over=True)
    engine.dispatch("acme", level[3].id, lambda name: None)

    assert engine.reconcile("acme", alive) == NOTHING
    assert parent_of(engine, parent)["flow_remaining"] == 2

    engine.finish("acme", level[3].id, "success")  # told normally: one left uncounted
    assert parent_of(engine, parent)["flow_level"] == 1
    assert engine.reconcile("acme", alive).flows == 1
    assert parent_of(engine, parent)["flow_level"] == 2 and set(children(engine, parent, 2)) == {4}


def test_the_last_lost_hand_over_ends_the_parent_success(engine):
    parent = start_flow(engine)
    run_child(engine, children(engine, parent)[1])
    for child in children(engine, parent, 1).values():
        run_child(engine, child)
    run_child(engine, children(engine, parent, 2)[4], lose_hand_over=True)
    assert parent_of(engine, parent)["status"] == "running"

    assert engine.reconcile("acme", alive).flows == 1

    assert parent_of(engine, parent)["status"] == "success"
    assert parent not in engine.runs.active_ids
    assert engine.reconcile("acme", alive) == NOTHING


def test_a_failed_child_whose_hand_over_was_lost_fails_the_parent_naming_it(engine):
    parent = start_flow(engine)
    run_child(engine, children(engine, parent)[1], outcome="failed", lose_hand_over=True)
    engine.reconcile("acme", alive)
    ended = parent_of(engine, parent)
    assert ended["status"] == "failed" and "p1" in ended["error"]
    assert set(children(engine, parent)) == {1}  # the next level never started


def test_a_level_counted_but_never_moved_on_is_advanced_once(engine):
    parent = start_flow(engine)
    original = engine.runs.start_flow_level

    def dies(*args):
        raise RuntimeError("Lambda timed out")

    engine.runs.start_flow_level = dies
    with pytest.raises(RuntimeError):
        run_child(engine, children(engine, parent)[1])
    engine.runs.start_flow_level = original
    assert (parent_of(engine, parent)["flow_level"], parent_of(engine, parent)["flow_remaining"]) == (0, 0)

    assert engine.reconcile("acme", alive).flows == 1
    assert parent_of(engine, parent)["flow_level"] == 1 and set(children(engine, parent, 1)) == {2, 3}
    assert engine.reconcile("acme", alive) == NOTHING


def test_children_never_started_are_started_after_the_grace_and_once(engine, clock):
    # Given a trigger whose Lambda died after writing the parent
    with patch.object(engine, "_start_flow_children", lambda *args: None):
        parent = start_flow(engine)
    # When the reconciler looks before the grace is over, it leaves the starter its time
    clock.advance(FLOW_START_GRACE_SECONDS - 1)
    assert engine.reconcile("acme", alive) == NOTHING and children(engine, parent) == {}
    # Then after it, the level's child is started, once
    clock.advance(1)
    assert engine.reconcile("acme", alive).flows == 1
    assert set(children(engine, parent)) == {1}
    assert engine.reconcile("acme", alive) == NOTHING
    run_child(engine, children(engine, parent)[1])
    assert parent_of(engine, parent)["flow_level"] == 1


def test_a_level_half_started_gets_only_its_missing_children(engine, clock):
    parent = start_flow(engine)
    original = engine.definitions.get

    def dies_on_the_second(project, pipeline_id):
        if pipeline_id == 3:
            raise RuntimeError("Lambda timed out")
        return original(project, pipeline_id)

    engine.definitions.get = dies_on_the_second
    with pytest.raises(RuntimeError):
        run_child(engine, children(engine, parent)[1])
    engine.definitions.get = original
    assert set(children(engine, parent, 1)) == {2}

    clock.advance(FLOW_START_GRACE_SECONDS)
    assert engine.reconcile("acme", alive).flows == 1
    assert set(children(engine, parent, 1)) == {2, 3} and len(children(engine, parent)) == 3


def test_starting_a_child_twice_creates_one_run_and_counts_nothing(engine):
    parent = start_flow(engine)
    engine._start_flow_children("acme", parent, 0, [1])  # the reconciler racing the trigger
    assert len(children(engine, parent)) == 1
    assert parent_of(engine, parent)["flow_remaining"] == 1 and not parent_of(engine, parent).get(
        "flow_failed"
    )


def test_a_cancelled_parent_whose_children_never_started_ends_cancelled(engine, clock):
    with patch.object(engine, "_start_flow_children", lambda *args: None):
        parent = start_flow(engine)
    engine.cancel("acme", parent)
    clock.advance(FLOW_START_GRACE_SECONDS)
    engine.reconcile("acme", alive)
    assert parent_of(engine, parent)["status"] == "cancelled" and children(engine, parent) == {}


def test_a_missing_child_that_cannot_start_fails_the_parent(engine, clock):
    with patch.object(engine, "_start_flow_children", lambda *args: None):
        parent = start_flow(engine)
    del engine.definitions.records[1]
    clock.advance(FLOW_START_GRACE_SECONDS)
    engine.reconcile("acme", alive)
    ended = parent_of(engine, parent)
    assert ended["status"] == "failed" and "could not be started" in ended["error"]


# -- pending runs whose message was lost ------------------------------------------------------------
@pytest.fixture
def single(clock):
    runs = FakeRuns(clock)
    return RunEngine(runs, FakeDefinitions(), FakeSlots(runs, limit=1), FakeQueue(), clock=clock)


def test_a_pending_run_is_sent_again_after_the_threshold_once_per_threshold(single, clock):
    run_id = trigger(single)
    clock.advance(STALE_PENDING_SECONDS - 1)
    assert single.reconcile("acme", alive) == NOTHING
    clock.advance(1)
    assert single.reconcile("acme", alive).requeued == 1
    assert single.queue.resends == [(run_id, 1)]
    assert single.reconcile("acme", alive) == NOTHING
    clock.advance(STALE_PENDING_SECONDS)
    single.reconcile("acme", alive)
    assert single.queue.resends == [(run_id, 1), (run_id, 2)]
    assert single.runs.items[run_id]["status"] == "pending"


def test_no_pending_run_is_sent_again_while_every_slot_is_taken(single, clock):
    running, waiting = trigger(single), trigger(single)
    single.dispatch("acme", running, lambda name: None)
    clock.advance(STALE_PENDING_SECONDS)
    assert single.reconcile("acme", alive) == NOTHING
    single.finish("acme", running, "success")
    assert single.reconcile("acme", alive).requeued == 1
    assert single.queue.resends == [(waiting, 1)]


def test_re_sent_messages_never_start_more_than_the_limit(single):
    first, second = trigger(single), trigger(single)
    started = []
    assert single.dispatch("acme", first, started.append) == "started"
    # The waiting run's original message and a re-sent copy: both find the project full
    assert single.dispatch("acme", second, started.append) == "full"
    assert single.dispatch("acme", second, started.append) == "full"
    single.finish("acme", first, "success")
    assert single.dispatch("acme", second, started.append) == "started"
    # The copy that arrives after it started, and a late copy of the finished run, are dropped
    assert single.dispatch("acme", second, started.append) == "dropped"
    assert single.dispatch("acme", first, started.append) == "dropped"
    assert started == [execution_name("acme", first), execution_name("acme", second)]
    assert single.slots.held == {second}


def test_a_stale_pending_run_whose_cancel_was_lost_ends_cancelled(single, clock):
    run_id = trigger(single)
    single.slots.request_cancel("acme", run_id)  # and the Lambda died before ending it
    clock.advance(STALE_PENDING_SECONDS)
    assert single.reconcile("acme", alive).finished == 1
    assert single.runs.items[run_id]["status"] == "cancelled" and single.queue.resends == []


def test_a_failed_re_send_is_reported_and_retried_a_threshold_later(single, clock):
    run_id = trigger(single)
    clock.advance(STALE_PENDING_SECONDS)
    single.queue.broken = True
    assert single.reconcile("acme", alive).errors == 1
    single.queue.broken = False
    assert single.reconcile("acme", alive) == NOTHING
    clock.advance(STALE_PENDING_SECONDS)
    assert single.reconcile("acme", alive).requeued == 1
    assert single.queue.resends == [(run_id, 2)]


# -- running runs -----------------------------------------------------------------------------------
def test_a_missing_execution_is_dead_only_after_the_start_grace(single, clock):
    run_id = trigger(single)
    single.dispatch("acme", run_id, lambda name: None)  # slot taken; StartExecution not yet seen
    assert single.reconcile("acme", lambda name: "MISSING") == NOTHING
    clock.advance(EXECUTION_START_GRACE_SECONDS)
    assert single.reconcile("acme", lambda name: "MISSING").finished == 1
    assert "MISSING" in single.runs.items[run_id]["error"]


def test_one_run_that_cannot_be_reconciled_does_not_stop_the_others(single, clock):
    single.slots.limit = 2
    broken, dead = trigger(single), trigger(single)
    single.dispatch("acme", broken, lambda name: None)
    single.dispatch("acme", dead, lambda name: None)

    def status(name: str) -> str:
        if name == execution_name("acme", broken):
            raise RuntimeError("throttled")
        return "FAILED"

    assert single.reconcile("acme", status) == Reconciliation(finished=1, errors=1)
    assert single.runs.items[dead]["status"] == "failed" and single.runs.items[broken]["status"] == "running"
