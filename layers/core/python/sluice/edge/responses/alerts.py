"""The alerts inbox and data-quality rules (seed 000 observability, SPEC 1 and 8)."""

from __future__ import annotations

from sluice.edge.responses import Answer, Json, Number


class QualityCheck(Answer):
    status: str
    run_id: str | None = None
    checked_at: str | None = None
    rows: int | None = None
    violations: int | None = None
    observed_rate: Number | None = None
    observed_value: Number | None = None
    allowed_rate: Number | None = None
    reason: str


class QualityRule(Answer):
    id: str
    dataset_name: str
    assertion_type: str
    column: str | None = None
    threshold: Number
    severity: str
    tolerance: Number | None = None
    values: list[Json] | None = None
    min: Number | None = None
    max: Number | None = None
    hours: Number | None = None
    created_at: str | None = None
    updated_at: str | None = None
    last_check: QualityCheck | None = None


class QualityRuleDetail(QualityRule):
    checks: list[QualityCheck]


class Tolerance(Answer):
    check_id: str
    rule_id: str
    dataset_name: str
    assertion_type: str
    column: str | None = None
    threshold: Number
    tolerance: Number | None = None
    effective_threshold: Number
    updated_at: str | None = None


class InboxAlert(Answer):
    id: str
    type: str
    severity: str
    status: str
    message: str
    reason: str
    dataset_name: str | None = None
    rule_id: str | None = None
    pipeline_id: str | None = None
    run_id: str | None = None
    observed_rate: Number | None = None
    created_at: str | None = None
    updated_at: str | None = None
    closed_by: str | None = None
    details: dict[str, Json]


class InboxPage(Answer):
    data: list[InboxAlert]
    next_cursor: str | None = None


class TypeCount(Answer):
    type: str
    count: int


class BulkUpdated(Answer):
    updated: int
    not_updated: int


class RowAudit(Answer):
    dataset_name: str
    refreshed_at: str
    row_count: int
    rows_written: int | None = None
    row_count_delta: int
    run_id: str
    pipeline_id: str | None = None


class DbtModel(Answer):
    name: str
    unique_id: str | None = None
    status: str
    duration_seconds: Number | None = None
    rows: int | None = None
    error: str | None = None
    relation_name: str | None = None


class DbtStatus(Answer):
    run_id: str
    source: str
    invocation_id: str | None = None
    status: str
    started_at: str | None = None
    finished_at: str | None = None
    duration_seconds: Number | None = None
    models: list[DbtModel]


class DbtLineage(Answer):
    sources: list[str]
    targets: list[str]


class DbtUpload(DbtStatus):
    pipeline_id: int
    lineage: DbtLineage


class RouterHealth(Answer):
    router: str
    requests: int
    error_rate: Number
    client_error_rate: Number
    median_latency_ms: Number | None = None
    p95_latency_ms: Number | None = None


class ApiHealth(Answer):
    window_seconds: int
    routers: list[RouterHealth]
