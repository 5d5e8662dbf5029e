"""The run engine's use cases over in-memory fakes: dispatch, plan, next step, finish, reconcile."""

from __future__ import annotations

import copy
from typing import Any

import pendulum
import pytest

from sluice import timeutil
from sluice.domain.executions import ConcurrentEnd, Run
from sluice.domain.run_engine import (
    FlowChildStarted,
    NodeRunRecord,
    RevisionGraphs,
    RunEngine,
    RunRecord,
    RunRequest,
    execution_name,
)
from sluice.domain.run_engine import (
    error_text as _error_text,
)
from sluice.domain.run_engine.errors import NotPending, SlotsFull
from sluice.domain.views.runs import runs_api_view
from sluice.errors import Conflict

NOW = pendulum.datetime(2024, 1, 15, 6, 0, 0, tz="UTC")
GRAPH = {
    "nodes": [
        {"id": "src", "nodeType": "source", "config": {"kind": "inline", "rows": [{"a": 1}]}},
        {"id": "t", "nodeType": "transform", "config": {"sql": "SELECT * FROM src"}},
        {"id": "out", "nodeType": "target", "config": {"kind": "dataset", "name": "d", "mode": "overwrite"}},
    ],
    "edges": [{"source": "src", "target": "t"}, {"source": "t", "target": "out"}],
}


class FakeRuns:
    """The run store's conditions as plain checks: a flow child once per (parent, level, pipeline),
    a level moved once, a flow child counted once, a re-send claimed once."""

    def __init__(self, clock=lambda: NOW) -> None:
        self.items: dict[int, dict[str, Any]] = {}
        self.nodes: dict[tuple[int, str], dict[str, Any]] = {}
        self.active_ids: set[int] = set()
        self.claims: dict[str, dict] = {}
        self.flow_claims: set[tuple[int, int, int]] = set()
        self.counter = 0
        self.node_counter = 0
        self.clock = clock

    def next_run_id(self, project):
        self.counter += 1
        return self.counter

    def create(self, project, run, engine, claim=None):
        if engine.get("flow_parent") is not None:
            place = (engine["flow_parent"], engine.get("flow_level") or 0, run.pipeline_id)
            if place in self.flow_claims:
                raise FlowChildStarted("already started")
            self.flow_claims.add(place)
        self.items[run.id] = {
            "id": run.id,
            "pipeline_id": run.pipeline_id,
            "status": run.status,
            "start_date": run.start_date.isoformat(),
            "created_at": timeutil.iso(run.created_at),
            "parent_id": run.parent_id,
            "end_count": 0,
            **engine,
        }
        self.active_ids.add(run.id)

    def trigger_claim(self, project, key):
        return self.claims.get(key)

    def get(self, project, run_id):
        item = self.items.get(run_id)
        return None if item is None else RunRecord.from_stored(copy.deepcopy(item))

    def node_runs(self, project, run_id):
        return [
            NodeRunRecord.from_stored(copy.deepcopy(v)) for (r, _), v in self.nodes.items() if r == run_id
        ]

    def node_run(self, project, run_id, node_id):
        found = self.nodes.get((run_id, node_id))
        return None if found is None else NodeRunRecord.from_stored(copy.deepcopy(found))

    def active(self, project):
        return sorted(self.active_ids)

    def pipeline_run_ids(self, project, pipeline_id, offset, limit):
        return sorted((i for i, v in self.items.items() if v["pipeline_id"] == pipeline_id), reverse=True)

    def get_many(self, project, run_ids):
        return [RunRecord.from_stored(self.items[i]) for i in run_ids]

    def store_plan(self, project, run_id, plan, node_runs, watermark):
        if "plan" in self.items[run_id]:
            return False
        self.items[run_id].update(plan=plan, watermark=watermark)
        for nr in node_runs:
            self.nodes[(run_id, nr["node_id"])] = {"run_id": run_id, **nr}
        return True

    def allocate_node_run_ids(self, project, count):
        start = self.node_counter
        self.node_counter += count
        return list(range(start + 1, start + count + 1))

    def update_node_run(self, project, run_id, node_id, changes, only_if=()):
        current = self.nodes[(run_id, node_id)]
        if only_if and current.get("status") not in only_if:
            return False
        current.update(changes)
        return True

    def add_progress(self, project, run_id, stage, rows):
        self.items[run_id]["progress_stage"] = stage

    def note_error(self, project, run_id, error):
        self.items[run_id].setdefault("error", error)

    def end(
        self,
        project,
        ended: Run,
        seen_end_count,
        from_statuses,
        extra,
        advance,
        watermark_candidate=None,
        run_date=None,
    ):
        item = self.items[ended.id]
        if item.get("end_count", 0) != seen_end_count or item["status"] not in from_statuses:
            raise ConcurrentEnd("raced")
        item.update(
            status=ended.status,
            end_date=ended.end_date.isoformat(),
            total_rows=ended.total_rows,
            end_count=seen_end_count + 1,
            **{k: v for k, v in extra.items() if v is not None},
        )
        self.active_ids.discard(ended.id)
        self.advanced = advance

    def forget_active(self, project, run_id):
        self.active_ids.discard(run_id)

    def requeue(self, project, run_id, seen_queued_at, now):
        item = self.items.get(run_id)
        if item is None or item["status"] != "pending" or item.get("queued_at") != seen_queued_at:
            return None
        item["queued_at"] = now
        item["requeues"] = item.get("requeues", 0) + 1
        return item["requeues"]

    def children(self, project, run_id):
        return [
            RunRecord.from_stored(copy.deepcopy(v))
            for _, v in sorted(self.items.items())
            if v.get("parent_id") == run_id
        ]

    def start_flow_level(self, project, parent_id, level, count):
        parent = self.items[parent_id]
        if (parent["flow_level"], parent["flow_remaining"], parent["status"]) != (level - 1, 0, "running"):
            return False
        parent.update(
            flow_level=level, flow_remaining=count, flow_level_started_at=timeutil.iso(self.clock())
        )
        parent.pop("flow_counted", None)
        return True

    def flow_child_done(self, project, parent_id, level, pipeline_id, succeeded):
        parent = self.items[parent_id]
        counted = parent.get("flow_counted") or set()
        if parent["flow_level"] != level or parent["flow_remaining"] <= 0 or pipeline_id in counted:
            return None
        parent["flow_counted"] = counted | {pipeline_id}
        parent["flow_remaining"] -= 1
        if not succeeded:
            parent["flow_failed"] = True
        return RunRecord.from_stored(copy.deepcopy(parent))


class FakeDefinitions:
    def __init__(self, status: str = "active"):
        self.record = {
            "id": 7,
            "name": "p",
            "status": status,
            "graph": GRAPH,
            "revision": 1,
            "watermark": None,
        }

    def get(self, project, pipeline_id):
        return self.record if pipeline_id == 7 else None

    def find_by_name(self, project, name):
        return self.record if name == "p" else None

    def revision(self, project, pipeline_id, number):
        return {"graph": self.record["graph"]}


class FakeSlots:
    def __init__(self, runs: FakeRuns, limit: int = 1):
        self.runs, self.limit, self.held = runs, limit, set()

    def claim_slot(self, project, run_id, name, day=None):
        if len(self.held) >= self.limit:
            raise SlotsFull("full")
        if self.runs.items[run_id]["status"] != "pending":
            raise NotPending("no")
        self.held.add(run_id)
        self.runs.items[run_id].update(
            status="running", execution_name=name, running_at=timeutil.iso(self.runs.clock())
        )

    def release_slot(self, project, run_id, back_to_pending=False, day=None):
        if run_id not in self.held:
            return False
        self.held.discard(run_id)
        if back_to_pending:
            self.runs.items[run_id]["status"] = "pending"
        return True

    def request_cancel(self, project, run_id):
        item = self.runs.items[run_id]
        if item["status"] not in ("pending", "running"):
            return ""
        item["cancel_requested"] = True
        return item["status"]

    def has_free_slot(self, project):
        return len(self.held) < self.limit


class FakeQueue:
    def __init__(self):
        self.sent = []
        self.resends: list[tuple[int, int]] = []  # (run id, re-send number)
        self.broken = False

    def send(self, project, run_id, resend=0):
        if self.broken:
            raise RuntimeError("queue unreachable")
        self.sent.append((project, run_id))
        if resend:
            self.resends.append((run_id, resend))


@pytest.fixture
def engine():
    runs = FakeRuns()
    return RunEngine(runs, FakeDefinitions(), FakeSlots(runs), FakeQueue(), clock=lambda: NOW)


def trigger(engine: RunEngine, **request) -> int:
    record = engine.definitions.get("acme", 7)
    view, _ = engine.trigger("acme", record, RunRequest(**request), lambda run: {"id": run.id})
    return view["id"]


def test_trigger_writes_a_pending_run_and_queues_it(engine):
    run_id = trigger(engine, params={"date": "2024-01-15"})
    item = engine.runs.items[run_id]
    assert item["status"] == "pending" and item["params"] == {"date": "2024-01-15"} and item["revision"] == 1
    assert engine.queue.sent == [("acme", run_id)]


def test_trigger_of_a_paused_pipeline_is_a_conflict_naming_it():
    runs = FakeRuns()
    engine = RunEngine(runs, FakeDefinitions("paused"), FakeSlots(runs), FakeQueue())
    with pytest.raises(Conflict, match="paused"):
        trigger(engine)


def test_dispatch_takes_a_slot_or_reports_full_and_drops_runs_no_longer_pending(engine):
    first, second = trigger(engine), trigger(engine)
    started = []
    assert engine.dispatch("acme", first, started.append) == "started"
    assert started == [execution_name("acme", first)]
    assert engine.dispatch("acme", second, started.append) == "full"
    assert engine.dispatch("acme", first, started.append) == "dropped"


def test_a_failed_start_gives_the_slot_back_and_leaves_the_run_pending(engine):
    run_id = trigger(engine)

    def broken(name):
        raise RuntimeError("throttled")

    with pytest.raises(RuntimeError):
        engine.dispatch("acme", run_id, broken)
    assert engine.runs.items[run_id]["status"] == "pending" and not engine.slots.held


def test_plan_walks_levels_then_finishes_and_cancel_wins(engine):
    run_id = trigger(engine)
    engine.dispatch("acme", run_id, lambda name: None)
    assert engine.plan("acme", run_id) == {"project": "acme", "run_id": run_id, "level": 0}
    step = engine.next_step("acme", run_id, 0)
    assert (step["action"], step["nodes"], step["level"], step["parallelism"]) == ("run", ["src"], 1, 4)
    assert engine.next_step("acme", run_id, 3)["action"] == "finish"
    engine.cancel("acme", run_id)
    assert engine.next_step("acme", run_id, 1)["action"] == "cancel"


def test_finish_is_idempotent_releases_the_slot_and_skips_unstarted_nodes(engine):
    run_id = trigger(engine)
    engine.dispatch("acme", run_id, lambda name: None)
    engine.plan("acme", run_id)
    error = {"Error": "NodeFailed", "Cause": '{"errorMessage": "boom", "errorType": "NodeFailed"}'}
    assert engine.finish("acme", run_id, "failed", error)["status"] == "failed"
    assert engine.finish("acme", run_id, "success")["status"] == "failed"
    item = engine.runs.items[run_id]
    assert item["error"] == "boom" and not engine.slots.held and run_id not in engine.runs.active_ids
    assert {n.status for n in engine.runs.node_runs("acme", run_id)} == {"skipped"}


def test_cancel_of_a_pending_run_ends_it_at_once_and_a_finished_one_is_refused(engine):
    run_id = trigger(engine)
    assert engine.cancel("acme", run_id) == {"status": "cancelled"}
    assert engine.runs.items[run_id]["status"] == "cancelled"
    with pytest.raises(Conflict, match="only pending or running"):
        engine.cancel("acme", run_id)


def test_resume_is_refused_for_a_run_that_did_not_fail(engine):
    run_id = trigger(engine)
    engine.cancel("acme", run_id)
    with pytest.raises(Conflict, match="only failed runs"):
        engine.resume("acme", run_id, lambda item: item)


def test_reconciler_fails_running_runs_whose_execution_died(engine):
    alive, dead = trigger(engine), trigger(engine)
    engine.slots.limit = 2
    engine.dispatch("acme", alive, lambda name: None)
    engine.dispatch("acme", dead, lambda name: None)
    states = {execution_name("acme", alive): "RUNNING", execution_name("acme", dead): "TIMED_OUT"}
    assert engine.reconcile("acme", states.get).finished == 1
    assert engine.runs.items[dead]["status"] == "failed" and "TIMED_OUT" in engine.runs.items[dead]["error"]
    assert engine.runs.items[alive]["status"] == "running" and engine.slots.held == {alive}


def test_error_text_reads_lambda_causes_and_plain_strings():
    assert _error_text({"Error": "X", "Cause": '{"errorMessage": "bad sql"}'}) == "bad sql"
    assert _error_text({"Error": "States.Timeout"}) == "States.Timeout"
    assert _error_text(None) is None


def test_execution_names_are_safe_and_bounded():
    name = execution_name("a project/with:odd" + "x" * 100, 42)
    assert len(name) <= 80 and name.endswith("-42") and all(c.isalnum() or c in "-_" for c in name)


def test_run_view_renders_ids_and_progress():
    view = runs_api_view(
        RunRecord.from_stored(
            {"id": 3, "pipeline_id": 7, "status": "pending", "start_date": "2024-01-15T06:00:00Z"}
        ),
        [],
    )
    assert view["id"] == "run-3" and view["pipeline_id"] == "pipeline-7"
    assert view["progress"] == {"stage": "queued", "rows_processed": 0} and view["node_runs"] == []


def test_a_revision_graph_is_read_once_and_shared_through_the_cache():
    # Given two engines sharing one revision cache, over definitions that count their reads
    reads = []

    class CountingDefinitions(FakeDefinitions):
        def revision(self, project, pipeline_id, number):
            reads.append((project, pipeline_id, number))
            return super().revision(project, pipeline_id, number)

    graphs = RevisionGraphs(size=2)
    runs = FakeRuns()
    first = RunEngine(runs, CountingDefinitions(), FakeSlots(runs), graphs=graphs)
    second = RunEngine(runs, CountingDefinitions(), FakeSlots(runs), graphs=graphs)

    # When both ask for the same revision, then another project's and another revision
    assert first.graph_of("acme", 7, 1) is second.graph_of("acme", 7, 1)
    second.graph_of("other", 7, 1)
    second.graph_of("acme", 7, 2)

    # Then each revision was read once, and the cache keeps the latest `size` of them
    assert reads == [("acme", 7, 1), ("other", 7, 1), ("acme", 7, 2)]
    first.graph_of("acme", 7, 1)
    assert reads[-1] == ("acme", 7, 1) and len(reads) == 4


def test_the_current_graph_is_never_cached():
    engine = RunEngine(FakeRuns(), FakeDefinitions(), FakeSlots(FakeRuns()))
    before = engine.graph_of("acme", 7, None)
    engine.definitions.record["graph"] = {"nodes": [], "edges": []}
    assert engine.graph_of("acme", 7, None) != before
