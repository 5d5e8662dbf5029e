"""Monitor area: anomaly rules and unflagging, queued timeliness/freshness checks, freshness report,
log cleanup and the run-queue monitor (Watcher's monitoring routes, SPEC 7)."""

from __future__ import annotations

import sys
from pathlib import Path

from fastapi import Depends, Response

from sluice import composition, timeutil
from sluice.auth.principal import Principal
from sluice.domain.alerts import Alerting
from sluice.domain.anomalies import (
    RulePatch,
    RuleRequest,
    UnflagRequest,
    get_rule,
    patch_rule,
    unflag_anomalies,
    upsert_rule,
)
from sluice.domain.log_cleanup import CleanupRequest, clean_up_logs
from sluice.domain.monitoring import (
    CheckQueue,
    QueueReader,
    TimelinessRequest,
    freshness_report,
    monitor_queue,
    request_check,
)
from sluice.domain.quality import dataset_freshness
from sluice.edge.app import admin, area_router, create_app, editor, json_body, lambda_handler, viewer
from sluice.edge.responses.monitoring import (
    AnomalyRule,
    CheckQueued,
    Freshness,
    LogCleanup,
    QueueMonitor,
    RuleSaved,
)
from sluice.store.anomalies import AnomalyResultRepository, RuleRepository
from sluice.store.checks import CheckRepository
from sluice.store.executions import RunRepository, WatchedPipelines
from sluice.store.quality import DatasetStateRepository, QualityRuleRepository

# The local stack and the tests load this file by its path; Lambda puts its directory on sys.path.
_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.append(_HERE)

import monitor_alerts  # noqa: E402

router = area_router()
Rules = Depends(composition.rule_repository)
Pipelines = Depends(composition.watched_pipelines)
Runs = Depends(composition.run_repository)
Checks = Depends(composition.check_repository)
QueuedChecks = Depends(composition.check_queue)


# -- anomaly detection rules -------------------------------------------------------------------------
@router.post("/anomaly_detection_rule", status_code=201, response_model=RuleSaved)
def post_anomaly_detection_rule(
    response: Response,
    caller: Principal = Depends(editor),
    body: RuleRequest = Depends(json_body(RuleRequest)),
    rules: RuleRepository = Rules,
    pipelines: WatchedPipelines = Pipelines,
) -> dict:
    rule_id, created = upsert_rule(caller.project, body, rules, pipelines, timeutil.now())
    response.status_code = 201 if created else 200
    return {"id": rule_id}


@router.get("/anomaly_detection_rule", response_model=list[AnomalyRule])
def list_anomaly_detection_rules(
    caller: Principal = Depends(viewer), rules: RuleRepository = Rules
) -> list[dict]:
    return [rule.view() for rule in rules.list(caller.project)]


@router.get("/anomaly_detection_rule/{anomaly_detection_rule_id}", response_model=AnomalyRule)
def get_anomaly_detection_rule(
    anomaly_detection_rule_id: int, caller: Principal = Depends(viewer), rules: RuleRepository = Rules
) -> dict:
    return get_rule(caller.project, anomaly_detection_rule_id, rules).view()


@router.patch("/anomaly_detection_rule", response_model=AnomalyRule)
def patch_anomaly_detection_rule(
    caller: Principal = Depends(editor),
    body: RulePatch = Depends(json_body(RulePatch)),
    rules: RuleRepository = Rules,
    pipelines: WatchedPipelines = Pipelines,
) -> dict:
    return patch_rule(caller.project, body, rules, pipelines, timeutil.now()).view()


@router.post("/unflag_anomaly", status_code=204)
def post_unflag_anomaly(
    caller: Principal = Depends(editor),
    body: UnflagRequest = Depends(json_body(UnflagRequest)),
    runs: RunRepository = Runs,
    results: AnomalyResultRepository = Depends(composition.anomaly_results),
) -> Response:
    unflag_anomalies(caller.project, body, runs, results)
    return Response(status_code=204)


# -- checks ---------------------------------------------------------------------------------------------
@router.post("/timeliness", response_model=CheckQueued)
def post_timeliness(
    caller: Principal = Depends(editor),
    body: TimelinessRequest = Depends(json_body(TimelinessRequest, empty_is_object=True)),
    queue: CheckQueue = QueuedChecks,
) -> dict:
    return request_check(caller.project, "timeliness", queue, body.lookback_minutes)


@router.post("/freshness", response_model=CheckQueued)
def post_freshness(caller: Principal = Depends(editor), queue: CheckQueue = QueuedChecks) -> dict:
    return request_check(caller.project, "freshness", queue)


@router.get("/api/pipeline/freshness", response_model=list[Freshness])
def get_pipeline_freshness(
    caller: Principal = Depends(viewer),
    pipelines: WatchedPipelines = Pipelines,
    datasets: DatasetStateRepository = Depends(composition.dataset_states),
    quality: QualityRuleRepository = Depends(composition.quality_rules),
) -> list[dict]:
    now = timeutil.now()
    rules = [r for r in quality.list(caller.project) if r.assertion_type == "freshness_hours"]
    written = dataset_freshness(datasets.all(caller.project), rules, now)
    listed = {entry["dataset_name"] for entry in written}
    targets = datasets.targets_by_pipeline(caller.project)
    watched = []
    for entry in freshness_report(caller.project, now, pipelines):
        # A Watcher pipeline is named by its target addresses; one whose targets are all listed
        # already (a Sluice pipeline's datasets) is not repeated.
        names = targets.get(entry["pipeline_id"]) or [entry["pipeline_name"]]
        watched += [{**entry, "dataset_name": name} for name in names if name not in listed]
    return written + watched


# -- maintenance -----------------------------------------------------------------------------------------
@router.post("/log_cleanup", response_model=LogCleanup)
def post_log_cleanup(
    caller: Principal = Depends(admin),
    body: CleanupRequest = Depends(json_body(CleanupRequest)),
    runs: RunRepository = Runs,
    checks: CheckRepository = Checks,
) -> dict:
    return clean_up_logs(caller.project, body, timeutil.now(), runs, checks)


@router.post("/celery/monitor-queue", response_model=QueueMonitor)
def post_monitor_queue(
    caller: Principal = Depends(editor),
    depth: QueueReader = Depends(composition.run_queue_depth),
    alerting: Alerting = Depends(composition.alerting),
) -> dict:
    return monitor_queue([caller.project], depth, alerting, timeutil.now())


app = create_app("monitor", [router, monitor_alerts.router])
handler = lambda_handler(app, "monitor")
