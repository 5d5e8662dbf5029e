"""The Run state machine's tasks (statemachines/run.asl.json): plan, next step, execute a node,
finish; and the reconciler that finishes runs whose execution died."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger

from sluice import composition
from sluice.domain.status import RunStatus

logger = Logger(service="runs")


@logger.inject_lambda_context
def plan_run(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return composition.run_engine().plan(str(event["project"]), int(event["run_id"]))


@logger.inject_lambda_context
def next_step(event: dict[str, Any], context: Any) -> dict[str, Any]:
    engine = composition.run_engine()
    return engine.next_step(str(event["project"]), int(event["run_id"]), int(event.get("level") or 0))


@logger.inject_lambda_context
def execute_node(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Raises NodeFailed (the Lambda's errorType) when the node fails, which fails the run."""
    engine = composition.run_engine()
    return engine.execute(str(event["project"]), int(event["run_id"]), str(event["node_id"]))


@logger.inject_lambda_context
def finish_run(event: dict[str, Any], context: Any) -> dict[str, Any]:
    result = composition.run_engine().finish(
        str(event["project"]),
        int(event["run_id"]),
        str(event.get("outcome") or RunStatus.failed),
        event.get("error"),
    )
    logger.info("run finished", extra=result)
    return result


@logger.inject_lambda_context
def reconcile_runs(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Scheduled: in every project, runs whose execution died end failed, pending runs whose
    message was lost are queued again and flow parents whose hand-over was lost move on."""
    engine = composition.run_engine()
    machine = composition.run_state_machine()
    backfills = composition.backfill_state_machine()
    totals = {"finished": 0, "requeued": 0, "flows": 0, "errors": 0}
    failed = []
    for project in composition.project_registry().all():
        try:
            done = engine.reconcile(project, machine.status, backfills.status)
        except Exception:
            logger.exception("reconciling runs failed", extra={"project": project})
            failed.append(project)
            continue
        for name in totals:
            totals[name] += getattr(done, name)
    logger.info("runs reconciled", extra={**totals, "failed_projects": failed})
    return {**totals, "failed_projects": failed}


# -- the Backfill state machine (statemachines/backfill.asl.json) ---------------------------------
@logger.inject_lambda_context
def backfill_release(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """A Map iteration's start: the child goes to the run queue (or is cancelled with its parent)."""
    engine = composition.run_engine()
    return engine.backfill_release(str(event["project"]), int(event["parent_id"]), int(event["run_id"]))


@logger.inject_lambda_context
def backfill_check(event: dict[str, Any], context: Any) -> dict[str, Any]:
    engine = composition.run_engine()
    return engine.backfill_child_done(str(event["project"]), int(event["parent_id"]), int(event["run_id"]))


@logger.inject_lambda_context
def backfill_finish(event: dict[str, Any], context: Any) -> dict[str, Any]:
    result = composition.run_engine().backfill_finish(str(event["project"]), int(event["parent_id"]))
    logger.info("backfill finished", extra=result)
    return result
