"""The run engine's ports: what it asks of the table (runs, definitions, slots), the run queue, the
node engine, the run artifacts in S3 and the lineage service. The composition root gives the AWS
adapters (sluice.store.runs, sluice.store.run_control, sluice.adapters.*); unit tests give fakes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

from sluice.domain.executions import PipelineAdvance, Run
from sluice.domain.run_engine.record import NodeRunRecord, RunRecord

# What the state machine port answers for an execution Step Functions does not know.
EXECUTION_MISSING = "MISSING"


class RunItems(Protocol):
    """The run items (sluice.store.runs.RunEngineRepository): reads give records, writes name the
    attributes they change and are conditional where a race could lose something."""

    def next_run_id(self, project: str) -> int: ...
    def allocate_run_ids(self, project: str, count: int) -> list[int]: ...
    def create_children(self, project: str, runs: list[tuple[Run, dict[str, Any]]]) -> None:
        """Pending children of one parent, in chunks each written whole (Conflict otherwise)."""
        ...

    def add_bytes(self, project: str, run_id: int, day: str, size: int) -> None: ...
    def note_resumed(self, project: str, run_id: int, resumed_by: int) -> None: ...
    def mark_queued(self, project: str, run_id: int, now: str) -> None:
        """A pending run's queue message was sent now (a backfill child released by its Map)."""
        ...

    def create(
        self, project: str, run: Run, engine: dict[str, Any], claim: dict[str, Any] | None = None
    ) -> None:
        """All or nothing; FlowChildStarted or TriggerReplayed (errors.py) when a claim is taken."""
        ...

    def trigger_claim(self, project: str, key: str) -> dict[str, Any] | None: ...
    def get(self, project: str, run_id: int) -> RunRecord | None: ...
    def node_runs(self, project: str, run_id: int) -> list[NodeRunRecord]: ...
    def node_run(self, project: str, run_id: int, node_id: str) -> NodeRunRecord | None: ...
    def active(self, project: str) -> list[int]: ...
    def pipeline_run_ids(self, project: str, pipeline_id: int, offset: int, limit: int) -> list[int]: ...
    def get_many(self, project: str, run_ids: list[int]) -> list[RunRecord]: ...
    def recent(
        self, project: str, since: str | None, keep: Callable[[RunRecord], bool], limit: int
    ) -> list[RunRecord]: ...
    def store_plan(
        self, project: str, run_id: int, plan: dict, node_runs: list[dict], watermark: Any
    ) -> bool: ...
    def allocate_node_run_ids(self, project: str, count: int) -> list[int]: ...
    def update_node_run(
        self, project: str, run_id: int, node_id: str, changes: dict[str, Any], only_if: tuple[str, ...] = ()
    ) -> bool: ...
    def add_progress(self, project: str, run_id: int, stage: str, rows: int) -> None: ...
    def note_error(self, project: str, run_id: int, error: str) -> None: ...
    def end(
        self,
        project: str,
        ended: Run,
        seen_end_count: int,
        from_statuses: tuple[str, ...],
        extra: dict[str, Any],
        advance: PipelineAdvance | None,
        watermark_candidate: Any = None,
        run_date: str | None = None,
    ) -> None:
        """ConcurrentEnd (domain.executions) when another writer ended it first. With one status
        in `from_statuses` the run's day counter moves too; `run_date` notes the run of that date."""
        ...

    def forget_active(self, project: str, run_id: int) -> None: ...
    def requeue(self, project: str, run_id: int, seen_queued_at: str | None, now: str) -> int | None: ...
    def children(self, project: str, run_id: int) -> list[RunRecord]: ...
    def start_flow_level(self, project: str, parent_id: int, level: int, count: int) -> bool: ...
    def flow_child_done(
        self, project: str, parent_id: int, level: int, pipeline_id: int, succeeded: bool
    ) -> RunRecord | None: ...


class Definitions(Protocol):
    """The pipeline definitions (sluice.store.pipelines.PipelineDefinitionRepository)."""

    def get(self, project: str, pipeline_id: int) -> dict[str, Any] | None: ...
    def find_by_name(self, project: str, name: str) -> dict[str, Any] | None: ...
    def revision(self, project: str, pipeline_id: int, number: int) -> dict[str, Any] | None: ...
    def all(self, project: str) -> list[dict[str, Any]]: ...


class Slots(Protocol):
    """A project's execution slots (sluice.store.run_control.RunControl)."""

    def claim_slot(self, project: str, run_id: int, execution_name: str, day: str | None = None) -> None:
        """pending -> running with one slot taken; SlotsFull or NotPending (errors.py) otherwise."""
        ...

    def release_slot(
        self, project: str, run_id: int, back_to_pending: bool = False, day: str | None = None
    ) -> bool: ...
    def request_cancel(self, project: str, run_id: int) -> str: ...
    def has_free_slot(self, project: str) -> bool: ...
    def max_concurrent_runs(self, project: str) -> int: ...


class RunQueue(Protocol):
    def send(self, project: str, run_id: int, resend: int = 0) -> None:
        """Queue the run; `resend` numbers the reconciler's re-sends (0: the trigger's send)."""
        ...


class LineageRecorder(Protocol):
    def record(self, project: str, pipeline_id: int, sources: list[str], targets: list[str]) -> None: ...


class NodeExecutor(Protocol):
    """The node engine: runs one node (dict shape of sluice.engine.NodeRun) and returns its
    NodeResult, or raises NodeFailed."""

    def run(
        self, project: str, artifact_run: str, node: dict, inputs: dict[str, str], options: dict
    ) -> Any: ...
    def dry_run(
        self, project: str, nodes: list[tuple[dict, list[str]]], options: dict
    ) -> list[tuple[str, Any]]: ...


class RunArtifacts(Protocol):
    """What a node run left in the data bucket: its log lines, output preview and profile. Each
    raises NotFound when the node run has none."""

    def logs(self, project: str, artifact_run: str, node_id: str) -> list[dict[str, Any]]: ...
    def preview(self, project: str, artifact_run: str, node_id: str) -> dict[str, Any]: ...
    def profile(self, project: str, artifact_run: str, node_id: str) -> dict[str, Any]: ...


class QualityChecks(Protocol):
    """The data-quality rules of a dataset, checked on what a run's target node wrote
    (sluice.domain.quality.DataQuality)."""

    def after_write(
        self,
        project: str,
        run_id: int,
        pipeline_id: int,
        dataset_name: str,
        output_key: str,
        columns: list[str],
        rows_written: int,
        dataset_rows: int | None = None,
    ) -> Any: ...

    def run_finished(
        self, project: str, run_id: int, status: str, started: Any, finished: Any, node_runs: list[Any]
    ) -> None: ...


# The project's variables with their real values, read only when a node's config refers to one.
VariableResolver = Callable[[str], Mapping[str, str]]
