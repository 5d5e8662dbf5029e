"""The state vocabularies: a run's status, a node run's status and a pipeline's status, each one
enum, and the sets of them the rules test against (derived here, never spelled out elsewhere).

They are StrEnums, so a member is its stored and rendered string (`RunStatus.success == "success"`)
and items, conditions and responses carry the same words.
"""

from __future__ import annotations

from enum import StrEnum


class RunStatus(StrEnum):
    """A run's lifecycle: pending (queued, waiting for a slot), running, then one of the ends."""

    pending = "pending"
    running = "running"
    success = "success"
    failed = "failed"
    cancelled = "cancelled"

    @property
    def finished(self) -> bool:
        return self in FINISHED


FINISHED = frozenset({RunStatus.success, RunStatus.failed, RunStatus.cancelled})
UNFINISHED = frozenset(set(RunStatus) - FINISHED)  # the runs the active-run index holds


class NodeStatus(StrEnum):
    """A node run's lifecycle within its run: planned pending (or reused from an earlier run),
    running, then success or failed; a node that never started ends skipped or cancelled."""

    pending = "pending"
    running = "running"
    success = "success"
    failed = "failed"
    skipped = "skipped"
    cancelled = "cancelled"
    reused = "reused"


HAS_OUTPUT = frozenset({NodeStatus.success, NodeStatus.reused})  # an output a later node can read
EXECUTED = frozenset({NodeStatus.success, NodeStatus.failed})  # ran in this run, so it has logs


class PipelineStatus(StrEnum):
    """A pipeline definition's status (SPEC 3); a pipeline without one (Watcher's surface sets
    none) is active. Only an active pipeline's schedule fires; a paused one cannot be run."""

    active = "active"
    paused = "paused"
    error = "error"
    draft = "draft"


DEFAULT_PIPELINE_STATUS = PipelineStatus.active
