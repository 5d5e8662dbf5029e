"""The run engine: trigger, dispatch, the Run state machine's tasks, finish, reconcile, flow runs
and the Runs API's reads, behind the `RunEngine` facade (engine.py maps each concern to its module).

A Sluice run is an execution (SPEC 1): the same run item, counter and end fields as Watcher's,
with the engine's attributes beside them. Every collaborator is a port (ports.py; errors.py holds
what the adapters raise to it), so unit tests give fakes and the composition root gives AWS.
"""

from sluice.domain.run_engine.core import RevisionGraphs
from sluice.domain.run_engine.engine import RunEngine
from sluice.domain.run_engine.errors import (
    FlowChildStarted,
    NodeFailed,
    NotPending,
    SlotsFull,
    TriggerReplayed,
)
from sluice.domain.run_engine.finish import error_text
from sluice.domain.run_engine.ports import (
    EXECUTION_MISSING,
    Definitions,
    LineageRecorder,
    NodeExecutor,
    RunArtifacts,
    RunItems,
    RunQueue,
    Slots,
)
from sluice.domain.run_engine.reads import MAX_RUN_PAGE_SIZE, RUN_PAGE_SIZE
from sluice.domain.run_engine.reconcile import (
    EXECUTION_START_GRACE_SECONDS,
    FLOW_START_GRACE_SECONDS,
    STALE_PENDING_SECONDS,
    Reconciliation,
)
from sluice.domain.run_engine.record import (
    DEFAULT_PARALLELISM,
    NodeRunRecord,
    RunRecord,
    artifact_run,
    execution_name,
    run_ref,
)
from sluice.domain.run_engine.trigger import RunRequest, TriggerSurface

__all__ = [
    "DEFAULT_PARALLELISM",
    "EXECUTION_MISSING",
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
    "NodeRunRecord",
    "NotPending",
    "Reconciliation",
    "RevisionGraphs",
    "RunArtifacts",
    "RunEngine",
    "RunItems",
    "RunQueue",
    "RunRecord",
    "RunRequest",
    "Slots",
    "SlotsFull",
    "TriggerReplayed",
    "TriggerSurface",
    "artifact_run",
    "error_text",
    "execution_name",
    "run_ref",
]
