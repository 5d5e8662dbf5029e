"""Dispatch, the run queue's consumer: a pending run takes one of its project's execution slots and
its Run state machine execution starts; when every slot is taken it waits in the queue."""

from __future__ import annotations

from collections.abc import Callable

from sluice.domain.run_engine.core import EngineCore
from sluice.domain.run_engine.errors import NotPending, SlotsFull
from sluice.domain.run_engine.record import execution_name
from sluice.domain.status import RunStatus


class Dispatching(EngineCore):
    def dispatch(self, project: str, run_id: int, start: Callable[[str], None]) -> str:
        """'dropped' (not pending any more), 'full' (slots taken; retry later), 'started'."""
        run = self.runs.get(project, run_id)
        if run is None or run.status != RunStatus.pending:
            return "dropped"
        if run.cancel_requested:
            self.finish(project, run_id, RunStatus.cancelled, only_pending=True)
            return "dropped"
        name = execution_name(project, run_id)
        try:
            self.slots.claim_slot(project, run_id, name, day=run.day)
        except SlotsFull:
            return "full"
        except NotPending:
            return "dropped"
        self._tell_status(project, run_id, run.pipeline_id, RunStatus.running)
        try:
            start(name)
        except Exception:
            self._give_back_slot(project, run_id, back_to_pending=True, day=run.day)
            raise
        return "started"
