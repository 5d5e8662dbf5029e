"""Monitor jobs outside HTTP: anomaly detection on "execution ended", queued checks from the check
queue, and the scheduled timeliness, freshness, queue-monitor and log-cleanup jobs."""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools import Logger
from pydantic import ValidationError

from sluice import composition, timeutil
from sluice.domain.anomalies import detect_anomalies
from sluice.domain.log_cleanup import cleanup_batch
from sluice.domain.monitoring import (
    DEFAULT_LOOKBACK_MINUTES,
    CheckMessage,
    check_freshness,
    check_timeliness,
    monitor_queue,
)

logger = Logger(service="monitor")


def _settings_of(event: Any) -> dict[str, Any]:
    """Overrides of a scheduled job: an EventBridge event's `detail`, or the input itself (a
    schedule target's constant Input, or a Step Functions state)."""
    if not isinstance(event, dict):
        return {}
    if "detail-type" in event:
        detail = event.get("detail")
        return detail if isinstance(detail, dict) else {}
    return event


# -- event-driven ---------------------------------------------------------------------------------------
@logger.inject_lambda_context
def on_execution_ended(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """EventBridge target of `execution.ended`: judge the run against its pipeline's rules."""
    detail = event.get("detail") or {}
    try:
        project, execution_id = str(detail["project"]), int(detail["execution_id"])
    except (KeyError, TypeError, ValueError):
        logger.error("execution.ended event without project and execution_id", extra={"detail": detail})
        return {"anomalies": []}
    found = detect_anomalies(
        project,
        execution_id,
        composition.run_repository(),
        composition.rule_repository(),
        composition.anomaly_results(),
        composition.alerting(),
        timeutil.now(),
    )
    if found:
        logger.info(
            "anomalies found",
            extra={"execution_id": execution_id, "metrics": [r.metric_field for r in found]},
        )
    checked = _external_quality(project, execution_id, detail.get("pipeline_id"))
    return {"anomalies": [result.view() for result in found], "quality_checks": checked}


def _external_quality(project: str, execution_id: int, pipeline_id: Any) -> int:
    """Data-quality rules on the addresses a Watcher pipeline writes (Sluice's own datasets are
    checked as their runs write them); a failure is logged, never a reason to redeliver."""
    try:
        number = int(pipeline_id)
        datasets = composition.dataset_states()
        targets = datasets.targets_of_pipeline(project, number)
        own = datasets.written_by_sluice(project, [t for t in targets if not t.startswith("s3://")])
        targets = [t for t in targets if t not in own]
        if not targets:
            return 0
        return len(composition.data_quality().after_external_end(project, execution_id, number, targets))
    except Exception:
        logger.exception("external data-quality check failed", extra={"execution_id": execution_id})
        return 0


@logger.inject_lambda_context
def on_check_requested(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """SQS consumer of the check queue; failed messages are reported for redelivery, malformed
    ones are logged and dropped (they would never succeed)."""
    failures = []
    for record in event.get("Records") or []:
        try:
            message = CheckMessage.model_validate(json.loads(record.get("body") or ""))
        except (ValueError, ValidationError) as exc:
            logger.error(
                "malformed check request dropped", extra={"body": record.get("body"), "reason": str(exc)}
            )
            continue
        try:
            _run_check(message)
        except Exception:
            logger.exception("check failed", extra={"check": message.check, "project": message.project})
            failures.append({"itemIdentifier": record.get("messageId")})
    return {"batchItemFailures": failures}


def _run_check(message: CheckMessage) -> int:
    now = timeutil.now()
    pipelines, checks, alerting = (
        composition.watched_pipelines(),
        composition.check_repository(),
        composition.alerting(),
    )
    if message.check == "timeliness":
        found = check_timeliness(
            message.project,
            message.lookback_minutes,
            now,
            composition.run_repository(),
            pipelines,
            checks,
            alerting,
        )
    else:
        found = check_freshness(message.project, now, pipelines, checks, alerting)
        found += _dataset_freshness(message.project)
    return len(found)


def _dataset_freshness(project: str) -> list[Any]:
    """The freshness_hours data-quality rules, on the age of each dataset's last write."""
    last_writes = {
        state["dataset_name"]: timeutil.from_stored(state["last_refresh_at"])
        for state in composition.dataset_states().all(project)
    }
    outcomes = composition.data_quality().check_freshness(project, last_writes)
    return [o for o in outcomes if o.status == "violated"]


# -- schedules ----------------------------------------------------------------------------------------------
@logger.inject_lambda_context
def scheduled_timeliness(event: dict[str, Any], context: Any) -> dict[str, Any]:
    lookback = int(_settings_of(event).get("lookback_minutes", DEFAULT_LOOKBACK_MINUTES))
    return _for_every_project(
        lambda project: _run_check(
            CheckMessage(check="timeliness", project=project, lookback_minutes=lookback)
        )
    )


@logger.inject_lambda_context
def scheduled_freshness(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return _for_every_project(lambda project: _run_check(CheckMessage(check="freshness", project=project)))


@logger.inject_lambda_context
def scheduled_queue_monitor(event: dict[str, Any], context: Any) -> dict[str, Any]:
    projects = composition.project_registry().all()
    return monitor_queue(projects, composition.run_queue_depth(), composition.alerting(), timeutil.now())


@logger.inject_lambda_context
def scheduled_log_cleanup(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """One step of the cleanup loop: {retention_days, batch_size, cursor?, totals?} in, the same
    with the new cursor and totals and `done` out."""
    return cleanup_batch(
        _settings_of(event),
        timeutil.now(),
        composition.project_registry(),
        composition.run_repository(),
        composition.check_repository(),
    )


def _for_every_project(check: Any) -> dict[str, Any]:
    """Run a check in each registered project; one project's failure does not stop the others,
    but fails the invocation at the end so the scheduler retries (checks are idempotent)."""
    projects = composition.project_registry().all()
    found, failed = 0, []
    for project in projects:
        try:
            found += check(project)
        except Exception:
            logger.exception("scheduled check failed", extra={"project": project})
            failed.append(project)
    summary = {"projects": len(projects), "recorded": found, "failed_projects": failed}
    if failed:
        raise RuntimeError(f"check failed in {len(failed)} of {len(projects)} projects: {', '.join(failed)}")
    return summary
