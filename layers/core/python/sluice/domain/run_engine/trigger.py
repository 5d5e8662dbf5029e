"""Triggering a run: checked, written `pending` in one transaction (with its Idempotency-Key claim),
then sent to the run queue; and resuming a failed run as a new one that reuses what still holds.

Idempotency is claimed in the run's own transaction, with a fingerprint of the request, rather
than through Powertools' idempotency: a replay must return the first response even when the first
call's Lambda died after writing, and must never write a second run (docs/architecture.md).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from sluice import timeutil
from sluice.domain import ids
from sluice.domain.executions import Run
from sluice.domain.graph import Graph
from sluice.domain.run_engine.core import EngineCore, adjacency, logger
from sluice.domain.run_engine.errors import TriggerReplayed
from sluice.domain.run_engine.record import RunRecord, run_ref
from sluice.domain.runs import select_scope
from sluice.domain.status import DEFAULT_PIPELINE_STATUS, PipelineStatus, RunStatus
from sluice.errors import Conflict, InvalidRequest, NotFound, Unavailable

Render = Callable[[RunRecord], dict[str, Any]]


class TriggerSurface(Enum):
    """Where a trigger came from; part of its idempotency fingerprint, so one key used on two
    surfaces is two requests. The values are what stored claims were fingerprinted with."""

    runs_api = "002"  # POST /api/pipelines/{id}/run (seed 002)
    definition_runs = "001"  # POST /api/v1/pipelines/{name}/runs (seed 001)
    definition_run = "003"  # POST /api/v1/pipelines/{name}/run (seed 003)
    schedule = "schedule"  # a pipeline's EventBridge Scheduler schedule firing


@dataclass(frozen=True)
class RunRequest:
    params: dict[str, Any] = field(default_factory=dict)
    variables: dict[str, Any] = field(default_factory=dict)
    full_refresh: bool = False
    scope: str = "full"
    target_node: str | None = None
    trigger: str = "api"
    resumed_from: int | None = None
    parent_id: int | None = None  # a flow run's child (seed 000): its parent run
    flow_level: int | None = None  # and the level of the flow it belongs to

    def fingerprint(self, surface: TriggerSurface, pipeline_id: int) -> str:
        body = {
            "surface": surface.value,
            "pipeline": pipeline_id,
            "params": self.params,
            "variables": self.variables,
            "full_refresh": self.full_refresh,
            "scope": self.scope,
            "target": self.target_node,
        }
        return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


class Triggering(EngineCore):
    def trigger(
        self,
        project: str,
        record: dict[str, Any],
        request: RunRequest,
        render: Render,
        idempotency_key: str | None = None,
        surface: TriggerSurface = TriggerSurface.runs_api,
    ) -> tuple[dict[str, Any], bool]:
        """Write the run pending and queue it; (rendered response, created). With an
        Idempotency-Key already used for the same request, the first response and False."""
        pipeline_id = int(record["id"])
        if idempotency_key is not None:
            fingerprint = request.fingerprint(surface, pipeline_id)
            replayed = self._replay(project, idempotency_key, fingerprint)
            if replayed is not None:
                return replayed, False
        if (record.get("status") or DEFAULT_PIPELINE_STATUS) == PipelineStatus.paused:
            raise Conflict(
                f"Pipeline {record['name']} is paused; set its status to active before running it."
            )
        graph = Graph.from_document(record.get("graph"))
        if graph.empty:
            raise InvalidRequest(f"Pipeline {record['name']} has no nodes to run.")
        select_scope(adjacency(graph), request.target_node, request.scope)
        now = self._clock()
        run_id = self.runs.next_run_id(project)
        run = Run(
            id=run_id,
            pipeline_id=pipeline_id,
            status=RunStatus.pending.value,
            start_date=now,
            parent_id=request.parent_id,
            ancestors=() if request.parent_id is None else (request.parent_id,),
            origin="sluice",
            created_at=now,
        )
        engine = {
            "revision": int(record.get("revision") or 0),
            "pipeline_name": record["name"],
            "params": request.params,
            "variables": dict(request.variables),
            "full_refresh": request.full_refresh,
            "scope": request.scope,
            "target_node": request.target_node,
            "trigger": request.trigger,
            "resumed_from": request.resumed_from,
            "flow_parent": request.parent_id,
            "flow_level": request.flow_level,
            "progress_stage": "queued",
            "rows_processed": 0,
            "queued_at": timeutil.iso(now),
        }
        response = render(RunRecord.from_stored({**stored_start(run), **engine}))
        claim = None
        if idempotency_key is not None:
            claim = {"key": idempotency_key, "request_hash": fingerprint, "response": response}
        try:
            self.runs.create(project, run, {k: v for k, v in engine.items() if v is not None}, claim)
        except TriggerReplayed as replay:
            return self._check_replay(replay.claim, fingerprint, idempotency_key or ""), False
        self._tell_status(project, run_id, pipeline_id, RunStatus.pending)
        try:
            if self.queue is None:
                raise Unavailable("no run queue is configured")
            self.queue.send(project, run_id)
        except Exception as exc:  # noqa: BLE001 - any queue failure leaves the run unqueued
            logger.exception("run not queued", extra={"project": project, "run_id": run_id})
            self.finish(
                project, run_id, RunStatus.failed, error="The run could not be queued; trigger it again."
            )
            raise Unavailable("The run could not be queued; trigger it again in a moment.") from exc
        return response, True

    def resume(self, project: str, ref: str | int, render: Render) -> dict:
        """A failed run again, as a new run that reuses the outputs of the nodes that still hold."""
        failed = self.run_item(project, ref)
        if failed.status != RunStatus.failed:
            raise Conflict(
                f"Run {run_ref(failed.id)} is {failed.status.value}; only failed runs can be resumed."
            )
        record = self.definitions.get(project, failed.pipeline_id)
        if record is None:
            raise NotFound(f"The pipeline of run {run_ref(failed.id)} no longer exists.")
        request = RunRequest(
            params=failed.params,
            variables=failed.variables,
            full_refresh=failed.full_refresh,
            scope=failed.scope or "full",
            target_node=failed.target_node,
            trigger="resume",
            resumed_from=failed.id,
        )
        response, _ = self.trigger(project, record, request, render)
        noting = getattr(self.runs, "note_resumed", None)
        if noting is not None and response.get("id"):
            # The purge keeps the outputs of a run a later one was resumed from.
            noting(project, failed.id, ids.parse("run", response["id"]))
        return response

    def _replay(self, project: str, key: str, fingerprint: str) -> dict[str, Any] | None:
        claim = self.runs.trigger_claim(project, key)
        return None if claim is None else self._check_replay(claim, fingerprint, key)

    @staticmethod
    def _check_replay(claim: dict[str, Any], fingerprint: str, key: str) -> dict[str, Any]:
        if claim.get("request_hash") != fingerprint:
            raise Conflict(
                f"Idempotency-Key '{key}' was already used for a different run request; use a new key."
            )
        return claim["response"]


def stored_start(run: Run) -> dict[str, Any]:
    """The attributes of a run as its trigger writes them, before it has an end."""
    return {
        "id": run.id,
        "pipeline_id": run.pipeline_id,
        "status": run.status,
        "origin": run.origin,
        "parent_id": run.parent_id,
        "start_date": timeutil.iso(run.start_date),
        "created_at": timeutil.iso(run.created_at),
        "end_date": None,
        "total_rows": None,
    }
