"""Runs (Watcher executions) in the table: the run item, its ancestry closure, the time indexes,
and read-only views of the registry's pipelines that executions and checks act on."""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import pendulum

from sluice import timeutil
from sluice.domain.executions import (
    BaselineRun,
    ConcurrentEnd,
    PipelineAdvance,
    Run,
    WatchedPipeline,
    WatchedPipelineType,
    run_from_stored,
)
from sluice.errors import Conflict, NotFound
from sluice.store import keys
from sluice.store.table import Condition, Table, TransactionCancelled

MAX_TRANSACTION_ITEMS = 100
PURGE_WORKERS = 16
RETRYABLE = ("ConditionalCheckFailed", "TransactionConflict")

T = TypeVar("T")
R = TypeVar("R")


class ProjectRegistry:
    """The PROJECTS partition: every project that has data, for jobs that visit each tenant."""

    def __init__(self, table: Table):
        self.table = table

    def register(self, project: str) -> None:
        pk, sk = keys.project_registry(project)
        # Same attributes as the registry writes; if_not_exists keeps whichever came first.
        self.table.update(
            pk,
            sk,
            set_if_absent={"kind": "project", "project": project, "created_at": timeutil.iso(timeutil.now())},
        )

    def all(self) -> list[str]:
        return [item["SK"] for item in self.table.query_all(keys.PROJECTS)]

    def first(self) -> str | None:
        page = self.table.query(keys.PROJECTS, limit=1, consistent=True)
        return page.items[0]["SK"] if page.items else None

    def after(self, project: str) -> str | None:
        page = self.table.query(keys.PROJECTS, after=project, limit=1, consistent=True)
        return page.items[0]["SK"] if page.items else None


# What anomaly detection reads of every run of a baseline, besides the metrics it judges.
BASELINE_ATTRIBUTES = ("id", "GSI1SK", "anomaly_flags")
# What the timeliness check reads of every run that started inside its lookback.
TIMELINESS_ATTRIBUTES = ("id", "pipeline_id", "status", "start_date", "end_date", "completed_successfully")


class RunRepository:
    def __init__(self, table: Table):
        self.table = table

    # -- create and read ----------------------------------------------------------------------------
    def next_run_id(self, project: str) -> int:
        run_id = self.table.next_number(*keys.counter(project, "run"))
        if run_id == 1:
            ProjectRegistry(self.table).register(project)
        return run_id

    def create(self, project: str, run: Run) -> None:
        """The run, its month in the month registry, and one closure row per ancestor, atomically
        (closure rows past DynamoDB's 100-item transaction follow in batches)."""
        from sluice.store.run_calendar import day_of, item_bytes, transition_op

        month_pk, month_sk = keys.run_months(project), _month(run.start_date)
        item = run_item(project, run)
        item["stored_bytes"] = item_bytes(item)
        operations = [
            self.table.put_op(item, Condition("attribute_not_exists(PK)")),
            self.table.update_op(month_pk, month_sk, set_if_absent={"kind": "run_month", "month": month_sk}),
            self.table.put_op(run_index_item(project, run)),
        ]
        if run.parent_id is not None:
            operations.append(
                self.table.check_op(*keys.run(project, run.parent_id), Condition("attribute_exists(PK)"))
            )
        closure = [
            _closure_item(project, ancestor, depth, run.id) for depth, ancestor in enumerate(run.ancestors, 1)
        ]
        # The run's day counter (store/run_calendar.py) counts it, in the same transaction; last,
        # so the reasons' positions above stay as they were.
        counter = transition_op(
            self.table,
            project,
            day_of(run.start_date),
            run.pipeline_id,
            None,
            run.status,
            stored_bytes=int(item["stored_bytes"]),
        )
        room = MAX_TRANSACTION_ITEMS - len(operations) - 1
        operations += [self.table.put_op(item) for item in closure[:room]]
        operations.append(counter)
        try:
            self.table.transact(operations)
        except TransactionCancelled as exc:
            if run.parent_id is not None and exc.reasons[3] == "ConditionalCheckFailed":
                raise NotFound(f"Parent execution {run.parent_id} not found.") from exc
            if exc.reasons[0] == "ConditionalCheckFailed":
                raise Conflict(f"Pipeline execution {run.id} already exists.") from exc
            raise
        if closure[room:]:
            self.table.batch_write(puts=closure[room:])

    def get(self, project: str, run_id: int) -> Run | None:
        item = self.table.get(*keys.run(project, run_id))
        return run_from_stored(item) if item else None

    def children(self, project: str, run_id: int) -> list[Run]:
        return self._runs(project, self._descendant_ids(project, run_id, keys.run_descendants_at(1)))

    def descendants(self, project: str, run_id: int) -> list[tuple[int, int]]:
        """(descendant id, depth) of every run below this one, nearest levels first; one Query."""
        partition = keys.run_partition(project, run_id)
        return [
            (int(item["descendant_id"]), int(item["depth"]))
            for item in self.table.query_all(
                partition, begins_with=keys.RUN_DESCENDANT_PREFIX, consistent=True
            )
        ]

    def _descendant_ids(self, project: str, run_id: int, prefix: str) -> list[int]:
        partition = keys.run_partition(project, run_id)
        return [
            int(item["descendant_id"])
            for item in self.table.query_all(partition, begins_with=prefix, consistent=True)
        ]

    def _runs(self, project: str, run_ids: list[int]) -> list[Run]:
        found = self.table.batch_get([keys.run(project, i) for i in run_ids], consistent=True)
        return sorted((run_from_stored(item) for item in found), key=lambda r: r.id)

    # -- end -----------------------------------------------------------------------------------------
    def record_end(
        self, project: str, ended: Run, seen_end_count: int, advance: PipelineAdvance | None
    ) -> None:
        """Write the end and its pipeline effects in one transaction, on condition that no other
        end was recorded since `seen_end_count` was read (else ConcurrentEnd: re-read and retry)."""
        pk, sk = keys.run(project, ended.id)
        guard = end_guard(seen_end_count)
        from sluice.store.run_calendar import day_of, last_run_op, transition_op

        # The status it ends from, for its day counter: a first end from running (executions are
        # written running); a later end from what the previous end left, read here and guarded.
        was = "running"
        if seen_end_count:
            current = self.table.get(pk, sk) or {}
            was = str(current.get("status") or "running")
            guard = Condition(
                f"{guard.expression} AND #st = :was",
                names={**guard.names, "#st": "status"},
                values={**guard.values, ":was": was},
            )
        operations = [
            self.table.update_op(pk, sk, set_=end_changes(project, ended), condition=guard),
            last_run_op(self.table, project, run_item(project, ended)),
        ]
        if was != str(ended.status):
            operations.append(
                transition_op(
                    self.table, project, day_of(ended.start_date), ended.pipeline_id, was, str(ended.status)
                )
            )
        if advance is not None and advance.changes_anything:
            operations.append(self.advance_op(project, advance, ended.updated_at or timeutil.now()))
        try:
            self.table.transact(operations)
        except TransactionCancelled as exc:
            if any(reason in RETRYABLE for reason in exc.reasons):
                raise ConcurrentEnd(f"Pipeline execution {ended.id} was ended concurrently.") from exc
            raise

    def advance_op(self, project: str, advance: PipelineAdvance, now: _dt.datetime) -> dict[str, Any]:
        changes: dict[str, Any] = {
            name: timeutil.iso(moment) for name, moment in advance.target_times.items()
        }
        changes["updated_at"] = timeutil.iso(now)
        if advance.lineage_loaded:
            changes["load_lineage"] = False
        if advance.next_watermark is not None:
            changes["watermark"] = advance.next_watermark
            # Only if next_watermark is still what we read; otherwise re-read and retry.
            condition = Condition(
                "attribute_exists(PK) AND #nw = :nw",
                {"#nw": "next_watermark"},
                {":nw": advance.next_watermark},
            )
        else:
            condition = Condition("attribute_exists(PK)")
        return self.table.update_op(
            *keys.pipeline(project, advance.pipeline_id), set_=changes, condition=condition
        )

    # -- time indexes ---------------------------------------------------------------------------------
    def baseline_in_hour(
        self, project: str, pipeline_id: int, hour: int, since: _dt.datetime, metrics: Sequence[str]
    ) -> list[BaselineRun]:
        """The pipeline's successful runs of one start hour that ended at or after `since` (GSI1),
        each with its id, its end (GSI1's sort key begins with it), its flags and `metrics` only: a
        bucket can hold thousands of runs, and what else they hold would be read, sent and parsed
        for nothing."""
        bucket = keys.run_hour_bucket(project, pipeline_id, hour)
        items = self.table.query_all(
            bucket,
            index="GSI1",
            after=timeutil.sortable(since),
            attributes=(*BASELINE_ATTRIBUTES, *metrics),
        )
        return [
            BaselineRun(
                id=int(i["id"]),
                ended=keys.run_end_of(i["GSI1SK"]),
                metrics={m: i.get(m) for m in metrics},
                flags={k: bool(v) for k, v in (i.get("anomaly_flags") or {}).items()},
            )
            for i in items
        ]

    def started_between(self, project: str, since: _dt.datetime, until: _dt.datetime) -> Iterator[Run]:
        """Runs whose start lies in [since, until], month shard by month shard (GSI2), a page at a
        time, with only what the timeliness check judges (id, pipeline, status, start, end,
        success): an hour of a busy project is ten thousand runs, which the check must not hold
        all at once nor parse whole."""
        low, high = timeutil.sortable(since), timeutil.sortable(until) + "~"
        for month in _months(since, until):
            partition = keys.run_start_month(project, month)
            for item in self.table.query_all(
                partition, index="GSI2", between=(low, high), attributes=TIMELINESS_ATTRIBUTES
            ):
                yield run_from_stored(item)

    # -- retention -------------------------------------------------------------------------------------
    def run_months(self, project: str, until_month: str) -> list[str]:
        return [
            i["SK"]
            for i in self.table.query_all(keys.run_months(project), before=until_month + "~", consistent=True)
        ]

    def expired_runs(
        self, project: str, month: str, cutoff: _dt.datetime, limit: int, after: str | None
    ) -> tuple[list[Run], str | None, bool]:
        """Up to `limit` runs of one start month that started before `cutoff`, after the start key
        `after`; returns them, the last start key read, and whether the month is exhausted."""
        partition = keys.run_start_month(project, month)
        upper = timeutil.sortable(cutoff)
        if after is None:
            page = self.table.query(partition, index="GSI2", before=upper, limit=limit)
        else:
            # Start keys are fixed width, so key + "~" sorts after the key and before the next one.
            page = self.table.query(partition, index="GSI2", between=(after + "~", upper), limit=limit)
        last = page.items[-1]["GSI2SK"] if page.items else after
        return [run_from_stored(i) for i in page.items], last, page.cursor is None

    def purge_runs(self, project: str, runs: list[Run]) -> dict[str, int]:
        """Delete the runs with everything kept about them, counting only what this call deleted.

        Closure rows below a run go first (counted as parent rows), then the run's rows in its
        ancestors' partitions (child rows), then results and records, the run item last, so an
        interrupted purge is finished by the next one (the run is still found on the index).
        """
        if not runs:
            return {}
        partitions = in_parallel(
            lambda r: list(self.table.query_all(keys.run_partition(project, r.id), consistent=True)), runs
        )
        below, results, records, items = [], [], [], []
        for run, partition in zip(runs, partitions, strict=True):
            for item in partition:
                sk = item["SK"]
                key = (item["PK"], sk)
                if sk.startswith(keys.RUN_DESCENDANT_PREFIX):
                    below.append(key)
                elif sk.startswith(keys.RUN_ANOMALY_PREFIX):
                    results.append(key)
                elif sk == keys.RUN_TIMELINESS:
                    records.append(key)
            items.append(keys.run(project, run.id))
        above = [
            keys.run_descendant(project, ancestor, depth, run.id)
            for run in runs
            for depth, ancestor in enumerate(run.ancestors, 1)
        ]
        counts = {
            "total_pipeline_execution_closure_parent_deleted": self._delete(below),
            "total_pipeline_execution_closure_child_deleted": self._delete(above),
            "total_anomaly_detection_results_deleted": self._delete(results),
            "total_timeliness_pipeline_execution_logs_deleted": self._delete(records),
            "total_pipeline_executions_deleted": self._delete(items),
        }
        # Last, each run's entry in its pipeline's run index (how pipeline deletion finds a run it
        # has not finished deleting); not one of Watcher's counts.
        self._delete([run_index_key(project, run) for run in runs])
        return counts

    def _delete(self, item_keys: list[tuple[str, str]]) -> int:
        """Delete each key; an item counts only if it existed when this call deleted it."""
        return sum(in_parallel(lambda key: self.table.delete(*key) is not None, item_keys))


class WatchedPipelines:
    """Read-only view of the registry's pipeline and pipeline-type items (the shared contract)."""

    def __init__(self, table: Table):
        self.table = table

    def get(self, project: str, pipeline_id: int) -> WatchedPipeline | None:
        item = self.table.get(*keys.pipeline(project, pipeline_id))
        return pipeline_from_item(item) if item else None

    def get_type(self, project: str, type_id: int) -> WatchedPipelineType | None:
        item = self.table.get(*keys.pipeline_type(project, type_id))
        return pipeline_type_from_item(item) if item else None

    def all(self, project: str) -> list[WatchedPipeline]:
        items = self.table.query_all(keys.pipelines(project), begins_with="PL#")
        return [pipeline_from_item(i) for i in items]

    def types(self, project: str) -> dict[int, WatchedPipelineType]:
        items = self.table.query_all(keys.pipeline_types(project), begins_with="PT#")
        found = (pipeline_type_from_item(i) for i in items)
        return {t.id: t for t in found}


# -- items ---------------------------------------------------------------------------------------------
_END_FIELDS = (
    "status",
    "end_date",
    "completed_successfully",
    "duration_seconds",
    "throughput",
    "total_rows",
    "inserts",
    "updates",
    "soft_deletes",
    "execution_metadata",
    "end_count",
    "updated_at",
    "GSI1PK",
    "GSI1SK",
)


def run_item(project: str, run: Run) -> dict[str, Any]:
    pk, sk = keys.run(project, run.id)
    start = run.start_date
    item: dict[str, Any] = {
        "PK": pk,
        "SK": sk,
        "kind": "run",
        "project": project,
        "id": run.id,
        "pipeline_id": run.pipeline_id,
        "status": run.status,
        "origin": run.origin,
        "parent_id": run.parent_id,
        "ancestors": list(run.ancestors),
        "start_date": timeutil.iso(start),
        "date_recorded": run.date_recorded,
        "hour_recorded": run.hour_recorded,
        "end_date": timeutil.iso(run.end_date),
        "completed_successfully": run.completed_successfully,
        "duration_seconds": run.duration_seconds,
        "throughput": run.throughput,
        "total_rows": run.total_rows,
        "inserts": run.inserts,
        "updates": run.updates,
        "soft_deletes": run.soft_deletes,
        "watermark": run.watermark,
        "next_watermark": run.next_watermark,
        "execution_metadata": json.dumps(run.execution_metadata)
        if run.execution_metadata is not None
        else None,
        "anomaly_flags": dict(run.anomaly_flags),
        "end_count": run.end_count,
        "created_at": timeutil.iso(run.created_at),
        "updated_at": timeutil.iso(run.updated_at),
        "GSI2PK": keys.run_start_month(project, _month(start)),
        "GSI2SK": keys.run_start_key(timeutil.sortable(start), run.id),
    }
    if run.succeeded and run.end_date is not None:
        item["GSI1PK"] = keys.run_hour_bucket(project, run.pipeline_id, run.hour_recorded)
        item["GSI1SK"] = keys.run_end_key(timeutil.sortable(run.end_date), run.id)
    return item


def run_index_key(project: str, run: Run) -> tuple[str, str]:
    return keys.pipeline_run(project, run.pipeline_id, timeutil.sortable(run.start_date), run.id)


def run_index_item(project: str, run: Run) -> dict[str, Any]:
    """The run's entry in its pipeline's run index (written with the run; read by pipeline
    definitions for `last_run` and by pipeline deletion)."""
    pk, sk = run_index_key(project, run)
    return {"PK": pk, "SK": sk, "kind": "pipeline_run", "run_id": run.id, "pipeline_id": run.pipeline_id}


def _closure_item(project: str, ancestor_id: int, depth: int, descendant_id: int) -> dict[str, Any]:
    pk, sk = keys.run_descendant(project, ancestor_id, depth, descendant_id)
    return {
        "PK": pk,
        "SK": sk,
        "kind": "run_descendant",
        "ancestor_id": ancestor_id,
        "descendant_id": descendant_id,
        "depth": depth,
    }


def pipeline_from_item(item: dict[str, Any]) -> WatchedPipeline:
    return WatchedPipeline(
        id=int(item["id"]),
        name=item.get("name", ""),
        pipeline_type_id=_int_or_none(item.get("pipeline_type_id")),
        watermark=item.get("watermark"),
        next_watermark=item.get("next_watermark"),
        last_target_insert=_instant(item.get("last_target_insert")),
        last_target_update=_instant(item.get("last_target_update")),
        last_target_soft_delete=_instant(item.get("last_target_soft_delete")),
        freshness_number=_int_or_none(item.get("freshness_number")),
        freshness_datepart=item.get("freshness_datepart"),
        mute_freshness_check=bool(item.get("mute_freshness_check", False)),
        timeliness_number=_int_or_none(item.get("timeliness_number")),
        timeliness_datepart=item.get("timeliness_datepart"),
        mute_timeliness_check=bool(item.get("mute_timeliness_check", False)),
        active=bool(item.get("active", True)),
        load_lineage=bool(item.get("load_lineage", True)),
    )


def pipeline_type_from_item(item: dict[str, Any]) -> WatchedPipelineType:
    return WatchedPipelineType(
        id=int(item["id"]),
        name=item.get("name", ""),
        freshness_number=_int_or_none(item.get("freshness_number")),
        freshness_datepart=item.get("freshness_datepart"),
        mute_freshness_check=bool(item.get("mute_freshness_check", False)),
        timeliness_number=_int_or_none(item.get("timeliness_number")),
        timeliness_datepart=item.get("timeliness_datepart"),
        mute_timeliness_check=bool(item.get("mute_timeliness_check", False)),
    )


def _instant(text: str | None) -> pendulum.DateTime | None:
    return timeutil.from_stored(text) if text else None


def _int_or_none(value: Any) -> int | None:
    return int(value) if value is not None else None


def _month(moment: _dt.datetime) -> str:
    return pendulum.instance(moment).in_timezone("UTC").format("YYYY-MM")


def _months(since: _dt.datetime, until: _dt.datetime) -> list[str]:
    first = pendulum.instance(since).in_timezone("UTC").start_of("month")
    last = pendulum.instance(until).in_timezone("UTC")
    months = []
    while first <= last:
        months.append(first.format("YYYY-MM"))
        first = first.add(months=1)
    return months


def in_parallel(work: Callable[[T], R], items: Iterable[T]) -> list[R]:
    items = list(items)
    if len(items) <= 1:
        return [work(i) for i in items]
    with ThreadPoolExecutor(max_workers=min(PURGE_WORKERS, len(items))) as pool:
        return list(pool.map(work, items))


# -- bulk reads and ids (the OpenLineage ingest's bulk path) -----------------------------------------
def reserve_run_ids(table: Table, project: str, count: int) -> list[int]:
    """`count` consecutive run ids in one counter update (ADD n): the ids the counter moved past."""
    ids = table.next_numbers(*keys.counter(project, "run"), count)
    if ids and ids[0] == 1:
        ProjectRegistry(table).register(project)
    return ids


def runs_by_id(table: Table, project: str, run_ids: Iterable[int]) -> dict[int, Run]:
    """The runs that exist among `run_ids`, by id (BatchGetItem, consistent)."""
    found = table.batch_get([keys.run(project, i) for i in run_ids], consistent=True)
    return {int(item["id"]): run_from_stored(item) for item in found}


def pipelines_by_id(table: Table, project: str, pipeline_ids: Iterable[int]) -> dict[int, WatchedPipeline]:
    found = table.batch_get([keys.pipeline(project, i) for i in pipeline_ids], consistent=True)
    return {int(item["id"]): pipeline_from_item(item) for item in found}


def run_month_key(project: str, run: Run) -> tuple[str, str]:
    return keys.run_months(project), _month(run.start_date)


def closure_items(project: str, run: Run) -> list[dict[str, Any]]:
    return [
        _closure_item(project, ancestor, depth, run.id) for depth, ancestor in enumerate(run.ancestors, 1)
    ]


def end_guard(seen_end_count: int) -> Condition:
    """record_end's condition: no other end was recorded since `seen_end_count` was read."""
    if seen_end_count:
        return Condition(
            "attribute_exists(PK) AND #ec = :seen", {"#ec": "end_count"}, {":seen": seen_end_count}
        )
    return Condition(
        "attribute_exists(PK) AND (attribute_not_exists(#ec) OR #ec = :seen)",
        {"#ec": "end_count"},
        {":seen": 0},
    )


def end_changes(project: str, ended: Run) -> dict[str, Any]:
    """The attributes an end sets (those it leaves unset are removed), as record_end writes them."""
    changes = {name: value for name, value in run_item(project, ended).items() if name in _END_FIELDS}
    changes.update({name: None for name in _END_FIELDS if name not in changes})
    return changes
