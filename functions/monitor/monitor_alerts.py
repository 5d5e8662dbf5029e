"""The alerts inbox and data-quality rules (seed 000 observability, SPEC 1 and 8): rules and their
tolerances, every kind of alert listed and counted, dismissed and resolved; the row audit."""

from __future__ import annotations

import datetime as _dt

from fastapi import Depends, Query

from sluice import composition, timeutil
from sluice.auth.principal import Principal
from sluice.domain import ids
from sluice.domain.api_health import ApiHealthSource, api_health
from sluice.domain.dbt import RunResultsUpload, dbt_status, record_upload
from sluice.domain.events import EventPublisher
from sluice.domain.inbox import inbox_view, list_alerts, move, move_many, type_counts
from sluice.domain.lineage import DatasetLineage
from sluice.domain.quality import (
    AlertIds,
    QualityRuleRequest,
    ToleranceRequest,
    create_rule,
    rule_of,
    set_tolerance,
)
from sluice.domain.registry import Registry
from sluice.edge.app import area_router, editor, json_body, viewer
from sluice.edge.responses.alerts import (
    ApiHealth,
    BulkUpdated,
    DbtStatus,
    DbtUpload,
    InboxAlert,
    InboxPage,
    QualityRule,
    QualityRuleDetail,
    RowAudit,
    Tolerance,
    TypeCount,
)
from sluice.store.alerts import AlertRepository
from sluice.store.executions import RunRepository, WatchedPipelines
from sluice.store.quality import DatasetStateRepository, DbtStatusRepository, QualityRuleRepository
from sluice.store.runs import RunEngineRepository

router = area_router("/api/pipeline")
Rules = Depends(composition.quality_rules)
Alerts = Depends(composition.alert_inbox)
Datasets = Depends(composition.dataset_states)


# -- rules ---------------------------------------------------------------------------------------
@router.post("/anomalies/rules", status_code=201, response_model=QualityRule)
def post_quality_rule(
    caller: Principal = Depends(editor),
    body: QualityRuleRequest = Depends(json_body(QualityRuleRequest)),
    rules: QualityRuleRepository = Rules,
) -> dict:
    return create_rule(caller.project, body, rules, timeutil.now()).view()


@router.get("/anomalies/rules", response_model=list[QualityRule])
def get_quality_rules(
    caller: Principal = Depends(viewer),
    dataset_name: str | None = Query(None, min_length=1, max_length=256),
    rules: QualityRuleRepository = Rules,
) -> list[dict]:
    return [rule.view() for rule in rules.list(caller.project, dataset_name)]


@router.get("/anomalies/rules/{rule_id}", response_model=QualityRuleDetail)
def get_quality_rule(
    rule_id: str, caller: Principal = Depends(viewer), rules: QualityRuleRepository = Rules
) -> dict:
    rule = rule_of(caller.project, rule_id, rules)
    return {**rule.view(), "checks": rules.checks(caller.project, rule.id)}


# -- tolerances ----------------------------------------------------------------------------------
@router.get("/anomalies/tolerances", response_model=list[Tolerance])
def get_tolerances(caller: Principal = Depends(viewer), rules: QualityRuleRepository = Rules) -> list[dict]:
    return [rule.tolerance_view() for rule in rules.list(caller.project)]


@router.put("/anomalies/tolerances/{check_id}", response_model=Tolerance)
@router.patch("/anomalies/tolerances/{check_id}", response_model=Tolerance)
def put_tolerance(
    check_id: str,
    caller: Principal = Depends(editor),
    body: ToleranceRequest = Depends(json_body(ToleranceRequest)),
    rules: QualityRuleRepository = Rules,
) -> dict:
    return set_tolerance(caller.project, check_id, body, rules, timeutil.now()).tolerance_view()


# -- the inbox -----------------------------------------------------------------------------------
@router.get("/anomalies", response_model=InboxPage)
def get_alerts(
    caller: Principal = Depends(viewer),
    type: str | None = Query(None, max_length=32),  # noqa: A002 - the documented filter's name
    severity: str | None = Query(None, max_length=16),
    dataset_name: str | None = Query(None, min_length=1, max_length=256),
    rule_id: str | None = Query(None, max_length=32),
    pipeline_id: str | None = Query(None, max_length=32),
    status: str | None = Query(None, max_length=16),
    limit: int = Query(50, ge=1, le=200),
    cursor: str | None = Query(None, max_length=2048),
    alerts: AlertRepository = Alerts,
) -> dict:
    return list_alerts(
        caller.project,
        alerts,
        status=status,
        alert_type=type,
        severity=severity,
        dataset_name=dataset_name,
        rule_id=rule_id,
        pipeline_id=pipeline_id,
        limit=limit,
        cursor=cursor,
    )


@router.get("/anomalies/types", response_model=list[TypeCount])
def get_alert_types(caller: Principal = Depends(viewer), alerts: AlertRepository = Alerts) -> list[dict]:
    return type_counts(caller.project, alerts)


@router.post("/anomalies/bulk-dismiss", response_model=BulkUpdated)
def post_bulk_dismiss(
    caller: Principal = Depends(editor),
    body: AlertIds = Depends(json_body(AlertIds)),
    alerts: AlertRepository = Alerts,
) -> dict:
    return move_many(caller.project, body.alert_ids, "dismissed", alerts, timeutil.now())


@router.post("/anomalies/bulk-resolve", response_model=BulkUpdated)
def post_bulk_resolve(
    caller: Principal = Depends(editor),
    body: AlertIds = Depends(json_body(AlertIds)),
    alerts: AlertRepository = Alerts,
) -> dict:
    return move_many(caller.project, body.alert_ids, "resolved", alerts, timeutil.now())


@router.post("/anomalies/{alert_id}/dismiss", response_model=InboxAlert)
def post_dismiss(
    alert_id: str, caller: Principal = Depends(editor), alerts: AlertRepository = Alerts
) -> dict:
    return inbox_view(move(caller.project, alert_id, "dismissed", alerts, timeutil.now()))


@router.post("/anomalies/{alert_id}/resolve", response_model=InboxAlert)
def post_resolve(
    alert_id: str, caller: Principal = Depends(editor), alerts: AlertRepository = Alerts
) -> dict:
    return inbox_view(move(caller.project, alert_id, "resolved", alerts, timeutil.now()))


# -- row audit -----------------------------------------------------------------------------------
@router.get("/row-audit", response_model=list[RowAudit])
def get_row_audit(
    caller: Principal = Depends(viewer),
    hours: int = Query(24, ge=1, le=720),
    datasets: DatasetStateRepository = Datasets,
) -> list[dict]:
    since = timeutil.now() - _dt.timedelta(hours=hours)
    return [
        {
            "dataset_name": w["dataset_name"],
            "refreshed_at": w["refreshed_at"],
            "row_count": int(w["row_count"]),
            "rows_written": int(w.get("rows_written") or 0),
            "row_count_delta": int(w["row_count_delta"]),
            "run_id": ids.render("run", int(w["run_id"])),
            "pipeline_id": ids.render("pipeline", int(w["pipeline_id"])) if w.get("pipeline_id") else None,
        }
        for w in datasets.writes_since(caller.project, since)
    ]


# -- dbt ---------------------------------------------------------------------------------------------
@router.get("/dbt/status", response_model=DbtStatus)
def get_dbt_status(
    caller: Principal = Depends(viewer), store: DbtStatusRepository = Depends(composition.dbt_statuses)
) -> dict:
    return dbt_status(caller.project, store)


@router.post("/dbt/run-results", status_code=201, response_model=DbtUpload)
def post_dbt_run_results(
    caller: Principal = Depends(editor),
    body: RunResultsUpload = Depends(json_body(RunResultsUpload)),
    registry: Registry = Depends(composition.watcher_registry),
    runs: RunRepository = Depends(composition.run_repository),
    pipelines: WatchedPipelines = Depends(composition.watched_pipelines),
    publisher: EventPublisher = Depends(composition.event_publisher),
    lineage: DatasetLineage = Depends(composition.dataset_lineage),
    datasets: DatasetStateRepository = Datasets,
    store: DbtStatusRepository = Depends(composition.dbt_statuses),
    node_runs: RunEngineRepository = Depends(composition.run_items),
) -> dict:
    return record_upload(
        caller.project,
        body,
        registry,
        runs,
        pipelines,
        publisher,
        lineage,
        datasets,
        store,
        timeutil.now(),
        node_runs=node_runs,
    )


# -- API health --------------------------------------------------------------------------------------
@router.get("/api-health", response_model=ApiHealth)
def get_api_health(
    caller: Principal = Depends(viewer), source: ApiHealthSource = Depends(composition.api_health_source)
) -> dict:
    return api_health(source, caller.project)
