"""The run engine: trigger, dispatch, the Run state machine's tasks, finish, reconcile, flow runs
and the Runs API's reads, behind the `RunEngine` facade.

A Sluice run is an execution (SPEC 1): the same run item, counter and end fields as Watcher's,
with the engine's attributes beside them. Every collaborator is a port (errors.py holds what the
adapters raise to it), so unit tests give fakes and the composition root gives AWS.
"""

from sluice.domain.run_engine.engine import (
    DEFAULT_PARALLELISM,
    EXECUTION_START_GRACE_SECONDS,
    FLOW_START_GRACE_SECONDS,
    MAX_RUN_PAGE_SIZE,
    RUN_PAGE_SIZE,
    STALE_PENDING_SECONDS,
    Definitions,
    LineageRecorder,
    NodeExecutor,
    Reconciliation,
    RevisionGraphs,
    RunEngine,
    RunItems,
    RunQueue,
    RunRequest,
    Slots,
    _error_text,
    artifact_run,
    execution_name,
    run_ref,
)
from sluice.domain.run_engine.errors import (
    FlowChildStarted,
    NodeFailed,
    NotPending,
    SlotsFull,
    TriggerReplayed,
)

__all__ = [
    "DEFAULT_PARALLELISM",
    "EXECUTION_START_GRACE_SECONDS",
    "FLOW_START_GRACE_SECONDS",
    "MAX_RUN_PAGE_SIZE",
    "RUN_PAGE_SIZE",
    "STALE_PENDING_SECONDS",
    "Definitions",
    "FlowChildStarted",
    "LineageRecorder",
    "NodeExecutor",
    "NodeFailed",
    "NotPending",
    "Reconciliation",
    "RevisionGraphs",
    "RunEngine",
    "RunItems",
    "RunQueue",
    "RunRequest",
    "Slots",
    "SlotsFull",
    "TriggerReplayed",
    "_error_text",
    "artifact_run",
    "execution_name",
    "run_ref",
]
