"""dbt status (seed 000 `GET /api/pipeline/dbt/status`, SPEC 8): the project's most recent finished
run of SQL models, either a Sluice run (its SQL transform nodes are the models) or a dbt
`run_results.json` uploaded by a team that runs dbt elsewhere (`POST /api/pipeline/dbt/run-results`).

An upload becomes an external run of a Watcher pipeline (named `dbt` unless the caller names
another): started and ended like any execution, its total rows the models' rows; each model's
`relation_name` is a dataset (freshness, row audit) and, with a `manifest.json`, the models'
`depends_on` become dataset lineage.
"""

from __future__ import annotations

import datetime as _dt
import re
from typing import Any, Protocol

import pendulum
from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, field_validator, model_validator

from sluice import timeutil
from sluice.domain import ids
from sluice.errors import NotFound

SCHEMA = re.compile(r"^https://schemas\.getdbt\.com/dbt/run-results/v(\d+)\.json$")
MANIFEST_SCHEMA = re.compile(r"^https://schemas\.getdbt\.com/dbt/manifest/v(\d+)\.json$")
SUPPORTED_VERSIONS = (4, 5, 6)
RESULT_STATUSES = ("success", "error", "skipped", "pass", "fail", "warn", "runtime error")
MAX_RESULTS = 5000


# -- the documents (dbt's published schemas, the fields Sluice reads) -----------------------------
class RunResultsMetadata(BaseModel):
    model_config = ConfigDict(extra="allow")

    dbt_schema_version: str
    dbt_version: str | None = None
    generated_at: str
    invocation_id: str | None = None

    @field_validator("dbt_schema_version")
    @classmethod
    def _supported(cls, value: str) -> str:
        found = SCHEMA.match(value)
        if not found:
            raise ValueError(
                "is not a dbt run-results schema URL (https://schemas.getdbt.com/dbt/run-results/vN.json)"
            )
        if int(found.group(1)) not in SUPPORTED_VERSIONS:
            raise ValueError(f"run-results v{found.group(1)} is not supported (v4, v5 and v6 are)")
        return value

    @field_validator("generated_at")
    @classmethod
    def _instant(cls, value: str) -> str:
        try:
            pendulum.parse(value)
        except (ValueError, TypeError) as exc:
            raise ValueError("is not an ISO 8601 instant") from exc
        return value


class Timing(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: str
    started_at: str | None = None
    completed_at: str | None = None


class RunResult(BaseModel):
    model_config = ConfigDict(extra="allow")

    unique_id: str = Field(min_length=1)
    status: str
    execution_time: StrictFloat | StrictInt = Field(ge=0)
    thread_id: str | None = None
    timing: list[Timing] = Field(default_factory=list)
    adapter_response: dict[str, Any] = Field(default_factory=dict)
    message: str | None = None
    failures: int | None = None
    relation_name: str | None = None  # v5 and later

    @field_validator("status")
    @classmethod
    def _status(cls, value: str) -> str:
        if value.lower() not in RESULT_STATUSES:
            raise ValueError(f"must be one of {', '.join(RESULT_STATUSES)}")
        return value.lower()


class RunResults(BaseModel):
    model_config = ConfigDict(extra="allow")

    metadata: RunResultsMetadata
    results: list[RunResult] = Field(max_length=MAX_RESULTS)
    elapsed_time: StrictFloat | StrictInt = Field(ge=0)
    args: dict[str, Any] = Field(default_factory=dict)


class ManifestNode(BaseModel):
    model_config = ConfigDict(extra="allow")

    resource_type: str | None = None
    name: str | None = None
    relation_name: str | None = None
    depends_on: dict[str, Any] = Field(default_factory=dict)


class Manifest(BaseModel):
    model_config = ConfigDict(extra="allow")

    metadata: dict[str, Any]
    nodes: dict[str, ManifestNode] = Field(default_factory=dict)
    sources: dict[str, ManifestNode] = Field(default_factory=dict)

    @field_validator("metadata")
    @classmethod
    def _manifest(cls, value: dict[str, Any]) -> dict[str, Any]:
        if not MANIFEST_SCHEMA.match(str(value.get("dbt_schema_version", ""))):
            raise ValueError("dbt_schema_version is not a dbt manifest schema URL")
        return value


class RunResultsUpload(BaseModel):
    """`{run_results, manifest?, pipeline_name?}`; a bare run_results.json is accepted too."""

    model_config = ConfigDict(extra="ignore")

    run_results: RunResults
    manifest: Manifest | None = None
    pipeline_name: str = Field(default="dbt", min_length=1, max_length=200)

    @model_validator(mode="before")
    @classmethod
    def _bare(cls, body: Any) -> Any:
        if isinstance(body, dict) and "run_results" not in body and "results" in body:
            return {"run_results": body}
        return body


# -- what is kept ----------------------------------------------------------------------------------
def relation(name: str | None) -> str | None:
    """`"analytics"."marts"."fct"` -> `analytics.marts.fct`: the dataset (address) a relation is."""
    if not name:
        return None
    plain = name.replace('"', "").replace("`", "").strip()
    return plain or None


def model_name(unique_id: str) -> str:
    return unique_id.split(".")[-1]


def _started(result: RunResult) -> _dt.datetime | None:
    stamps = [t.started_at for t in result.timing if t.started_at]
    return min(timeutil.parse_instant(s) for s in stamps) if stamps else None


def _completed(result: RunResult) -> _dt.datetime | None:
    stamps = [t.completed_at for t in result.timing if t.completed_at]
    return max(timeutil.parse_instant(s) for s in stamps) if stamps else None


def upload_status(upload: RunResultsUpload, run_id: int) -> dict[str, Any]:
    results = upload.run_results
    finished = timeutil.parse_instant(results.metadata.generated_at)
    starts = [s for s in (_started(r) for r in results.results) if s is not None]
    started = min(starts) if starts else finished.subtract(microseconds=int(results.elapsed_time * 1e6))
    failed = any(r.status in ("error", "fail", "runtime error") for r in results.results)
    models = [
        {
            "name": model_name(r.unique_id),
            "unique_id": r.unique_id,
            "status": r.status,
            "duration_seconds": round(float(r.execution_time), 3),
            "rows": _rows(r),
            "error": r.message if r.status in ("error", "fail", "runtime error") else None,
            "relation_name": relation(r.relation_name),
        }
        for r in results.results
    ]
    return {
        "run_id": ids.render("run", run_id),
        "source": "dbt",
        "invocation_id": results.metadata.invocation_id,
        "status": "failed" if failed else "success",
        "started_at": timeutil.iso(started),
        "finished_at": timeutil.iso(finished),
        "duration_seconds": round(float(results.elapsed_time), 3),
        "models": models,
    }


def _rows(result: RunResult) -> int | None:
    rows = result.adapter_response.get("rows_affected")
    return int(rows) if isinstance(rows, int | float) and not isinstance(rows, bool) and rows >= 0 else None


NODE_STATUS = {"success": "success", "pass": "success", "warn": "success", "skipped": "skipped"}


def model_node_runs(results: RunResults, numbers: list[int]) -> list[dict[str, Any]]:
    entries = []
    for position, (result, number) in enumerate(zip(results.results, numbers, strict=True)):
        started, completed = _started(result), _completed(result)
        name = relation(result.relation_name)
        entry: dict[str, Any] = {
            "id": number,
            "node_id": model_name(result.unique_id),
            "node_type": "transform",
            "position": position,
            "status": NODE_STATUS.get(result.status, "failed"),
            "duration_ms": int(round(float(result.execution_time) * 1000)),
            "started_at": timeutil.iso(started),
            "finished_at": timeutil.iso(completed),
            "row_count": _rows(result),
            "error": result.message if NODE_STATUS.get(result.status) is None else None,
            "compiled_sql": (result.model_extra or {}).get("compiled_code"),
        }
        if name and entry["status"] == "success":
            entry["written"] = {"kind": "dataset", "dataset": name, "rows_written": _rows(result) or 0,
                                "inserts": _rows(result) or 0, "updates": 0, "persisted": True}  # fmt: skip
        entries.append({k: v for k, v in entry.items() if v is not None})
    return entries


def lineage_of(upload: RunResultsUpload) -> tuple[list[str], list[str]]:
    """(sources, targets): the relations the models wrote, and those they read per the manifest."""
    written = {relation(r.relation_name) for r in upload.run_results.results if r.status == "success"}
    targets = sorted(name for name in written if name)
    sources: set[str] = set()
    manifest = upload.manifest
    if manifest is not None:
        known = {**manifest.sources, **manifest.nodes}
        for result in upload.run_results.results:
            node = manifest.nodes.get(result.unique_id)
            for parent in (node.depends_on.get("nodes") or []) if node else []:
                found = relation(known[parent].relation_name) if parent in known else None
                if found:
                    sources.add(found)
    return sorted(sources - set(targets)), targets


class StatusStore(Protocol):
    def put_status(self, project: str, status: dict[str, Any]) -> None: ...
    def get_status(self, project: str) -> dict[str, Any] | None: ...


def dbt_status(project: str, store: StatusStore) -> dict[str, Any]:
    found = store.get_status(project)
    if found is None:
        raise NotFound("No run of SQL models has finished in this project yet.")
    return found


def sluice_run_status(
    run_id: int,
    status: str,
    started: _dt.datetime,
    finished: _dt.datetime,
    node_runs: list[Any],
) -> dict[str, Any] | None:
    """A finished Sluice run with SQL transform nodes, as dbt status (None: no SQL model ran)."""
    models = [
        {
            "name": n.node_id,
            "status": n.status.value if hasattr(n.status, "value") else str(n.status),
            "duration_seconds": round((n.duration_ms or 0) / 1000, 3),
            "rows": n.row_count,
            "error": getattr(n, "error", None),
        }
        for n in sorted(node_runs, key=lambda n: n.position)
        if n.node_type == "transform"
    ]
    if not models:
        return None
    return {
        "run_id": ids.render("run", run_id),
        "source": "sluice",
        "status": status,
        "started_at": timeutil.iso(started),
        "finished_at": timeutil.iso(finished),
        "duration_seconds": round((finished - started).total_seconds(), 3),
        "models": models,
    }


def record_upload(
    project: str,
    upload: RunResultsUpload,
    registry: Any,
    runs: Any,
    pipelines: Any,
    publisher: Any,
    lineage: Any,
    writes: Any,
    store: StatusStore,
    now: pendulum.DateTime,
    node_runs: Any = None,
) -> dict[str, Any]:
    """The upload as an external run: its pipeline (created on first use), one execution started
    and ended with the models' rows, each written relation a dataset, lineage from the manifest,
    and the dbt status. Everything is validated before the first write."""
    from sluice.domain.executions import EndExecution, StartExecution, end_execution, start_execution
    from sluice.domain.registry import PipelineUpsert

    results = upload.run_results
    finished = timeutil.parse_instant(results.metadata.generated_at)
    starts = [s for s in (_started(r) for r in results.results) if s is not None]
    started = min(starts) if starts else finished.subtract(microseconds=int(results.elapsed_time * 1e6))
    if finished <= started:
        finished = started.add(microseconds=1)
    rows = [r for r in (_rows(x) for x in results.results if x.status == "success") if r is not None]
    pipeline, _ = registry.upsert_pipeline(
        project, PipelineUpsert(name=upload.pipeline_name, pipeline_type_name="dbt", load_lineage=True)
    )
    pipeline_id = int(pipeline["id"])
    metadata = {"source": "dbt", "invocation_id": results.metadata.invocation_id}
    run_id = start_execution(
        project,
        StartExecution(
            pipeline_id=pipeline_id, start_date=timeutil.iso(started), execution_metadata=metadata
        ),
        runs,
        pipelines,
        now,
    )
    status = upload_status(upload, run_id)
    if node_runs is not None:  # each model a node run of the external run (GET /api/runs/{id})
        entries = model_node_runs(results, node_runs.allocate_node_run_ids(project, len(results.results)))
        plan = {"levels": [[e["node_id"] for e in entries]], "reused": [], "parallelism": 1, "source": "dbt"}
        node_runs.store_plan(project, run_id, plan, entries, None)
    end_execution(
        project,
        EndExecution(
            id=run_id,
            end_date=timeutil.iso(finished),
            completed_successfully=status["status"] == "success",
            total_rows=sum(rows) if rows else None,
            inserts=sum(rows) if rows else None,
            execution_metadata=metadata,
        ),
        runs,
        pipelines,
        publisher,
        now,
    )
    for result in results.results:
        name = relation(result.relation_name)
        if result.status == "success" and name:
            writes.record_write(
                project, name, _rows(result) or 0, run_id, pipeline_id, finished, source="dbt"
            )
    sources, targets = lineage_of(upload)
    if targets or sources:
        lineage.record(project, pipeline_id, sources, targets)
    store.put_status(project, status)
    return {**status, "pipeline_id": pipeline_id, "lineage": {"sources": sources, "targets": targets}}
