"""Z-score anomaly detection on execution metrics: rules, the rule itself, detection and unflagging."""

from __future__ import annotations

import datetime as _dt
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Annotated, Any, Literal, Protocol

import pendulum
from pydantic import Field, field_validator

from sluice import timeutil
from sluice.domain.alerts import Alert, Alerting
from sluice.domain.executions import BaselineRun, PipelineDirectory, Run
from sluice.domain.registry import Id, WatcherRequest
from sluice.errors import NotFound

METRIC_FIELDS = ("total_rows", "duration_seconds", "inserts", "updates", "soft_deletes", "throughput")
MetricField = Literal["total_rows", "duration_seconds", "inserts", "updates", "soft_deletes", "throughput"]


# -- the rule as a pure function --------------------------------------------------------------------
@dataclass(frozen=True)
class Verdict:
    """How one value compares with its baseline: bounds are mean +- z*std, the lower floored at 0."""

    value: float
    mean: float
    std: float
    z_threshold: float
    lower_bound: float
    upper_bound: float
    baseline_count: int
    # Opt-in (issue 13): `median` centres on the median with the scaled MAD as spread; `min_delta`
    # is an absolute floor: a value closer than that to the centre is never an anomaly.
    method: str = "mean"
    min_delta: float = 0.0

    @property
    def z_score(self) -> float:
        return (self.value - self.mean) / self.std

    @property
    def is_anomaly(self) -> bool:
        outside = self.value > self.upper_bound or self.value < self.lower_bound
        return outside and abs(self.value - self.mean) >= self.min_delta

    def reason(self, metric: str, execution_id: int, lookback_days: int) -> str:
        """Why, in a sentence: the value, the bound it crossed and what the bound is made of."""
        above = self.value > self.upper_bound
        bound = self.upper_bound if above else self.lower_bound
        centre, spread = ("median", "MAD x 1.4826") if self.method == "median" else ("mean", "std")
        sign = "+" if above else "-"
        floor = f"; differences under {_number(self.min_delta)} are ignored" if self.min_delta else ""
        return (
            f"{metric} of execution {execution_id} is {_number(self.value)}, "
            f"{'above the upper' if above else 'below the lower'} bound {_number(bound)} "
            f"({centre} {_number(self.mean)} {sign} {_number(self.z_threshold)} x {spread} {_number(self.std)}; "
            f"z {self.z_score:.2f}) of {self.baseline_count} successful executions in the same hour "
            f"of the day over the last {lookback_days} days{floor}."
        )


MAD_SCALE = 1.4826  # makes the median absolute deviation estimate a normal distribution's std


def judge(
    value: float,
    baseline: Sequence[float | None],
    z_threshold: float,
    minimum_executions: int,
    method: str = "mean",
    min_delta: float = 0.0,
) -> Verdict | None:
    """The verdict on `value`, or None when the baseline cannot judge it: fewer than
    `minimum_executions` (and at least two) values, or no spread at all (sample std of 0; with
    `method="median"`, a MAD of 0). Watcher's rule is the default: mean and sample std."""
    values = [v for v in baseline if v is not None]
    if len(values) < max(minimum_executions, 2):
        return None
    if method == "median":
        mean = float(statistics.median(values))
        std = MAD_SCALE * float(statistics.median(abs(v - mean) for v in values))
    else:
        mean = float(statistics.mean(values))
        std = float(statistics.stdev(values))
    if std == 0 or not math.isfinite(std):
        return None
    return Verdict(
        value=float(value),
        mean=mean,
        std=std,
        z_threshold=z_threshold,
        lower_bound=max(0.0, mean - z_threshold * std),
        upper_bound=mean + z_threshold * std,
        baseline_count=len(values),
        method=method,
        min_delta=float(min_delta),
    )


# -- rules ---------------------------------------------------------------------------------------------
ZThreshold = Annotated[float, Field(ge=1.0, le=10.0)]
LookbackDays = Annotated[Id, Field(ge=1, le=365)]
MinimumExecutions = Annotated[Id, Field(ge=5, le=1000)]
Baseline = Literal["mean", "median"]
MinDelta = Annotated[float, Field(ge=0)]


class RuleRequest(WatcherRequest):
    pipeline_id: Id
    metric_field: MetricField
    z_threshold: ZThreshold = 3.0
    lookback_days: LookbackDays = 30
    minimum_executions: MinimumExecutions = 30
    active: bool = True
    baseline: Baseline = "mean"
    min_delta: MinDelta = 0.0


class RulePatch(WatcherRequest):
    id: Id
    pipeline_id: Id | None = None
    metric_field: MetricField | None = None
    z_threshold: ZThreshold | None = None
    lookback_days: LookbackDays | None = None
    minimum_executions: MinimumExecutions | None = None
    active: bool | None = None
    baseline: Baseline | None = None
    min_delta: MinDelta | None = None

    def changes(self) -> dict[str, Any]:
        """Fields the caller gave a value (an explicit null changes nothing, as in Watcher)."""
        return {
            name: getattr(self, name)
            for name in self.model_fields_set
            if name != "id" and getattr(self, name) is not None
        }


class UnflagRequest(WatcherRequest):
    pipeline_id: Id
    pipeline_execution_id: Id
    metric_field: list[MetricField] = Field(min_length=1)

    @field_validator("metric_field", mode="before")
    @classmethod
    def _normalise(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [value]
        if isinstance(value, list):
            return [v.strip().lower() if isinstance(v, str) else v for v in value]
        return value


@dataclass(frozen=True)
class AnomalyRule:
    id: int
    pipeline_id: int
    metric_field: str
    z_threshold: float
    lookback_days: int
    minimum_executions: int
    active: bool
    created_at: _dt.datetime
    updated_at: _dt.datetime | None = None
    baseline: str = "mean"
    min_delta: float = 0.0

    def view(self) -> dict[str, Any]:
        body = {
            "id": self.id,
            "pipeline_id": self.pipeline_id,
            "metric_field": self.metric_field,
            "z_threshold": float(self.z_threshold),
            "lookback_days": self.lookback_days,
            "minimum_executions": self.minimum_executions,
            "active": self.active,
            "created_at": timeutil.iso(self.created_at),
            "updated_at": timeutil.iso(self.updated_at),
        }
        if self.baseline != "mean" or self.min_delta:  # Watcher's rule shows exactly Watcher's fields
            body.update(baseline=self.baseline, min_delta=self.min_delta)
        return body


@dataclass(frozen=True)
class AnomalyResult:
    execution_id: int
    pipeline_id: int
    rule_id: int
    metric_field: str
    verdict: Verdict
    lookback_days: int
    detected_at: _dt.datetime

    def view(self) -> dict[str, Any]:
        v = self.verdict
        return {
            "pipeline_execution_id": self.execution_id,
            "pipeline_id": self.pipeline_id,
            "rule_id": self.rule_id,
            "metric_field": self.metric_field,
            "violation_value": v.value,
            "historical_mean": v.mean,
            "std_deviation_value": v.std,
            "z_score": v.z_score,
            "z_threshold": v.z_threshold,
            "threshold_min_value": v.lower_bound,
            "threshold_max_value": v.upper_bound,
            "baseline_count": v.baseline_count,
            "lookback_days": self.lookback_days,
            "detected_at": timeutil.iso(self.detected_at),
        }


class RuleStore(Protocol):
    def next_rule_id(self, project: str) -> int: ...
    def find(self, project: str, pipeline_id: int, metric_field: str) -> AnomalyRule | None: ...
    def create(self, project: str, rule: AnomalyRule) -> tuple[int, bool]: ...
    def get(self, project: str, rule_id: int) -> AnomalyRule | None: ...
    def list(self, project: str) -> list[AnomalyRule]: ...
    def active_for_pipeline(self, project: str, pipeline_id: int) -> list[AnomalyRule]: ...
    def update(self, project: str, before: AnomalyRule, after: AnomalyRule) -> None: ...


class HistoryStore(Protocol):
    def get(self, project: str, run_id: int) -> Run | None: ...
    def baseline_in_hour(
        self, project: str, pipeline_id: int, hour: int, since: _dt.datetime, metrics: Sequence[str]
    ) -> list[BaselineRun]: ...


class ResultStore(Protocol):
    def record(self, project: str, result: AnomalyResult, alert: Alert) -> bool: ...
    def unflag(self, project: str, run_id: int, metrics: list[str]) -> bool: ...


def upsert_rule(
    project: str, request: RuleRequest, rules: RuleStore, pipelines: PipelineDirectory, now: _dt.datetime
) -> tuple[int, bool]:
    """The id of the pipeline's rule for that metric, creating it if needed; True when created.
    An existing rule is returned unchanged, as Watcher does."""
    if pipelines.get(project, request.pipeline_id) is None:
        raise NotFound(f"Pipeline {request.pipeline_id} not found.")
    existing = rules.find(project, request.pipeline_id, request.metric_field)
    if existing is not None:
        return existing.id, False
    rule = AnomalyRule(
        id=rules.next_rule_id(project),
        pipeline_id=request.pipeline_id,
        metric_field=request.metric_field,
        z_threshold=request.z_threshold,
        lookback_days=request.lookback_days,
        minimum_executions=request.minimum_executions,
        active=request.active,
        created_at=now,
        baseline=request.baseline,
        min_delta=float(request.min_delta),
    )
    return rules.create(project, rule)


def get_rule(project: str, rule_id: int, rules: RuleStore) -> AnomalyRule:
    rule = rules.get(project, rule_id)
    if rule is None:
        raise NotFound(f"Anomaly detection rule {rule_id} not found.")
    return rule


def patch_rule(
    project: str, request: RulePatch, rules: RuleStore, pipelines: PipelineDirectory, now: _dt.datetime
) -> AnomalyRule:
    before = get_rule(project, request.id, rules)
    changes = request.changes()
    if "pipeline_id" in changes and pipelines.get(project, changes["pipeline_id"]) is None:
        raise NotFound(f"Pipeline {changes['pipeline_id']} not found.")
    after = replace(before, **changes, updated_at=now)
    rules.update(project, before, after)
    return after


def detect_anomalies(
    project: str,
    execution_id: int,
    runs: HistoryStore,
    rules: RuleStore,
    results: ResultStore,
    alerting: Alerting,
    now: pendulum.DateTime,
) -> list[AnomalyResult]:
    """Judge a successful run against its pipeline's active rules (SPEC 7).

    One Query reads the baseline for every rule: the pipeline's successful runs of the same
    `hour_recorded` that ended inside the longest lookback, so the cost follows that window.
    """
    run = runs.get(project, execution_id)
    if run is None or not run.succeeded:
        return []
    active = rules.active_for_pipeline(project, run.pipeline_id)
    if not active:
        return []
    judged = [rule for rule in active if run.metric(rule.metric_field) is not None]
    if not judged:
        return []
    since = now.subtract(days=max(rule.lookback_days for rule in judged))
    metrics = sorted({rule.metric_field for rule in judged})
    history = [
        r
        for r in runs.baseline_in_hour(project, run.pipeline_id, run.hour_recorded, since, metrics)
        if r.id != run.id
    ]
    found = []
    for rule in judged:
        value = run.metric(rule.metric_field)
        window_start = timeutil.sortable(now.subtract(days=rule.lookback_days))
        baseline = [
            r.metrics.get(rule.metric_field)
            for r in history
            if r.ended >= window_start and not r.flagged(rule.metric_field)
        ]
        verdict = judge(
            value, baseline, rule.z_threshold, rule.minimum_executions, rule.baseline, rule.min_delta
        )
        if verdict is None or not verdict.is_anomaly:
            continue
        result = AnomalyResult(
            execution_id=run.id,
            pipeline_id=run.pipeline_id,
            rule_id=rule.id,
            metric_field=rule.metric_field,
            verdict=verdict,
            lookback_days=rule.lookback_days,
            detected_at=now,
        )
        reason = verdict.reason(rule.metric_field, run.id, rule.lookback_days)
        alert = alerting.draft(
            project,
            "anomaly",
            "warning",
            reason,
            now,
            pipeline_id=run.pipeline_id,
            details={**result.view(), "reason": reason},
            run_id=run.id,
        )
        if results.record(project, result, alert):
            alerting.announce(alert)
        found.append(result)
    return found


def unflag_anomalies(
    project: str, request: UnflagRequest, runs: HistoryStore, results: ResultStore
) -> list[str]:
    """Clear the named flags of an execution and drop their results; 404 when none is flagged."""
    run = runs.get(project, request.pipeline_execution_id)
    if run is None or run.pipeline_id != request.pipeline_id:
        raise NotFound(
            f"Pipeline execution {request.pipeline_execution_id} of pipeline {request.pipeline_id} not found."
        )
    flagged = [m for m in dict.fromkeys(request.metric_field) if run.flagged(m)]
    if not run.anomaly_flags or not flagged or not results.unflag(project, run.id, flagged):
        raise NotFound(
            f"Pipeline execution {run.id} has no anomaly flagged for {', '.join(request.metric_field)}."
        )
    return flagged


def _number(value: float) -> str:
    return f"{value:.4g}" if abs(value) < 1e6 else f"{value:.6g}"
