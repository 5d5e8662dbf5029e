"""Finishing a run (FinishRun, a failed queue send, a cancel, the reconciler), idempotently.

One transaction guarded by the end count and the statuses it may end from writes Watcher's end
fields (metrics from what the run's targets wrote), removes the run from the active index and moves
the pipeline's watermark and target times; node runs never started are closed first; the slot is
given back; on success `execution.ended` is published and the datasets read and written recorded
as lineage; a flow child's end is handed over to its parent.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from sluice.domain.events import EXECUTION_ENDED
from sluice.domain.executions import ConcurrentEnd, EndReport, PipelineAdvance, Run, apply_end
from sluice.domain.run_engine.core import EngineCore, logger
from sluice.domain.run_engine.record import NodeRunRecord, RunRecord, run_ref
from sluice.domain.status import FINISHED, NodeStatus, RunStatus
from sluice.errors import Conflict, SluiceError, Unavailable

FINISH_ATTEMPTS = 10


class Finishing(EngineCore):
    def finish(
        self,
        project: str,
        run_id: int,
        outcome: RunStatus | str,
        error: Any = None,
        only_pending: bool = False,
    ) -> dict[str, Any]:
        """End the run with `outcome` (a finished status; anything else is failed), idempotently: Watcher's metrics from what its targets wrote, the pipeline's
        watermark and target times moved on success, node runs left over closed, the slot given
        back, execution.ended published and lineage recorded on success."""
        status = RunStatus(outcome) if outcome in {s.value for s in FINISHED} else RunStatus.failed
        for attempt in range(FINISH_ATTEMPTS):
            run = self.runs.get(project, run_id)
            if run is None:
                return {"project": project, "run_id": run_id, "status": "gone"}
            if run.finished:
                self._give_back_slot(project, run_id)
                self.runs.forget_active(project, run_id)
                # A retried finish repeats a hand-over its first attempt may have lost (counted once).
                self._hand_over(project, run, run.status == RunStatus.success)
                return {"project": project, "run_id": run_id, "status": run.status.value}
            if only_pending and run.status != RunStatus.pending:
                return {"project": project, "run_id": run_id, "status": run.status.value}
            node_runs = self.runs.node_runs(project, run_id)
            if status == RunStatus.success and any(n.status == NodeStatus.failed for n in node_runs):
                status = RunStatus.failed
            message = None
            if status == RunStatus.failed:
                message = run.error or error_text(error) or "The run failed."
            ended, advance, candidate = self._ended(run, node_runs, status)
            # Node runs first, so a reader who sees the run finished sees no node left pending.
            leftover = NodeStatus.cancelled if status == RunStatus.cancelled else NodeStatus.skipped
            for node_run in node_runs:
                if node_run.status == NodeStatus.pending:
                    self.runs.update_node_run(
                        project, run_id, node_run.node_id, {"status": leftover.value}, (NodeStatus.pending,)
                    )
            extra = {"error": message, "next_watermark": candidate, "progress_stage": "done"}
            endable = (RunStatus.pending,) if only_pending else (RunStatus.pending, RunStatus.running)
            # From the status it was read in only, so its day counter moves from that one (a change
            # in between fails the guard and is read again).
            endable = (run.status,) if run.status in endable else endable
            try:
                self.runs.end(
                    project,
                    ended,
                    run.execution.end_count,
                    endable,
                    extra,
                    advance,
                    candidate,
                    run_date=run.param_date,
                )
            except ConcurrentEnd:
                time.sleep(0.02 * (attempt + 1))
                continue
            break
        else:
            raise Conflict(f"Run {run_ref(run_id)} kept changing while it was being finished.")
        self._give_back_slot(project, run_id)
        if self.quality is not None and run.flow is None and run.backfill is None:
            try:  # the dbt status of seed 000: this run's SQL models
                self.quality.run_finished(
                    project, run_id, status.value, run.execution.start_date, ended.end_date, node_runs
                )
            except Exception:  # noqa: BLE001 - the run is ended; its status page must not undo that
                logger.exception("dbt status not recorded", extra={"run_id": run_id})
        self._tell_status(project, run_id, run.pipeline_id, status)
        if status == RunStatus.success and run.flow is None and run.backfill is None:
            self._after_success(project, ended, node_runs)
        self._hand_over(project, run, status == RunStatus.success)
        return {"project": project, "run_id": run_id, "status": status.value}

    def cancel(self, project: str, ref: str | int) -> dict[str, Any]:
        """Ask a pending or running run to stop: a pending one ends `cancelled` at once, a running
        one stops starting nodes (NextStep and ExecuteNode read the flag); a flow's children too."""
        run = self.run_item(project, ref)
        before = self.slots.request_cancel(project, run.id)
        if not before:
            current = self.runs.get(project, run.id) or run
            raise Conflict(
                f"Run {run_ref(run.id)} is {current.status.value}; only pending or running runs can be cancelled."
            )
        if before == RunStatus.pending:
            self.finish(project, run.id, RunStatus.cancelled, only_pending=True)
        if run.backfill is not None:
            self._cancel_backfill_children(project, run.id)  # backfill.py
        if run.flow is not None:
            for child in self.runs.children(project, run.id):
                if not child.finished:
                    with contextlib.suppress(Conflict):
                        self.cancel(project, child.id)
        return {"status": RunStatus.cancelled.value}

    def _hand_over(self, project: str, run: RunRecord, succeeded: bool) -> None:
        """A flow child's end, told to its parent (flows.py)."""
        if run.flow_parent is not None:
            self._flow_child_finished(project, run.flow_parent, run.flow_level, run.pipeline_id, succeeded)

    def _ended(
        self, record: RunRecord, node_runs: list[NodeRunRecord], status: RunStatus
    ) -> tuple[Run, PipelineAdvance | None, str | None]:
        run = record.execution
        now = self._clock()
        end = now if now > run.start_date else run.start_date.add(microseconds=1)
        written = [n.written for n in node_runs if n.status == NodeStatus.success and n.written]
        total = sum(int(w.get("rows_written") or 0) for w in written)
        inserts = sum(int(w.get("inserts") or 0) for w in written)
        updates = sum(int(w.get("updates") or 0) for w in written)
        duration = int((end - run.start_date).total_seconds())
        throughput = round(total / duration, 4) if duration > 0 else 0.0
        report = EndReport(
            end_date=end,
            completed_successfully=status == RunStatus.success,
            duration_seconds=duration,
            throughput=throughput,
            total_rows=total,
            inserts=inserts,
            updates=updates,
            soft_deletes=0,
            execution_metadata=run.execution_metadata,
        )
        ended = replace(apply_end(run, report, now), status=status.value)
        candidate = next(
            (
                n.watermark
                for n in sorted(node_runs, key=lambda n: n.position)
                if n.status == NodeStatus.success and n.incremental and n.watermark is not None
            ),
            None,
        )
        advance = None
        # A flow's or a backfill's parent moves no pipeline (its children do).
        if status == RunStatus.success and record.flow is None and record.backfill is None:
            advance = PipelineAdvance(run.pipeline_id, candidate, report.target_times())
        return ended, advance, candidate

    def _after_success(self, project: str, ended: Run, node_runs: list[NodeRunRecord]) -> None:
        if self.publisher is not None:
            try:
                self.publisher.publish(
                    EXECUTION_ENDED,
                    {"project": project, "pipeline_id": ended.pipeline_id, "execution_id": ended.id},
                )
            except Unavailable as exc:
                logger.error(
                    "execution.ended not published", extra={"run_id": ended.id, "reason": exc.detail}
                )
        ran = [n for n in node_runs if n.status == NodeStatus.success]
        targets = sorted({n.dataset_written for n in ran if n.dataset_written})
        sources = sorted({name for n in ran for name in n.datasets_read})
        if self.lineage is not None and (targets or sources):  # a reader alone records its reads
            try:
                self.lineage.record(project, ended.pipeline_id, sources, targets)
            except SluiceError as exc:
                logger.warning("run lineage not recorded", extra={"run_id": ended.id, "reason": exc.detail})


def error_text(error: Any) -> str | None:
    """The sentence inside a Step Functions Catch result ({Error, Cause}); Cause is Lambda's JSON."""
    if error is None:
        return None
    if isinstance(error, str):
        return error
    if isinstance(error, Mapping):
        cause = error.get("Cause")
        if isinstance(cause, str):
            try:
                parsed = json.loads(cause)
            except ValueError:
                return cause
            if isinstance(parsed, Mapping) and parsed.get("errorMessage"):
                return str(parsed["errorMessage"])
            return cause
        if error.get("Error"):
            return str(error["Error"])
    return None
