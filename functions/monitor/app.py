"""Monitor area: anomaly rules and unflagging, queued timeliness/freshness checks, freshness report,
log cleanup and the run-queue monitor (Watcher's monitoring routes, SPEC 7)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Response

from sluice import timeutil
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
from sluice.domain.monitoring import (
    CleanupRequest,
    TimelinessRequest,
    clean_up_logs,
    freshness_report,
    monitor_queue,
    request_check,
)
from sluice.edge.app import admin, create_app, editor, json_body, lambda_handler, viewer
from sluice.events import EventBridgePublisher, SqsCheckQueue, SqsQueueDepth
from sluice.notify import configured_notifier
from sluice.store.alerts import AlertRepository
from sluice.store.anomalies import AnomalyResultRepository, RuleRepository
from sluice.store.checks import CheckRepository
from sluice.store.executions import RunRepository, WatchedPipelines
from sluice.store.table import Table

router = APIRouter()


# -- anomaly detection rules -------------------------------------------------------------------------
@router.post("/anomaly_detection_rule", status_code=201)
def post_anomaly_detection_rule(
    response: Response,
    caller: Principal = Depends(editor),
    body: RuleRequest = Depends(json_body(RuleRequest)),
) -> dict:
    table = Table()
    rule_id, created = upsert_rule(
        caller.project, body, RuleRepository(table), WatchedPipelines(table), timeutil.now()
    )
    response.status_code = 201 if created else 200
    return {"id": rule_id}


@router.get("/anomaly_detection_rule")
def list_anomaly_detection_rules(caller: Principal = Depends(viewer)) -> list[dict]:
    return [rule.view() for rule in RuleRepository(Table()).list(caller.project)]


@router.get("/anomaly_detection_rule/{anomaly_detection_rule_id}")
def get_anomaly_detection_rule(anomaly_detection_rule_id: int, caller: Principal = Depends(viewer)) -> dict:
    return get_rule(caller.project, anomaly_detection_rule_id, RuleRepository(Table())).view()


@router.patch("/anomaly_detection_rule")
def patch_anomaly_detection_rule(
    caller: Principal = Depends(editor), body: RulePatch = Depends(json_body(RulePatch))
) -> dict:
    table = Table()
    return patch_rule(
        caller.project, body, RuleRepository(table), WatchedPipelines(table), timeutil.now()
    ).view()


@router.post("/unflag_anomaly", status_code=204)
def post_unflag_anomaly(
    caller: Principal = Depends(editor), body: UnflagRequest = Depends(json_body(UnflagRequest))
) -> Response:
    table = Table()
    unflag_anomalies(caller.project, body, RunRepository(table), AnomalyResultRepository(table))
    return Response(status_code=204)


# -- checks ---------------------------------------------------------------------------------------------
@router.post("/timeliness")
def post_timeliness(
    caller: Principal = Depends(editor),
    body: TimelinessRequest = Depends(json_body(TimelinessRequest, empty_is_object=True)),
) -> dict:
    return request_check(caller.project, "timeliness", SqsCheckQueue(), body.lookback_minutes)


@router.post("/freshness")
def post_freshness(caller: Principal = Depends(editor)) -> dict:
    return request_check(caller.project, "freshness", SqsCheckQueue())


@router.get("/api/pipeline/freshness")
def get_pipeline_freshness(caller: Principal = Depends(viewer)) -> list[dict]:
    return freshness_report(caller.project, timeutil.now(), WatchedPipelines(Table()))


# -- maintenance -----------------------------------------------------------------------------------------
@router.post("/log_cleanup")
def post_log_cleanup(
    caller: Principal = Depends(admin), body: CleanupRequest = Depends(json_body(CleanupRequest))
) -> dict:
    table = Table()
    return clean_up_logs(caller.project, body, timeutil.now(), RunRepository(table), CheckRepository(table))


@router.post("/celery/monitor-queue")
def post_monitor_queue(caller: Principal = Depends(editor)) -> dict:
    alerting = Alerting(AlertRepository(Table()), EventBridgePublisher(), configured_notifier())
    return monitor_queue([caller.project], SqsQueueDepth(), alerting, timeutil.now())


app = create_app("monitor", [router])
handler = lambda_handler(app, "monitor")
