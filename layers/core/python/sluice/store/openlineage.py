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
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
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
from sluice.store.run_calendar import day_moves_op, day_of, item_bytes, last_run_op, transition_moves
from sluice.store.table import Condition, Table, TransactionCancelled

ABSENT = Condition("attribute_not_exists(PK)")
NOT_ENDED = Condition("attribute_exists(PK) AND #e = :false", {"#e": "ended"}, {":false": False})
MAX_TRANSACTION_ITEMS = 100
WRITERS = 8  # transactions in flight at once
STALE = ("ConditionalCheckFailed", "TransactionConflict")


def _mapped(item: dict) -> MappedRun:
    return MappedRun(
        execution_id=int(item["execution_id"]),
        pipeline_id=int(item["pipeline_id"]),
        start_date=timeutil.parse_instant(item["start_date"], "start_date"),
        ended=bool(item.get("ended", False)),
        events=frozenset(item.get("events") or ()),
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
        **({"events": set(mapped.events)} if mapped.events else {}),
    }


def _event_item(project: str, key: str) -> dict[str, str]:
    pk, sk = keys.openlineage_event(project, key)
    return {"PK": pk, "SK": sk, "kind": "openlineage_event"}


class OpenLineageMarks:
    def __init__(self, table: Table, writers: int | None = None):
        self.table = table
        self.runs = RunRepository(table)
        self.writers = writers or WRITERS

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
        """Write the changes, packed in order into transactions of at most 100 items. Transactions
        run `writers` at a time, each only after those it depends on: an earlier one that creates a
        parent of one of its runs, or moves one of the same pipelines (so each pipeline's updates
        land in order), or writes a run whose claims it carries past the run's own transaction (so
        no claim is ever written for a run without its mapping: the ingest reads no claims for runs
        no mapping names). A transaction that a condition cancels raises StaleBatch with the
        changes committed (the others in flight finish first)."""
        months = {run_month_key(project, c.run) for c in changes if c.created and c.run is not None}
        for pk, sk in sorted(months):  # the month registry first: an entry for no run is harmless
            self.table.update(pk, sk, set_if_absent={"kind": "run_month", "month": sk}, return_values="NONE")
        transactions: list[_Transaction] = []
        first = 0
        while first < len(changes):
            transaction = self._pack(project, changes, first, now)
            transactions.append(transaction)
            first += len(transaction.changes)
        for position, transaction in enumerate(transactions):
            transaction.after = {
                earlier
                for earlier in range(position)
                if transactions[earlier].pipelines & transaction.pipelines
                or transactions[earlier].creates & transaction.parents
                or transactions[earlier].runs & transaction.claims_of
            }
        self._run(transactions)

    def _run(self, transactions: list[_Transaction]) -> None:
        done: set[int] = set()
        stale: list[StaleBatch] = []
        errors: list[BaseException] = []
        left = list(range(len(transactions)))
        with ThreadPoolExecutor(max_workers=self.writers) as pool:
            while left and not stale and not errors:
                ready = [i for i in left if transactions[i].after <= done]
                for index, outcome in zip(
                    ready, pool.map(self._commit, [transactions[i] for i in ready]), strict=True
                ):
                    if outcome is None:
                        done.add(index)
                    elif isinstance(outcome, StaleBatch):
                        stale.append(outcome)
                    else:
                        errors.append(outcome)
                left = [i for i in left if i not in done]
                if not ready and left:  # the packing orders parents first: this cannot happen
                    raise RuntimeError("OpenLineage transactions wait on each other")
        if errors:
            raise errors[0]
        if stale:
            raise StaleBatch([c for i in sorted(done) for c in transactions[i].changes])

    def _commit(self, transaction: _Transaction) -> BaseException | None:
        try:
            self.table.transact(transaction.operations)
        except TransactionCancelled as exc:
            if any(reason in STALE for reason in exc.reasons):
                return StaleBatch([])
            return exc
        except Exception as exc:  # noqa: BLE001 - raised by write() once the others finished
            return exc
        if transaction.closure:  # closure rows of very deep hierarchies, past the transaction's room
            self.table.batch_write(puts=transaction.closure)
        return None

    def _pack(self, project: str, changes: list[RunChange], first: int, now: _dt.datetime) -> _Transaction:
        """The changes from `first` that fit one transaction (at least one), with one watermark/
        target-time update per pipeline that a successful end moves."""
        transaction = _Transaction()
        operations = transaction.operations
        advances: dict[int, PipelineAdvance] = {}
        # The platform's counters (store/run_calendar.py) move in the same transaction as the runs,
        # as record_end and create move them: one item per day touched, one last run per pipeline.
        days: dict[str, dict[str, int]] = {}
        last_runs: dict[int, dict[str, Any]] = {}
        for position in range(first, len(changes)):
            change = changes[position]
            own, closure, size = self._operations(project, change, transaction.creates)
            advance = (
                change.advance if change.advance is not None and change.advance.changes_anything else None
            )
            run = change.run
            day = day_of(run.start_date) if run is not None else None
            ends = run is not None and run.end_date is not None
            extra = 1 if advance is not None and advance.pipeline_id not in advances else 0
            extra += 1 if day is not None and day not in days else 0
            extra += 1 if ends and run.pipeline_id not in last_runs else 0
            used = len(operations) + len(advances) + len(days) + len(last_runs)
            if transaction.changes and used + len(own) + extra > MAX_TRANSACTION_ITEMS:
                break
            pipeline = _pipeline_of(change)
            if (
                transaction.changes
                and pipeline is not None
                and pipeline not in transaction.pipelines
                and used + self._group_items(project, changes, position) > MAX_TRANSACTION_ITEMS
            ):
                # A pipeline's runs that fit in the next transaction are not split across two:
                # transactions of different pipelines are written side by side, of one in turn.
                break
            operations += own
            if advance is not None:
                advances[advance.pipeline_id] = _merged(advances.get(advance.pipeline_id), advance)
            if run is not None and day is not None:
                before = None if change.created else "running"  # an OpenLineage run ends once
                moves = days.setdefault(day, {})
                for name, count in transition_moves(run.pipeline_id, before, str(run.status), size).items():
                    moves[name] = moves.get(name, 0) + count
                if ends:
                    latest = last_runs.get(run.pipeline_id)
                    if latest is None or str(latest.get("end_date")) <= timeutil.iso(run.end_date):
                        last_runs[run.pipeline_id] = run_item(project, run)
            room = max(
                MAX_TRANSACTION_ITEMS - len(operations) - len(advances) - len(days) - len(last_runs), 0
            )
            operations += [self.table.put_op(item) for item in closure[:room]]
            transaction.closure += closure[room:]
            transaction.runs.add(change.run_key)
            if run is None:
                transaction.claims_of.add(change.run_key)
            if run is not None:
                transaction.pipelines.add(run.pipeline_id)
                transaction.creates.add(run.id)
                if change.created and run.parent_id is not None:
                    transaction.parents.add(run.parent_id)
            transaction.changes.append(change)
        operations += [self.runs.advance_op(project, a, now) for a in advances.values()]
        operations += [day_moves_op(self.table, project, d, moves) for d, moves in days.items() if moves]
        operations += [last_run_op(self.table, project, item) for item in last_runs.values()]
        return transaction

    def _group_items(self, project: str, changes: list[RunChange], first: int) -> int:
        """The items of the consecutive changes of one pipeline from `first`, with its advance."""
        pipeline = _pipeline_of(changes[first])
        items, advance = 0, 0
        for change in changes[first:]:
            if change.run is not None and change.run.pipeline_id != pipeline:
                break
            items += _item_count(change)
            advance = advance or int(change.advance is not None and change.advance.changes_anything)
            if items > MAX_TRANSACTION_ITEMS:
                break
        return items + advance

    def _operations(
        self, project: str, change: RunChange, written: set[int]
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], int]:
        """The change's operations, the closure rows of a created execution, and the bytes it stores."""
        table = self.table
        operations: list[dict[str, Any]] = []
        closure: list[dict[str, Any]] = []
        size = 0
        run, mapped = change.run, change.mapped
        if change.created and run is not None and mapped is not None:
            item = run_item(project, run)
            item["stored_bytes"] = size = item_bytes(item)
            operations.append(table.put_op(item, ABSENT))
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
                    *keys.openlineage_run(project, change.run_key),
                    set_={"ended": True},
                    add={"events": set(change.mapping_events)} if change.mapping_events else None,
                    condition=NOT_ENDED,
                )
            )
        operations += [table.put_op(_event_item(project, k), ABSENT) for k in change.claims]
        return operations, closure, size


@dataclass
class _Transaction:
    operations: list[dict[str, Any]] = field(default_factory=list)
    changes: list[RunChange] = field(default_factory=list)
    closure: list[dict[str, Any]] = field(default_factory=list)  # rows past the 100 items
    pipelines: set[int] = field(default_factory=set)  # pipelines whose executions it writes
    creates: set[int] = field(default_factory=set)  # executions it writes
    parents: set[int] = field(default_factory=set)  # parents of the executions it creates
    runs: set[str] = field(default_factory=set)  # OpenLineage runIds of its changes
    claims_of: set[str] = field(default_factory=set)  # runIds of its claims-only changes
    after: set[int] = field(default_factory=set)  # transactions that must commit first


def _item_count(change: RunChange) -> int:
    """The items `_operations(change, written=set())` makes, with its closure rows, counted without
    rendering them (the packing looks ahead at a pipeline's runs at each pipeline it meets)."""
    run = change.run
    count = len(change.claims)
    if change.created and run is not None and change.mapped is not None:
        count += 3 + (run.parent_id is not None) + len(run.ancestors)
    elif run is not None:
        count += 2
    return count


def _pipeline_of(change: RunChange) -> int | None:
    return change.run.pipeline_id if change.run is not None else None


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
