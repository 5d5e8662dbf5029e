"""The OpenLineage ingest's marks and its bulk writes.

Marks: which events were applied (idempotency claims) and which Watcher execution stands for each
OpenLineage run (the run mapping). The bulk writer puts a batch's run changes in transactions of
up to 100 items: each run's execution, its mapping and the claims of its events commit together,
all conditional (the execution and the mapping absent, or the end count and the `ended` mark as
read; each claim absent), so a change another request made first cancels the transaction
(`StaleBatch`) instead of being overwritten, and a run is never half written.
"""

from __future__ import annotations

import datetime as _dt
from typing import Any

from sluice import timeutil
from sluice.domain.executions import PipelineAdvance, Run, WatchedPipeline
from sluice.domain.openlineage import MappedRun, RunChange, StaleBatch
from sluice.store import keys
from sluice.store.executions import (
    RunRepository,
    closure_items,
    end_changes,
    end_guard,
    pipelines_by_id,
    reserve_run_ids,
    run_index_item,
    run_item,
    run_month_key,
    runs_by_id,
)
from sluice.store.table import Condition, Table, TransactionCancelled

ABSENT = Condition("attribute_not_exists(PK)")
NOT_ENDED = Condition("attribute_exists(PK) AND #e = :false", {"#e": "ended"}, {":false": False})
MAX_TRANSACTION_ITEMS = 100
STALE = ("ConditionalCheckFailed", "TransactionConflict")


def _mapped(item: dict) -> MappedRun:
    return MappedRun(
        execution_id=int(item["execution_id"]),
        pipeline_id=int(item["pipeline_id"]),
        start_date=timeutil.parse_instant(item["start_date"], "start_date"),
        ended=bool(item.get("ended", False)),
    )


def _mapping_item(project: str, run_id: str, mapped: MappedRun) -> dict[str, Any]:
    pk, sk = keys.openlineage_run(project, run_id)
    return {
        "PK": pk,
        "SK": sk,
        "kind": "openlineage_run",
        "execution_id": mapped.execution_id,
        "pipeline_id": mapped.pipeline_id,
        "start_date": timeutil.iso(mapped.start_date),
        "ended": mapped.ended,
    }


def _event_item(project: str, key: str) -> dict[str, str]:
    pk, sk = keys.openlineage_event(project, key)
    return {"PK": pk, "SK": sk, "kind": "openlineage_event"}


class OpenLineageMarks:
    def __init__(self, table: Table):
        self.table = table
        self.runs = RunRepository(table)

    # -- reads ------------------------------------------------------------------------------------------
    def claimed(self, project: str, event_keys: list[str]) -> set[str]:
        """The keys among `event_keys` claimed before (applied by an earlier request)."""
        found = self.table.batch_get(
            [keys.openlineage_event(project, k) for k in event_keys], consistent=True
        )
        return {item["SK"].removeprefix("EVENT#") for item in found}

    def mapped_run(self, project: str, run_id: str) -> MappedRun | None:
        item = self.table.get(*keys.openlineage_run(project, run_id))
        return _mapped(item) if item else None

    def mapped_runs(self, project: str, run_ids: list[str]) -> dict[str, MappedRun]:
        found = self.table.batch_get([keys.openlineage_run(project, r) for r in run_ids], consistent=True)
        return {item["SK"].removeprefix("RUN#"): _mapped(item) for item in found}

    def executions(self, project: str, execution_ids: list[int]) -> dict[int, Run]:
        return runs_by_id(self.table, project, execution_ids)

    def pipelines(self, project: str, pipeline_ids: list[int]) -> dict[int, WatchedPipeline]:
        return pipelines_by_id(self.table, project, pipeline_ids)

    def reserve_execution_ids(self, project: str, count: int) -> list[int]:
        return reserve_run_ids(self.table, project, count)

    # -- the bulk write ---------------------------------------------------------------------------------
    def write(self, project: str, changes: list[RunChange], now: _dt.datetime) -> None:
        """Write the changes in order, packed into transactions of at most 100 items. A transaction
        that a condition cancels raises StaleBatch with the number of changes committed before it."""
        months = {run_month_key(project, c.run) for c in changes if c.created and c.run is not None}
        for pk, sk in sorted(months):  # the month registry first: an entry for no run is harmless
            self.table.update(pk, sk, set_if_absent={"kind": "run_month", "month": sk}, return_values="NONE")
        committed = 0
        while committed < len(changes):
            operations, after, count = self._pack(project, changes, committed, now)
            try:
                self.table.transact(operations)
            except TransactionCancelled as exc:
                if any(reason in STALE for reason in exc.reasons):
                    raise StaleBatch(committed) from exc
                raise
            if after:  # closure rows of very deep hierarchies, past the transaction's room
                self.table.batch_write(puts=after)
            committed += count

    def _pack(
        self, project: str, changes: list[RunChange], first: int, now: _dt.datetime
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], int]:
        """The operations of the changes from `first` that fit one transaction (at least one change),
        with one watermark/target-time update per pipeline that a successful end moves."""
        operations: list[dict[str, Any]] = []
        advances: dict[int, PipelineAdvance] = {}
        written: set[int] = set()  # executions this transaction writes (a check of one would clash)
        after: list[dict[str, Any]] = []
        count = 0
        for change in changes[first:]:
            own, closure = self._operations(project, change, written)
            advance = (
                change.advance if change.advance is not None and change.advance.changes_anything else None
            )
            extra = 1 if advance is not None and advance.pipeline_id not in advances else 0
            if count and len(operations) + len(advances) + len(own) + extra > MAX_TRANSACTION_ITEMS:
                break
            operations += own
            if advance is not None:
                advances[advance.pipeline_id] = _merged(advances.get(advance.pipeline_id), advance)
            room = max(MAX_TRANSACTION_ITEMS - len(operations) - len(advances), 0)
            operations += [self.table.put_op(item) for item in closure[:room]]
            after += closure[room:]
            if change.run is not None:
                written.add(change.run.id)
            count += 1
        operations += [self.runs.advance_op(project, a, now) for a in advances.values()]
        return operations, after, count

    def _operations(
        self, project: str, change: RunChange, written: set[int]
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        table = self.table
        operations: list[dict[str, Any]] = []
        closure: list[dict[str, Any]] = []
        run, mapped = change.run, change.mapped
        if change.created and run is not None and mapped is not None:
            operations.append(table.put_op(run_item(project, run), ABSENT))
            operations.append(table.put_op(run_index_item(project, run)))
            operations.append(table.put_op(_mapping_item(project, change.run_key, mapped), ABSENT))
            if run.parent_id is not None and run.parent_id not in written:
                operations.append(
                    table.check_op(*keys.run(project, run.parent_id), Condition("attribute_exists(PK)"))
                )
            closure = closure_items(project, run)
        elif run is not None:  # the end of an execution written before
            pk, sk = keys.run(project, run.id)
            operations.append(
                table.update_op(
                    pk, sk, set_=end_changes(project, run), condition=end_guard(change.seen_end_count)
                )
            )
            operations.append(
                table.update_op(
                    *keys.openlineage_run(project, change.run_key), set_={"ended": True}, condition=NOT_ENDED
                )
            )
        operations += [table.put_op(_event_item(project, k), ABSENT) for k in change.claims]
        return operations, closure


def _merged(first: PipelineAdvance | None, second: PipelineAdvance) -> PipelineAdvance:
    """Two successful ends of one pipeline in one transaction: one update, the later times."""
    if first is None:
        return second
    times = dict(first.target_times)
    for name, moment in second.target_times.items():
        times[name] = max(times[name], moment) if name in times else moment
    return PipelineAdvance(
        second.pipeline_id,
        second.next_watermark,
        times,
        first.lineage_loaded or second.lineage_loaded,
    )
