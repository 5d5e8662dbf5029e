"""The run engine's items: a Sluice run (the execution item with its engine attributes), its node
runs, the project's active-run index and trigger idempotency claims."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from typing import Any

from sluice import timeutil
from sluice.domain.executions import ConcurrentEnd, PipelineAdvance, Run
from sluice.domain.run_engine.errors import FlowChildStarted, TriggerReplayed
from sluice.domain.run_engine.record import NodeRunRecord, RunRecord
from sluice.domain.status import RunStatus
from sluice.errors import Conflict
from sluice.store import keys
from sluice.store.executions import (
    _END_FIELDS,
    _closure_item,
    _month,
    run_index_item,
    run_item,
)
from sluice.store.run_calendar import dated_run_op, day_of, item_bytes, last_run_op, transition_op
from sluice.store.table import Condition, ConditionFailed, Table, TransactionCancelled

IDEMPOTENCY_TTL_SECONDS = 24 * 3600
CREATE_ATTEMPTS = 8
# 4 items a child (run, run index, active index, closure row) + the month and the day counter <= 100
CHILDREN_PER_TRANSACTION = 24


class RunEngineRepository:
    def __init__(self, table: Table):
        self.table = table

    # -- create -----------------------------------------------------------------------------------
    def next_run_id(self, project: str) -> int:
        from sluice.store.executions import RunRepository

        return RunRepository(self.table).next_run_id(project)

    def allocate_run_ids(self, project: str, count: int) -> list[int]:
        """`count` consecutive run ids in one counter move (a backfill's parent and children)."""
        from sluice.store.executions import reserve_run_ids

        return reserve_run_ids(self.table, project, count)

    def add_bytes(self, project: str, run_id: int, day: str, size: int) -> None:
        from sluice.store.run_calendar import RunCalendarRepository

        with contextlib.suppress(TransactionCancelled):  # the run was purged meanwhile
            RunCalendarRepository(self.table).add_bytes(project, run_id, day, size)

    def note_resumed(self, project: str, run_id: int, resumed_by: int) -> None:
        """A failed run was resumed: the purge keeps the outputs the resumed run reuses."""
        with contextlib.suppress(ConditionFailed):
            self.table.update(
                *keys.run(project, run_id),
                set_={"resumed_by": resumed_by},
                condition=Condition("attribute_exists(PK)"),
            )

    def mark_queued(self, project: str, run_id: int, now: str) -> None:
        with contextlib.suppress(ConditionFailed):
            self.table.update(
                *keys.run(project, run_id),
                set_={"queued_at": now},
                condition=Condition(
                    "#s = :pending", names={"#s": "status"}, values={":pending": RunStatus.pending}
                ),
            )

    def create(
        self,
        project: str,
        run: Run,
        engine: dict[str, Any],
        claim: dict[str, Any] | None = None,
    ) -> None:
        """The run (pending), its month, its pipeline's run index entry, the active-run index entry,
        a flow child's claim on its place in the flow and, with an Idempotency-Key, the claim on
        it: all or nothing. FlowChildStarted when the flow's member already has its child run."""
        item = {**run_item(project, run), **engine}
        item["stored_bytes"] = item_bytes(item)
        now = int(timeutil.now().timestamp())
        operations = [
            self.table.put_op(item, Condition("attribute_not_exists(PK)")),
            self.table.update_op(
                keys.run_months(project),
                _month(run.start_date),
                set_if_absent={"kind": "run_month", "month": _month(run.start_date)},
            ),
            self.table.put_op(run_index_item(project, run)),
            self.table.put_op(self._active_item(project, run)),
            # The run's day counts it (store/run_calendar.py), in the same transaction.
            transition_op(
                self.table,
                project,
                day_of(run.start_date),
                run.pipeline_id,
                None,
                run.status,
                stored_bytes=int(item["stored_bytes"]),
            ),
        ]
        # A child run (seed 000's flow runs) is Watcher's child execution of its parent.
        operations += [
            self.table.put_op(_closure_item(project, ancestor, depth, run.id))
            for depth, ancestor in enumerate(run.ancestors, 1)
        ]
        flow_claim = None
        if engine.get("flow_parent") is not None:
            flow_claim = len(operations)
            pk, sk = keys.flow_child_claim(
                project, int(engine["flow_parent"]), int(engine.get("flow_level") or 0), run.pipeline_id
            )
            # The claim only has to outlive the race between a hand-over and the reconciler; later,
            # the child's closure row under the parent shows it was started.
            operations.append(
                self.table.put_op(
                    {
                        "PK": pk,
                        "SK": sk,
                        "kind": "flow_child",
                        "run_id": run.id,
                        "expires_at": now + IDEMPOTENCY_TTL_SECONDS,
                    },
                    Condition(
                        "attribute_not_exists(PK) OR #e < :now",
                        names={"#e": "expires_at"},
                        values={":now": now},
                    ),
                )
            )
        if claim is not None:
            pk, sk = keys.run_trigger_claim(project, claim["key"])
            expires = now + IDEMPOTENCY_TTL_SECONDS
            operations.append(
                self.table.put_op(
                    {
                        "PK": pk,
                        "SK": sk,
                        "kind": "run_trigger",
                        "run_id": run.id,
                        "request_hash": claim["request_hash"],
                        "response": json.dumps(claim["response"]),
                        "expires_at": expires,
                    },
                    # An expired claim (TTL deletes lazily) no longer counts.
                    Condition(
                        "attribute_not_exists(PK) OR #e < :now",
                        names={"#e": "expires_at"},
                        values={":now": now},
                    ),
                )
            )
        for attempt in range(CREATE_ATTEMPTS):
            try:
                self.table.transact(operations)
                return
            except TransactionCancelled as exc:
                conflict = (
                    "TransactionConflict" in exc.reasons and "ConditionalCheckFailed" not in exc.reasons
                )
                if not conflict or attempt == CREATE_ATTEMPTS - 1:
                    self._create_failed(project, run, engine, claim, flow_claim, exc)
                # Runs created at once share their day's counter item: another transaction held it.
                time.sleep(0.01 * (attempt + 1))

    def _create_failed(
        self,
        project: str,
        run: Run,
        engine: dict[str, Any],
        claim: dict[str, Any] | None,
        flow_claim: int | None,
        exc: TransactionCancelled,
    ) -> None:
        """Raise what a failed create means: a flow child or an Idempotency-Key already taken."""
        if flow_claim is not None and exc.reasons[flow_claim] == "ConditionalCheckFailed":
            raise FlowChildStarted(
                f"Pipeline {run.pipeline_id} already has its run in this level of flow run "
                f"{engine['flow_parent']}."
            ) from exc
        if claim is not None and exc.reasons[-1] == "ConditionalCheckFailed":
            found = self.trigger_claim(project, claim["key"])
            if found is not None:
                raise TriggerReplayed(found) from exc
        raise Conflict(f"Run {run.id} could not be created; retry.") from exc

    def create_children(self, project: str, runs: list[tuple[Run, dict[str, Any]]]) -> None:
        """Pending children of one parent (a backfill's), CHILDREN_PER_TRANSACTION to a transaction:
        each child's run item, run index entry, active-run entry and closure row, with one move of
        their day counter for all of them, so a chunk is written whole or not at all."""
        for start in range(0, len(runs), CHILDREN_PER_TRANSACTION):
            chunk = runs[start : start + CHILDREN_PER_TRANSACTION]
            operations: list[dict[str, Any]] = []
            size = 0
            for run, engine in chunk:
                item = {**run_item(project, run), **engine}
                item["stored_bytes"] = item_bytes(item)
                size += item["stored_bytes"]
                operations += [
                    self.table.put_op(item, Condition("attribute_not_exists(PK)")),
                    self.table.put_op(run_index_item(project, run)),
                    self.table.put_op(self._active_item(project, run)),
                ]
                operations += [
                    self.table.put_op(_closure_item(project, ancestor, depth, run.id))
                    for depth, ancestor in enumerate(run.ancestors, 1)
                ]
            first = chunk[0][0]
            operations += [
                self.table.update_op(
                    keys.run_months(project),
                    _month(first.start_date),
                    set_if_absent={"kind": "run_month", "month": _month(first.start_date)},
                ),
                transition_op(
                    self.table,
                    project,
                    day_of(first.start_date),
                    first.pipeline_id,
                    None,
                    RunStatus.pending,
                    stored_bytes=size,
                    count=len(chunk),
                ),
            ]
            for attempt in range(CREATE_ATTEMPTS):
                try:
                    self.table.transact(operations)
                    break
                except TransactionCancelled as exc:
                    if "TransactionConflict" not in exc.reasons or attempt == CREATE_ATTEMPTS - 1:
                        raise Conflict(
                            f"Runs {chunk[0][0].id} to {chunk[-1][0].id} could not be created; retry."
                        ) from exc
                    time.sleep(0.01 * (attempt + 1))

    def trigger_claim(self, project: str, key: str) -> dict[str, Any] | None:
        item = self.table.get(*keys.run_trigger_claim(project, key))
        if item is None or int(item.get("expires_at") or 0) < int(timeutil.now().timestamp()):
            return None
        return {
            "run_id": int(item["run_id"]),
            "request_hash": item.get("request_hash"),
            "response": json.loads(item["response"]),
        }

    @staticmethod
    def _active_item(project: str, run: Run) -> dict[str, Any]:
        pk, sk = keys.active_run(project, run.id)
        return {"PK": pk, "SK": sk, "kind": "active_run", "run_id": run.id, "pipeline_id": run.pipeline_id}

    # -- read -------------------------------------------------------------------------------------
    def get(self, project: str, run_id: int) -> RunRecord | None:
        """The run (engine attributes included); None if absent or not a run."""
        item = self.table.get(*keys.run(project, run_id))
        return RunRecord.from_stored(item) if item and item.get("kind") == "run" else None

    def node_runs(self, project: str, run_id: int) -> list[NodeRunRecord]:
        return [
            NodeRunRecord.from_stored(item)
            for item in self.table.query_all(
                keys.run_partition(project, run_id), begins_with=keys.RUN_NODE_PREFIX, consistent=True
            )
        ]

    def node_run(self, project: str, run_id: int, node_id: str) -> NodeRunRecord | None:
        item = self.table.get(*keys.run_node(project, run_id, node_id))
        return NodeRunRecord.from_stored(item) if item else None

    def active(self, project: str) -> list[int]:
        return [int(i["run_id"]) for i in self.table.query_all(keys.active_runs(project), consistent=True)]

    def pipeline_run_ids(self, project: str, pipeline_id: int, offset: int, limit: int) -> list[int]:
        """Run ids of a pipeline, newest start first, skipping `offset` (keys only for the skip)."""
        partition = keys.pipeline_runs(project, pipeline_id)
        bound: dict[str, Any] = {}
        if offset:
            # The sort key at position `offset - 1` from the newest bounds the page.
            newest_first = self.table.query(partition, forward=False, limit=offset, consistent=True)
            if len(newest_first.items) < offset:
                return []
            bound = {"before": newest_first.items[-1]["SK"]}
        page = self.table.query(partition, forward=False, limit=limit, consistent=True, **bound)
        return [int(item["run_id"]) for item in page.items]

    def count_pipeline_runs(self, project: str, pipeline_id: int) -> int:
        return sum(1 for _ in self.table.query_all(keys.pipeline_runs(project, pipeline_id), consistent=True))

    def get_many(self, project: str, run_ids: list[int]) -> list[RunRecord]:
        found = self.table.batch_get([keys.run(project, i) for i in run_ids], consistent=True)
        by_id = {int(item["id"]): item for item in found if item.get("kind") == "run"}
        return [RunRecord.from_stored(by_id[i]) for i in run_ids if i in by_id]

    # -- plan and progress ------------------------------------------------------------------------
    def store_plan(
        self, project: str, run_id: int, plan: dict[str, Any], node_runs: list[dict[str, Any]], watermark: Any
    ) -> bool:
        """Create the node runs, then store the plan, once: False when a plan was stored before (a
        retried PlanRun keeps the first plan). Node runs go first, so a stored plan always has them."""
        pk, sk = keys.run(project, run_id)
        current = self.table.get(pk, sk) or {}
        if current.get("plan"):
            return False
        for node_run in node_runs:
            npk, nsk = keys.run_node(project, run_id, node_run["node_id"])
            with contextlib.suppress(ConditionFailed):  # a retry after a partial write
                self.table.put(
                    {"PK": npk, "SK": nsk, "kind": "node_run", "run_id": run_id, **node_run},
                    Condition("attribute_not_exists(PK)"),
                )
        try:
            self.table.update(
                pk,
                sk,
                set_={"plan": plan, "watermark": watermark, "updated_at": timeutil.iso(timeutil.now())},
                condition=Condition("attribute_not_exists(#p)", names={"#p": "plan"}),
            )
        except ConditionFailed:
            return False
        return True

    def allocate_node_run_ids(self, project: str, count: int) -> list[int]:
        return self.table.next_numbers(*keys.counter(project, "node_run"), count)

    def update_node_run(
        self, project: str, run_id: int, node_id: str, changes: dict[str, Any], only_if: tuple[str, ...] = ()
    ) -> bool:
        condition = Condition("attribute_exists(PK)")
        if only_if:
            values = {f":s{i}": s for i, s in enumerate(only_if)}
            condition = Condition(
                f"attribute_exists(PK) AND #s IN ({', '.join(values)})", names={"#s": "status"}, values=values
            )
        try:
            self.table.update(*keys.run_node(project, run_id, node_id), set_=changes, condition=condition)
        except ConditionFailed:
            return False
        return True

    def add_progress(self, project: str, run_id: int, stage: str, rows: int) -> None:
        pk, sk = keys.run(project, run_id)
        params = self.table.update_params(
            pk, sk, set_={"progress_stage": stage}, add={"rows_processed": rows}
        )
        self.table.client.update_item(**params)

    def note_error(self, project: str, run_id: int, error: str) -> None:
        """The run's first error (the failed node's), kept for finishing."""
        pk, sk = keys.run(project, run_id)
        with contextlib.suppress(ConditionFailed):
            self.table.update(
                pk,
                sk,
                set_={"error": error},
                condition=Condition("attribute_not_exists(#e)", names={"#e": "error"}),
            )

    # -- flow runs (seed 000): a parent run whose children run level by level ----------------------
    def start_flow_level(self, project: str, parent_id: int, level: int, count: int) -> bool:
        """Move the parent to `level` with `count` children to wait for, once: only from the
        previous level with none of its children left. False when another finisher did it."""
        try:
            self.table.update(
                *keys.run(project, parent_id),
                set_={
                    "flow_level": level,
                    "flow_remaining": count,
                    "flow_level_started_at": timeutil.iso(timeutil.now()),
                },
                remove=["flow_counted"],
                condition=Condition(
                    "#l = :previous AND #r = :zero AND #s = :running",
                    names={"#l": "flow_level", "#r": "flow_remaining", "#s": "status"},
                    values={":previous": level - 1, ":zero": 0, ":running": RunStatus.running},
                ),
            )
        except ConditionFailed:
            return False
        return True

    def flow_child_done(
        self, project: str, parent_id: int, level: int, pipeline_id: int, succeeded: bool
    ) -> RunRecord | None:
        """Count the child of `level` that ran `pipeline_id` as finished (and the level as failed
        unless it succeeded), once: the parent keeps the level's counted pipelines. The parent
        after the change, or None when it is not waiting on that level or counted that child."""
        changes: dict[str, Any] = {"updated_at": timeutil.iso(timeutil.now())}
        if not succeeded:
            changes["flow_failed"] = True
        try:
            parent = self.table.update(
                *keys.run(project, parent_id),
                set_=changes,
                add={"flow_remaining": -1, "flow_counted": {pipeline_id}},
                condition=Condition(
                    "#l = :level AND #r > :zero AND NOT contains(#c, :pipeline)",
                    names={"#l": "flow_level", "#r": "flow_remaining", "#c": "flow_counted"},
                    values={":level": level, ":zero": 0, ":pipeline": pipeline_id},
                ),
            )
        except ConditionFailed:
            return None
        return RunRecord.from_stored(parent)

    # -- pending runs whose queue message was lost --------------------------------------------------
    def requeue(self, project: str, run_id: int, seen_queued_at: str | None, now: str) -> int | None:
        """Claim sending a pending run's message again: move `queued_at` from what the caller saw
        to `now` and count the send. The send's number, or None when the run is no longer pending
        or another caller claimed it first (so concurrent reconcilers send it once)."""
        if seen_queued_at is None:
            seen = Condition("attribute_not_exists(#q)", names={"#q": "queued_at"})
        else:
            seen = Condition("#q = :seen", names={"#q": "queued_at"}, values={":seen": seen_queued_at})
        try:
            updated = self.table.update(
                *keys.run(project, run_id),
                set_={"queued_at": now},
                add={"requeues": 1},
                condition=Condition(
                    f"#s = :pending AND {seen.expression}",
                    names={"#s": "status", **seen.names},
                    values={":pending": RunStatus.pending, **seen.values},
                ),
            )
        except ConditionFailed:
            return None
        return int(updated["requeues"])

    def recent(
        self, project: str, since: str | None, keep: Callable[[RunRecord], bool], limit: int
    ) -> list[RunRecord]:
        """The project's runs newest start first (started after `since`, a sortable time), that
        `keep` accepts, at most `limit`: a Query of the months that have runs, then one GSI2 Query
        per month shard, newest month first, stopping once `limit` are found. Never a Scan."""
        months = sorted(
            (item["SK"] for item in self.table.query_all(keys.run_months(project), consistent=True)),
            reverse=True,
        )
        found: list[RunRecord] = []
        for month in months:
            if since is not None and month < since[:7]:
                break
            bound = {"after": since} if since is not None else {}
            for item in self.table.query_all(
                keys.run_start_month(project, month), index="GSI2", forward=False, **bound
            ):
                if item.get("kind") != "run":
                    continue
                run = RunRecord.from_stored(item)
                if keep(run):
                    found.append(run)
                    if len(found) >= limit:
                        return found
        return found

    def children(self, project: str, run_id: int) -> list[RunRecord]:
        """The run's direct children (one Query of its closure items, then one batch get)."""
        found = self.table.query_all(
            keys.run_partition(project, run_id),
            begins_with=keys.run_descendants_at(1),
            consistent=True,
        )
        return self.get_many(project, sorted(int(item["descendant_id"]) for item in found))

    # -- end --------------------------------------------------------------------------------------
    def end(
        self,
        project: str,
        ended: Run,
        seen_end_count: int,
        from_statuses: tuple[str, ...],
        extra: dict[str, Any],
        advance: PipelineAdvance | None,
        watermark_candidate: Any = None,
        run_date: str | None = None,
    ) -> None:
        """Write the run's end (Watcher's end fields, status, error, progress), drop it from the
        active index and move its pipeline, in one transaction guarded by the end count and the
        statuses it may end from; ConcurrentEnd when another writer got there first. With one
        status to end from, the run's day counter moves in the same transaction; the pipeline's
        last run and (with `run_date`, the run's `params.date`) its run of that date are noted."""
        pk, sk = keys.run(project, ended.id)
        values = {f":f{i}": s for i, s in enumerate(from_statuses)}
        guard = Condition(
            "attribute_exists(PK) AND (attribute_not_exists(#ec) OR #ec = :seen) "
            f"AND #st IN ({', '.join(values)})",
            names={"#ec": "end_count", "#st": "status"},
            values={":seen": seen_end_count, **values},
        )
        changes = {name: value for name, value in run_item(project, ended).items() if name in _END_FIELDS}
        removed = [name for name in _END_FIELDS if changes.get(name) is None]
        changes = {name: value for name, value in changes.items() if value is not None}
        changes.update({k: v for k, v in extra.items() if v is not None})
        operations = [
            self.table.update_op(pk, sk, set_=changes, remove=removed or None, condition=guard),
            self.table.delete_op(*keys.active_run(project, ended.id)),
            last_run_op(self.table, project, run_item(project, ended)),
        ]
        if len(from_statuses) == 1:
            operations.append(
                transition_op(
                    self.table,
                    project,
                    day_of(ended.start_date),
                    ended.pipeline_id,
                    str(from_statuses[0]),
                    str(ended.status),
                )
            )
        if run_date is not None:
            operations.append(
                dated_run_op(self.table, project, ended.pipeline_id, run_date, ended.id, str(ended.status))
            )
        if advance is not None and advance.changes_anything:
            moment = timeutil.iso(ended.end_date or timeutil.now())
            pipeline_changes: dict[str, Any] = {
                name: timeutil.iso(when) for name, when in advance.target_times.items()
            }
            pipeline_changes["updated_at"] = moment
            if advance.next_watermark is not None:
                pipeline_changes["watermark"] = advance.next_watermark
                pipeline_changes["next_watermark"] = watermark_candidate
            operations.append(
                self.table.update_op(
                    *keys.pipeline(project, advance.pipeline_id),
                    set_={k: v for k, v in pipeline_changes.items() if v is not None},
                    condition=Condition("attribute_exists(PK)"),
                )
            )
        try:
            self.table.transact(operations)
        except TransactionCancelled as exc:
            # A conflict on any item (the day counter is shared by every run of the day) is retried too.
            if exc.reasons and (
                exc.reasons[0] == "ConditionalCheckFailed" or "TransactionConflict" in exc.reasons
            ):
                raise ConcurrentEnd(f"Run {ended.id} was ended concurrently.") from exc
            raise

    def forget_active(self, project: str, run_id: int) -> None:
        self.table.delete(*keys.active_run(project, run_id))
