"""Backfills (seed 002, SPEC 4 and 8): a parent run over a pipeline and one child run per date of a
range, each with `params.date`, started by the Backfill state machine (statemachines/
backfill.asl.json) with bounded concurrency.

The request writes the parent `running` and every child `pending` (children of the parent, as
Watcher's child executions are) and starts the Backfill execution; it answers at once. The
execution's Map releases children to the run queue, at most `concurrency` at a time, and waits for
each to finish before releasing the next; then the parent ends `success` when every child did,
`failed` otherwise, `cancelled` when it was cancelled. A child not yet released carries no
`queued_at`, which tells the reconciler it is the Map's to send, not a lost message.
"""

from __future__ import annotations

import datetime as _dt
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

from sluice import timeutil
from sluice.domain.executions import Run
from sluice.domain.graph import Graph
from sluice.domain.run_engine.core import EngineCore, logger
from sluice.domain.run_engine.record import execution_name, run_ref
from sluice.domain.status import DEFAULT_PIPELINE_STATUS, PipelineStatus, RunStatus
from sluice.errors import Conflict, InvalidRequest, SluiceError, Unavailable, ValidationFailed

MAX_BACKFILL_DAYS = 366
REPROCESS_CHOICES = ("all", "failed", "missing")
CREATE_WORKERS = 4  # writers of children in parallel (each writes whole transactions of them)
CHILDREN_PER_WRITER = 96  # a year's 366 children: four writers
POLL_SECONDS = 1  # how often a Map iteration looks at its running child (the state machine's Wait)
MAX_ERROR_DATES = 10


class BackfillMachine(Protocol):
    """The Backfill state machine (sluice.adapters.state_machine.StepFunctionsBackfills)."""

    def start(self, name: str, payload: dict[str, Any]) -> None: ...


class DatedRuns(Protocol):
    """A pipeline's latest finished run per `params.date` (sluice.store.run_calendar)."""

    def dated(self, project: str, pipeline_id: int, first: str, last: str) -> dict[str, dict[str, Any]]: ...


def backfill_dates(start: _dt.date, end: _dt.date) -> list[str]:
    """Every date from `start` to `end`, inclusive; ValidationFailed for a reversed or too long range."""
    if end < start:
        raise ValidationFailed(f"end_date {end.isoformat()} is before start_date {start.isoformat()}.")
    days = (end - start).days + 1
    if days > MAX_BACKFILL_DAYS:
        raise ValidationFailed(
            f"A backfill covers at most {MAX_BACKFILL_DAYS} days; {start.isoformat()} to "
            f"{end.isoformat()} is {days}."
        )
    return [(start + _dt.timedelta(days=n)).isoformat() for n in range(days)]


def chosen_dates(dates: list[str], latest: dict[str, dict[str, Any]], reprocess: str) -> list[str]:
    """The dates a backfill runs: `all`; `failed` (the date's latest run failed); `missing` (no run
    of the date has succeeded last)."""
    if reprocess not in REPROCESS_CHOICES:
        raise ValidationFailed(f"reprocess must be one of {', '.join(REPROCESS_CHOICES)}, not '{reprocess}'.")
    status = {day: str(latest[day].get("status")) for day in dates if day in latest}
    if reprocess == "failed":
        return [day for day in dates if status.get(day) == RunStatus.failed]
    if reprocess == "missing":
        return [day for day in dates if status.get(day) != RunStatus.success]
    return list(dates)


class Backfills(EngineCore):
    def backfill(
        self,
        project: str,
        record: dict[str, Any],
        start: _dt.date,
        end: _dt.date,
        reprocess: str = "all",
        dry_run: bool = False,
    ) -> tuple[dict[str, Any], bool]:
        """Plan (and unless `dry_run`, start) a backfill; (answer, whether runs were created)."""
        dates = backfill_dates(start, end)
        pipeline_id = int(record["id"])
        latest = self.dated_runs.dated(project, pipeline_id, dates[0], dates[-1]) if self.dated_runs else {}
        chosen = chosen_dates(dates, latest, reprocess)
        answer: dict[str, Any] = {
            "pipeline_id": pipeline_id,
            "start_date": dates[0],
            "end_date": dates[-1],
            "reprocess": reprocess,
            "dates": chosen,
            "count": len(chosen),
            "succeeded": [d for d in dates if str(latest.get(d, {}).get("status")) == RunStatus.success],
        }
        if dry_run:
            return {**answer, "dry_run": True, "runs": []}, False
        if (record.get("status") or DEFAULT_PIPELINE_STATUS) == PipelineStatus.paused:
            raise Conflict(
                f"Pipeline {record['name']} is paused; set its status to active before a backfill."
            )
        if Graph.from_document(record.get("graph")).empty:
            raise InvalidRequest(f"Pipeline {record['name']} has no nodes to run.")
        if not chosen:
            return {**answer, "dry_run": False, "id": None, "runs": []}, False
        if self.backfills is None or self.queue is None:
            raise Unavailable("Backfills are not configured here (no Backfill state machine or run queue).")
        parent_id, children = self._write_backfill(project, record, chosen, reprocess, dates)
        name = execution_name(project, parent_id)
        concurrency = max(1, min(self.slots.max_concurrent_runs(project), len(children)))
        try:
            self.backfills.start(
                name,
                {
                    "project": project,
                    "parent_id": parent_id,
                    "children": children,
                    "concurrency": concurrency,
                    "poll_seconds": POLL_SECONDS,
                },
            )
        except Exception as exc:  # noqa: BLE001 - any start failure leaves nothing running
            logger.exception("backfill not started", extra={"project": project, "run_id": parent_id})
            self._abandon_backfill(project, parent_id, children, "The backfill could not be started.")
            raise Unavailable("The backfill could not be started; request it again in a moment.") from exc
        refs = [run_ref(c) for c in children]
        return {
            **answer,
            "dry_run": False,
            "id": run_ref(parent_id),
            "parent_id": run_ref(parent_id),
            "runs": refs,
        }, True

    def _write_backfill(
        self, project: str, record: dict[str, Any], chosen: list[str], reprocess: str, dates: list[str]
    ) -> tuple[int, list[int]]:
        """The parent (running) and one pending child per chosen date; ids in one counter move."""
        pipeline_id = int(record["id"])
        numbers = self.runs.allocate_run_ids(project, len(chosen) + 1)
        parent_id, child_ids = numbers[0], numbers[1:]
        now = self._clock()
        parent = Run(
            id=parent_id,
            pipeline_id=pipeline_id,
            status=RunStatus.running.value,
            start_date=now,
            origin="sluice",
            created_at=now,
        )
        common = {"revision": int(record.get("revision") or 0), "pipeline_name": record["name"]}
        self.runs.create(
            project,
            parent,
            {
                **common,
                "trigger": "backfill",
                "backfill": {
                    "start_date": dates[0],
                    "end_date": dates[-1],
                    "reprocess": reprocess,
                    "count": len(chosen),
                },
                "backfill_execution": execution_name(project, parent_id),
                "progress_stage": "running",
                "rows_processed": 0,
            },
        )

        children = []
        for child_id, day in zip(child_ids, chosen, strict=True):
            child = Run(
                id=child_id,
                pipeline_id=pipeline_id,
                status=RunStatus.pending.value,
                start_date=now,
                parent_id=parent_id,
                ancestors=(parent_id,),
                origin="sluice",
                created_at=now,
            )
            engine = {
                **common,
                "params": {"date": day},
                "full_refresh": False,
                "scope": "full",
                "trigger": "backfill",
                "backfill_parent": parent_id,
                "progress_stage": "queued",
                "rows_processed": 0,
            }
            children.append((child, engine))
        chunk = CHILDREN_PER_WRITER
        parts = [children[i : i + chunk] for i in range(0, len(children), chunk)]
        try:
            with ThreadPoolExecutor(max_workers=CREATE_WORKERS) as pool:
                list(pool.map(lambda part: self.runs.create_children(project, part), parts))
        except SluiceError as exc:
            logger.exception("backfill children not written", extra={"project": project, "run_id": parent_id})
            self._abandon_backfill(project, parent_id, child_ids, "Not every child run could be written.")
            raise Unavailable("The backfill could not be written; request it again in a moment.") from exc
        return parent_id, child_ids

    def _abandon_backfill(self, project: str, parent_id: int, children: list[int], why: str) -> None:
        for child_id in children:
            if self.runs.get(project, child_id) is not None:
                self.finish(project, child_id, RunStatus.cancelled, only_pending=True)
        self.finish(project, parent_id, RunStatus.failed, error=why)

    # -- the Backfill state machine's tasks --------------------------------------------------------
    def backfill_release(self, project: str, parent_id: int, run_id: int) -> dict[str, Any]:
        """A Map iteration's start: send the child to the run queue, or, once the parent was
        cancelled, cancel it instead. `done` is true when there is nothing to wait for."""
        child = self.runs.get(project, run_id)
        if child is None or child.finished:
            return {"project": project, "parent_id": parent_id, "run_id": run_id, "done": True}
        parent = self.runs.get(project, parent_id)
        if parent is None or parent.cancel_requested or parent.finished or child.cancel_requested:
            if child.status == RunStatus.pending:
                self.finish(project, run_id, RunStatus.cancelled, only_pending=True)
            current = self.runs.get(project, run_id)
            return {
                "project": project,
                "parent_id": parent_id,
                "run_id": run_id,
                "done": current is None or current.finished,
            }
        if child.status == RunStatus.pending:
            assert self.queue is not None
            # A duplicate send (a retried task) is harmless: the dispatcher drops a run not pending.
            self.queue.send(project, run_id)
            self.runs.mark_queued(project, run_id, timeutil.iso(self._clock()))
        return {"project": project, "parent_id": parent_id, "run_id": run_id, "done": False}

    def backfill_child_done(self, project: str, parent_id: int, run_id: int) -> dict[str, Any]:
        child = self.runs.get(project, run_id)
        done = child is None or child.finished
        return {"project": project, "parent_id": parent_id, "run_id": run_id, "done": done}

    def backfill_finish(self, project: str, parent_id: int) -> dict[str, Any]:
        """After the Map: the parent ends success when every child succeeded, failed otherwise,
        cancelled when asked (children still pending are cancelled first). Children the Map never
        released (it ended early) are cancelled."""
        parent = self._require_run(project, parent_id)
        children = self.runs.children(project, parent_id)
        # A Map that ended early (its Catch) leaves children it never released: they never will be.
        for child in children:
            if child.status == RunStatus.pending and child.queued_at is None:
                self.finish(project, child.id, RunStatus.cancelled, only_pending=True)
        if any(c.status == RunStatus.pending and c.queued_at is None for c in children):
            children = self.runs.children(project, parent_id)
        if parent.cancel_requested:
            for child in children:
                if child.status == RunStatus.pending:
                    self.finish(project, child.id, RunStatus.cancelled, only_pending=True)
            return self.finish(project, parent_id, RunStatus.cancelled)
        unsuccessful = [c for c in children if c.status != RunStatus.success]
        if not unsuccessful:
            return self.finish(project, parent_id, RunStatus.success)
        listed = ", ".join(
            f"{c.param_date} ({run_ref(c.id)} {c.status.value})" for c in unsuccessful[:MAX_ERROR_DATES]
        )
        more = len(unsuccessful) - MAX_ERROR_DATES
        error = (
            f"{len(unsuccessful)} of {len(children)} dates did not succeed: {listed}"
            + (f" and {more} more" if more > 0 else "")
            + "."
        )
        return self.finish(project, parent_id, RunStatus.failed, error=error)

    def _cancel_backfill_children(self, project: str, parent_id: int) -> None:
        """A cancelled backfill's children that have not started (pending) are cancelled now;
        running ones finish (the Map releases no more)."""
        for child in self.runs.children(project, parent_id):
            if child.status == RunStatus.pending:
                try:
                    if self.slots.request_cancel(project, child.id) == RunStatus.pending:
                        self.finish(project, child.id, RunStatus.cancelled, only_pending=True)
                except SluiceError as exc:
                    logger.warning(
                        "backfill child not cancelled", extra={"run_id": child.id, "reason": exc.detail}
                    )
