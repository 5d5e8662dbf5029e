"""The reconciler (RunReconcilerFunction, every 5 minutes): no run stays pending or running for ever.

One Query of the project's active-run index, then per run: a running run whose execution is no
longer RUNNING ends failed; a pending run whose queue message was last sent STALE_PENDING_SECONDS
ago is sent again while the project has a free slot (or ended cancelled when its cancel was
asked); a flow parent whose hand-over was lost moves on as the hand-over would have; finished runs
left in the index are forgotten. Every repair is conditional, so a pass racing the normal path, or
another pass, changes nothing twice (docs/architecture.md, "Reconciler").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pendulum

from sluice import timeutil
from sluice.domain.run_engine.core import EngineCore, logger
from sluice.domain.run_engine.ports import EXECUTION_MISSING
from sluice.domain.run_engine.record import RunRecord
from sluice.domain.status import RunStatus

# The reconciler sends a pending run's message again once it was last sent this long ago: the
# message may be lost (a failed send, a restarted local stack, the dead-letter queue after 1000
# receives). A queued run is dispatched within seconds, a full project's head is retried every 2 s.
STALE_PENDING_SECONDS = 5 * 60
# A flow level's children are started by the request or hand-over that moved the parent there
# (Lambdas of 120 s at most); a pipeline of the level with no child run after this long never will.
FLOW_START_GRACE_SECONDS = 3 * 60
# A run holds its slot just before the dispatcher (30 s at most) starts its execution, so a missing
# execution is only taken for a dead one after this long.
EXECUTION_START_GRACE_SECONDS = 60
STILL_GOING = "RUNNING"  # the state machine's word for an execution that is alive


@dataclass
class Reconciliation:
    """What one reconciler pass did in a project."""

    finished: int = 0  # runs ended: their execution died, or a pending run's cancel was lost
    requeued: int = 0  # pending runs whose message was sent again
    flows: int = 0  # flow parents moved on: children counted or started, the level advanced or ended
    errors: int = 0  # runs that could not be reconciled (logged; the next pass tries again)


class Reconciling(EngineCore):
    def reconcile(
        self,
        project: str,
        execution_status: Callable[[str], str | None],
        backfill_status: Callable[[str], str | None] | None = None,
    ) -> Reconciliation:
        """One pass over the project's active index (see the module's docstring); with
        `backfill_status`, a backfill parent whose Backfill execution died is ended too."""
        report = Reconciliation()
        now = self._clock()
        free_slot: bool | None = None  # read once, and only when a stale pending run needs it
        for run_id in self.runs.active(project):
            try:
                run = self.runs.get(project, run_id)
                if run is None:
                    self.runs.forget_active(project, run_id)
                elif run.finished:
                    self._give_back_slot(project, run_id)
                    self.runs.forget_active(project, run_id)
                elif run.backfill is not None:
                    if (
                        run.status == RunStatus.running
                        and backfill_status is not None
                        and self._reconcile_backfill(project, run, backfill_status, now)
                    ):
                        report.flows += 1
                elif run.flow is not None:
                    if run.status == RunStatus.running and self._reconcile_flow(project, run, now):
                        report.flows += 1
                elif run.status == RunStatus.pending:
                    if run.backfill_parent is not None and run.queued_at is None:
                        continue  # not released yet: its Backfill execution's Map sends it
                    if not older_than(run.last_queued, now, STALE_PENDING_SECONDS):
                        continue
                    if run.cancel_requested:
                        # The cancel that ends a pending run at once died before it did.
                        self.finish(project, run_id, RunStatus.cancelled, only_pending=True)
                        report.finished += 1
                        continue
                    if free_slot is None:
                        free_slot = self.slots.has_free_slot(project)
                    # While every slot is taken the dispatcher could not start it anyway, and a
                    # waiting run's message is most likely still queued: no pile of duplicates.
                    if free_slot and self._requeue(project, run, now):
                        report.requeued += 1
                elif run.status == RunStatus.running and run.execution_name:
                    state = execution_status(run.execution_name)
                    if self._execution_died(run, state, now):
                        self.finish(
                            project,
                            run_id,
                            RunStatus.failed,
                            error=f"The run's state machine execution ended {state} before the run was finished.",
                        )
                        report.finished += 1
            except Exception:  # noqa: BLE001 - one run's trouble must not stop the others
                logger.exception("run not reconciled", extra={"project": project, "run_id": run_id})
                report.errors += 1
        return report

    def _reconcile_backfill(
        self,
        project: str,
        parent: RunRecord,
        backfill_status: Callable[[str], str | None],
        now: pendulum.DateTime,
    ) -> bool:
        """A backfill whose Backfill execution ended (or never started) without ending its parent:
        the children it never released are cancelled, and once every child has finished the
        parent ends as the execution would have ended it. True when it did either."""
        name = parent.stored.get("backfill_execution")
        state = backfill_status(str(name)) if name else EXECUTION_MISSING
        started = parent.execution.created_at or parent.execution.start_date
        if state == STILL_GOING or state is None:
            return False
        if state == EXECUTION_MISSING and not older_than(started, now, EXECUTION_START_GRACE_SECONDS):
            return False
        logger.warning("backfill execution gone", extra={"run_id": parent.id, "state": state})
        children = self.runs.children(project, parent.id)
        for child in children:
            if child.status == RunStatus.pending and child.queued_at is None:
                self.finish(project, child.id, RunStatus.cancelled, only_pending=True)
        if all(c.finished for c in self.runs.children(project, parent.id)):
            self.backfill_finish(project, parent.id)
        return True

    @staticmethod
    def _execution_died(run: RunRecord, state: str | None, now: pendulum.DateTime) -> bool:
        if state is None or state == STILL_GOING:
            return False
        # A missing execution may be one the dispatcher took the slot for and is about to start.
        return state != EXECUTION_MISSING or older_than(run.running_since, now, EXECUTION_START_GRACE_SECONDS)

    def _requeue(self, project: str, run: RunRecord, now: pendulum.DateTime) -> bool:
        """Send a stale pending run's message again, once per staleness: the conditional move of
        its `queued_at` decides which of two racing reconcilers sends. A duplicate of a message
        still queued is harmless: the dispatcher drops a run that is no longer pending."""
        if self.queue is None:
            logger.warning("no run queue to re-send a pending run to", extra={"run_id": run.id})
            return False
        resend = self.runs.requeue(project, run.id, run.queued_at, timeutil.iso(now))
        if resend is None:
            return False
        self.queue.send(project, run.id, resend=resend)
        logger.info("pending run sent again", extra={"project": project, "run_id": run.id, "resend": resend})
        return True

    def _reconcile_flow(self, project: str, parent: RunRecord, now: pendulum.DateTime) -> bool:
        """Move on a flow parent whose hand-over was lost, as the hand-over would have: start the
        level's pipelines that never got a child run (after FLOW_START_GRACE_SECONDS; counted as
        not succeeded instead once a cancel was asked), count the ended children the parent was
        never told about once no child of the level is live, and advance a level whose last
        child was counted but whose advance died. True when it did any of that."""
        flow = parent.flow
        assert flow is not None
        level = flow.level
        children = {
            child.pipeline_id: child
            for child in self.runs.children(project, parent.id)
            if child.flow_level == level
        }
        live = any(not child.finished for child in children.values())
        missing = [m for m in flow.members if m not in flow.counted and m not in children]
        ended = [m for m in flow.members if m not in flow.counted and m in children and not live]
        changed = False
        started_at = (
            timeutil.from_stored(flow.level_started_at)
            if flow.level_started_at
            else parent.execution.updated_at or parent.execution.created_at
        )
        if missing and older_than(started_at, now, FLOW_START_GRACE_SECONDS):
            logger.warning("flow children never started", extra={"run_id": parent.id, "pipelines": missing})
            if parent.cancel_requested:
                for member in missing:
                    self._flow_child_finished(project, parent.id, level, member, False)
            else:
                self._start_flow_children(project, parent.id, level, missing)
            changed = True
        for member in ended:
            logger.warning("flow hand-over lost", extra={"run_id": parent.id, "child": children[member].id})
            self._flow_child_finished(
                project, parent.id, level, member, children[member].status == RunStatus.success
            )
            changed = True
        if not changed and flow.remaining > 0:
            return False
        current = self.runs.get(project, parent.id)
        if (
            current is not None
            and current.flow is not None
            and current.status == RunStatus.running
            and current.flow.level == level
            and current.flow.remaining <= 0
        ):
            # Every child of the level was counted, yet the level neither moved on nor ended.
            self._advance_flow(project, current)
            changed = True
        return changed


def older_than(moment: pendulum.DateTime | None, now: pendulum.DateTime, seconds: int) -> bool:
    """Whether `moment` is at least `seconds` before `now` (no time at all counts as old)."""
    return moment is None or (now - moment).total_seconds() >= seconds
