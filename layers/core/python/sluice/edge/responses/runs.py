"""The runs area's answers beyond Watcher's executions: the Runs API (seed 002), runs of a pipeline
definition (seeds 001, 003), dry runs, log lines, previews and profiles, flow runs (seed 000)."""

from __future__ import annotations

from sluice.edge.responses import Answer, Json, Number


class Progress(Answer):
    stage: str
    rows_processed: int


class NodeRun(Answer):
    id: str
    node_id: str
    status: str
    row_count: int | None = None
    duration_ms: int | None = None
    started_at: str | None = None
    finished_at: str | None = None
    error: str | None = None
    reused_from: str | None = None  # only for a node whose output an earlier run made


class Run(Answer):
    """A run on the Runs API; `node_runs` when one run is read."""

    id: str
    pipeline_id: str
    status: str
    started_at: str | None = None
    finished_at: str | None = None
    params: dict[str, Json]
    full_refresh: bool
    trigger: str | None = None
    resumed_from: str | None = None
    error: str | None = None
    progress: Progress
    rows_loaded: int | None = None
    updated_at: str | None = None
    node_runs: list[NodeRun] | None = None


class Triggered(Answer):
    """A trigger's answer (202; 200 when an Idempotency-Key replays the first one)."""

    id: str
    pipeline_id: str
    status: str


class Resumed(Triggered):
    resumed_from: str


class Cancelled(Answer):
    status: str


class DryRunNode(Answer):
    node_id: str
    name: str
    status: str
    error: str | None = None
    columns: list[str]
    rows: list[dict[str, Json]]
    row_count: int | None = None


class DefinitionRun(Answer):
    """A run of a pipeline definition (seed 001); seed 003's trigger adds `pipeline_id`, one run
    read adds `node_runs`, a dry run has `dry_run` and `nodes` instead of a run."""

    id: str | None = None
    pipeline: str
    pipeline_id: str | None = None
    status: str
    dry_run: bool | None = None
    started_at: str | None = None
    finished_at: str | None = None
    duration_ms: int | None = None
    rows_loaded: int | None = None
    full_refresh: bool | None = None
    error: str | None = None
    progress: Progress
    node_runs: list[NodeRun] | None = None
    nodes: dict[str, DryRunNode] | None = None


class DefinitionRunData(Answer):
    data: DefinitionRun


class DefinitionRuns(Answer):
    data: list[DefinitionRun]
    page: int
    per_page: int


class LogLine(Answer):
    run_id: str
    node_id: str
    timestamp: str | None = None
    level: str | None = None
    message: str | None = None


class NodePreview(Answer):
    """The first rows of a node's output, with its columns (as the node engine stored them)."""

    columns: list[Json] | None = None
    rows: list[Json] | None = None


class NodeProfile(Answer):
    """Per-column statistics of a node's output (as the node engine stored them)."""

    row_count: Number | None = None
    approximate: bool | None = None
    columns: list[Json] | None = None


# -- seed 000: flow runs -----------------------------------------------------------------------------
class FlowTarget(Answer):
    type: str
    name: str | None = None


class FlowRun(Answer):
    run_id: str
    pipeline_id: str
    pipeline: str | None = None
    status: str  # `queued` for pending
    recipe_type: str
    target: FlowTarget
    scope: str | None = None
    trigger: str | None = None
    parent_id: str | None = None
    created_at: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    updated_at: str | None = None
    rows_loaded: int | None = None
    error: str | None = None
    exit_status: int | None = None


class FlowTriggered(Answer):
    run_id: str
    status: str
    pipelines: list[list[str]]  # the flow's pipelines by name, level by level


class CompiledSql(Answer):
    run_id: str
    node_id: str
    sql: str


class DatasetReader(Answer):
    pipeline_id: str
    name: str


class DownstreamLineage(Answer):
    dataset: str
    read_by: list[DatasetReader]


class RunParameters(Answer):
    params: dict[str, Json]
    variables: dict[str, Json]
    full_refresh: bool
    scope: str | None = None
    target: FlowTarget | None = None
    node: str | None = None


class FlowRunDetails(FlowRun):
    parameters: RunParameters
    compiled_sql: list[CompiledSql]
    stdout: str
    downstream_lineage: list[DownstreamLineage]
    children: list[FlowRun]


class Backfill(Answer):
    """A backfill (seed 002): the parent run, its children (one per date) and the dates; a dry
    run answers the dates only (`runs` empty) and which dates already have a successful run."""

    runs: list[str]
    count: int
    id: str | None = None
    parent_id: str | None = None
    pipeline_id: int
    start_date: str
    end_date: str
    reprocess: str
    dry_run: bool
    dates: list[str]
    succeeded: list[str]
