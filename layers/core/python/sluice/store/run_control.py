"""Execution slots and the run-engine state of a run (its plan, cancel flag, node runs).

A project may have at most `max_concurrent_runs` runs `running`. The count is one counter item
per project; a run takes a slot in the same transaction that moves it from pending to running
and marks it `slot_held`, and gives the slot back in the transaction that clears that mark, so a
slot is released exactly once however often finishing is retried or a reconciler steps in.
The limit lives on a separate item (`SettingsRepository`), so changing it never touches the counter.
"""

from __future__ import annotations

from typing import Any

from sluice import timeutil
from sluice.domain.run_engine.errors import NotPending, SlotsFull
from sluice.domain.status import RunStatus
from sluice.store import keys
from sluice.store.run_calendar import transition_op
from sluice.store.settings import SettingsRepository
from sluice.store.table import Condition, ConditionFailed, Table, TransactionCancelled


def slots_key(project: str) -> tuple[str, str]:
    return keys.project(project), "SLOTS"


class RunControl:
    def __init__(self, table: Table):
        self.table = table
        self.settings = SettingsRepository(table)

    def max_concurrent_runs(self, project: str) -> int:
        # Eventually consistent: a limit changed a moment ago may apply from the next dispatch on.
        return self.settings.get(project, consistent=False).max_concurrent_runs

    def running_count(self, project: str) -> int:
        found = self.table.get(*slots_key(project)) or {}
        return int(found.get("running", 0))

    def has_free_slot(self, project: str) -> bool:
        """Whether a run could take a slot now (a hint: claim_slot alone decides)."""
        return self.running_count(project) < self.max_concurrent_runs(project)

    def claim_slot(self, project: str, run_id: int, execution_name: str, day: str | None = None) -> None:
        """pending -> running and one slot taken, atomically (with `day`, the run's start day, its
        day counter moves in the same transaction); SlotsFull or NotPending otherwise."""
        limit = self.max_concurrent_runs(project)
        if limit <= 0:
            # A project allowed no run at all (the counter's absent-or-below test would let one in).
            raise SlotsFull(f"project {project} may run no runs (max_concurrent_runs is {limit})")
        pk, sk = keys.run(project, run_id)
        now = timeutil.iso(timeutil.now())
        operations = [
            self.table.update_op(
                *slots_key(project),
                add={"running": 1},
                condition=Condition(
                    "attribute_not_exists(#r) OR #r < :limit",
                    names={"#r": "running"},
                    values={":limit": limit},
                ),
            ),
            self.table.update_op(
                pk,
                sk,
                set_={
                    "status": RunStatus.running,
                    "slot_held": True,
                    "execution_name": execution_name,
                    "running_at": now,
                },
                condition=Condition(
                    "#s = :pending", names={"#s": "status"}, values={":pending": RunStatus.pending}
                ),
            ),
        ]
        if day is not None:
            operations.append(
                transition_op(self.table, project, day, 0, RunStatus.pending, RunStatus.running)
            )
        try:
            self.table.transact(operations)
        except TransactionCancelled as cancelled:
            # A conflict on the shared slot or day item: the run stays queued and is tried again.
            if cancelled.reasons and (
                cancelled.reasons[0] == "ConditionalCheckFailed" or "TransactionConflict" in cancelled.reasons
            ):
                raise SlotsFull(f"{limit} runs are already running in project {project}") from cancelled
            raise NotPending(f"run {run_id} is not pending") from cancelled

    def release_slot(
        self, project: str, run_id: int, back_to_pending: bool = False, day: str | None = None
    ) -> bool:
        """Give back the run's slot if it holds one; True when this call released it. Back to
        pending with `day` (its start day), the run's day counter moves back too."""
        pk, sk = keys.run(project, run_id)
        changes: dict[str, Any] = {"status": RunStatus.pending} if back_to_pending else {}
        counter = []
        if back_to_pending and day is not None:
            counter = [transition_op(self.table, project, day, 0, RunStatus.running, RunStatus.pending)]
        try:
            self.table.transact(
                counter
                + [
                    self.table.update_op(
                        pk,
                        sk,
                        set_=changes or None,
                        remove=["slot_held"],
                        condition=Condition("#h = :yes", names={"#h": "slot_held"}, values={":yes": True}),
                    ),
                    self.table.update_op(
                        *slots_key(project),
                        add={"running": -1},
                        condition=Condition("#r > :zero", names={"#r": "running"}, values={":zero": 0}),
                    ),
                ]
            )
        except TransactionCancelled:
            return False
        return True

    def request_cancel(self, project: str, run_id: int) -> str:
        """Flag a pending or running run as cancelled-on-request; returns its status then."""
        pk, sk = keys.run(project, run_id)
        try:
            updated = self.table.update(
                pk,
                sk,
                set_={"cancel_requested": True},
                condition=Condition(
                    "#s IN (:pending, :running)",
                    names={"#s": "status"},
                    values={":pending": RunStatus.pending, ":running": RunStatus.running},
                ),
            )
        except ConditionFailed:
            return ""
        return str(updated.get("status", ""))
