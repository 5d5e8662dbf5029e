"""Data-quality rules (seed 000 "anomalies", SPEC 1 and 8): what a rule asserts about a dataset, the
one query that measures every rule of a dataset on the rows a run wrote, and how each measurement
is judged and turned into the rule's alert.

A rule's `threshold` is the violation rate it allows (a fraction of the rows written, 0 = none);
a tolerance raises it while a known issue lasts: a run is judged against `max(threshold,
tolerance)`. `row_count_min` and `freshness_hours` are judged on a count and an age, not a rate:
their observed rate is 1 when violated and 0 when not.

The alert of a rule moves active -> dismissed | resolved. A violating run raises a new alert
unless the rule's alert is still active (then it is refreshed) or dismissed with the same observed
value (then it stays quiet; a different value re-surfaces it). A passing run resolves the rule's
open alert.
"""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Annotated, Any, Literal, Protocol

from aws_lambda_powertools import Logger
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictFloat,
    StrictInt,
    StrictStr,
    field_validator,
    model_validator,
)

from sluice import timeutil
from sluice.domain import ids
from sluice.domain.alerts import Alert, Alerting
from sluice.errors import NotFound, SluiceError

logger = Logger(service="sluice")

ASSERTION_TYPES = ("not_null", "unique", "accepted_values", "range", "row_count_min", "freshness_hours")
COLUMN_RULES = ("not_null", "unique", "accepted_values", "range")
SEVERITIES = ("info", "warning", "critical")
MAX_VALUES = 1000
RULE_KIND = "rule"
PASSED, VIOLATED, NOT_CHECKABLE = "passed", "violated", "not_checkable"

Fraction = Annotated[StrictFloat | StrictInt, Field(ge=0, le=1)]
Bound = StrictFloat | StrictInt


# -- the request -------------------------------------------------------------------------------------
class QualityRuleRequest(BaseModel):
    """`POST /api/pipeline/anomalies/rules`: unknown fields are ignored, wrong types are 422."""

    model_config = ConfigDict(extra="ignore")

    dataset_name: str = Field(min_length=1, max_length=256)
    assertion_type: Literal[
        "not_null", "unique", "accepted_values", "range", "row_count_min", "freshness_hours"
    ]
    column: str | None = Field(default=None, min_length=1, max_length=256)
    threshold: Fraction = 0
    severity: Literal["info", "warning", "critical"] = "warning"
    values: list[StrictStr | StrictInt | StrictFloat | bool] | None = Field(
        default=None, max_length=MAX_VALUES
    )
    min: Bound | None = None
    max: Bound | None = None
    hours: Annotated[StrictFloat | StrictInt, Field(gt=0)] | None = None

    @field_validator("dataset_name", "column")
    @classmethod
    def _stripped(cls, value: str | None) -> str | None:
        if value is None:
            return None
        stripped = value.strip()
        if not stripped:
            raise ValueError("must not be blank")
        return stripped

    @field_validator("severity", mode="before")
    @classmethod
    def _lowercase(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _complete(self) -> QualityRuleRequest:
        kind = self.assertion_type
        if kind in COLUMN_RULES and self.column is None:
            raise ValueError(f"a {kind} rule needs the column it checks")
        if kind == "accepted_values" and not self.values:
            raise ValueError("an accepted_values rule needs a non-empty list of values")
        if kind == "range":
            if self.min is None and self.max is None:
                raise ValueError("a range rule needs min, max or both")
            if self.min is not None and self.max is not None and self.min > self.max:
                raise ValueError("a range rule's min must not be greater than its max")
        for name in ("min", "max"):
            value = getattr(self, name)
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number")
        if kind == "row_count_min" and (self.min is None or self.min < 0 or self.min != int(self.min)):
            raise ValueError("a row_count_min rule needs min, a whole number of rows >= 0")
        if kind == "freshness_hours" and self.hours is None:
            raise ValueError("a freshness_hours rule needs hours, the largest allowed age (> 0)")
        return self


class ToleranceRequest(BaseModel):
    """`PUT|PATCH /api/pipeline/anomalies/tolerances/{check_id}`: `{tolerance}` (a fraction; null clears)."""

    model_config = ConfigDict(extra="ignore")

    tolerance: Fraction | None


class AlertIds(BaseModel):
    model_config = ConfigDict(extra="ignore")

    alert_ids: list[StrictInt | str] = Field(max_length=1000)


# -- the rule --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class QualityRule:
    id: int
    dataset_name: str
    assertion_type: str
    severity: str
    threshold: float
    created_at: _dt.datetime
    column: str | None = None
    values: tuple[Any, ...] | None = None
    min: float | int | None = None
    max: float | int | None = None
    hours: float | int | None = None
    tolerance: float | None = None
    alert_id: int | None = None  # the rule's latest alert
    last_check: dict[str, Any] | None = None
    updated_at: _dt.datetime | None = None

    @property
    def allowed_rate(self) -> float:
        return max(self.threshold, self.tolerance or 0)

    def view(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": ids.render(RULE_KIND, self.id),
            "dataset_name": self.dataset_name,
            "assertion_type": self.assertion_type,
            "column": self.column,
            "threshold": self.threshold,
            "severity": self.severity,
            "tolerance": self.tolerance,
            "created_at": timeutil.iso(self.created_at),
            "updated_at": timeutil.iso(self.updated_at),
            "last_check": self.last_check,
        }
        if self.assertion_type == "accepted_values":
            body["values"] = list(self.values or ())
        if self.assertion_type in ("range", "row_count_min"):
            body["min"] = self.min
        if self.assertion_type == "range":
            body["max"] = self.max
        if self.assertion_type == "freshness_hours":
            body["hours"] = self.hours
        return body

    def tolerance_view(self) -> dict[str, Any]:
        rule_id = ids.render(RULE_KIND, self.id)
        return {
            "check_id": rule_id,
            "rule_id": rule_id,
            "dataset_name": self.dataset_name,
            "assertion_type": self.assertion_type,
            "column": self.column,
            "threshold": self.threshold,
            "tolerance": self.tolerance,
            "effective_threshold": self.allowed_rate,
            "updated_at": timeutil.iso(self.updated_at),
        }


def rule_from_request(rule_id: int, request: QualityRuleRequest, now: _dt.datetime) -> QualityRule:
    kind = request.assertion_type
    return QualityRule(
        id=rule_id,
        dataset_name=request.dataset_name,
        assertion_type=kind,
        severity=request.severity,
        threshold=float(request.threshold),
        created_at=now,
        column=request.column if kind in COLUMN_RULES else None,
        values=tuple(request.values) if kind == "accepted_values" and request.values else None,
        min=request.min if kind in ("range", "row_count_min") else None,
        max=request.max if kind == "range" else None,
        hours=request.hours if kind == "freshness_hours" else None,
    )


# -- measuring: one query per dataset ---------------------------------------------------------------
def _identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(value: Any) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def _text(value: Any) -> str:
    """How a listed value compares: as the text DuckDB casts the column to (true, 1.5, abc)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _number(value: float | int) -> str:
    return repr(float(value)) if isinstance(value, float) else str(int(value))


def violation_expression(rule: QualityRule) -> str | None:
    """The aggregate counting the rows that violate a column rule (None: judged on the row count)."""
    if rule.assertion_type not in COLUMN_RULES:
        return None
    column = _identifier(rule.column or "")
    if rule.assertion_type == "not_null":
        return f"count(*) FILTER (WHERE {column} IS NULL)"
    if rule.assertion_type == "unique":
        # Rows beyond the first of each non-null value: a value seen three times is two violations.
        return f"count({column}) - count(DISTINCT {column})"
    if rule.assertion_type == "accepted_values":
        listed = ", ".join(_literal(_text(v)) for v in rule.values or ())
        return f"count(*) FILTER (WHERE {column} IS NOT NULL AND CAST({column} AS VARCHAR) NOT IN ({listed}))"
    number = f"TRY_CAST({column} AS DOUBLE)"
    outside = []
    if rule.min is not None:
        outside.append(f"{number} < {_number(rule.min)}")
    if rule.max is not None:
        outside.append(f"{number} > {_number(rule.max)}")
    # A value that is not a number at all is outside any range; nulls are not_null's business.
    not_a_number = f"({column} IS NOT NULL AND {number} IS NULL)"
    return f"count(*) FILTER (WHERE {not_a_number} OR {' OR '.join(outside)})"


@dataclass(frozen=True)
class Measurement:
    """The SQL to run over the relation `data` and, per rule, the column it answers in (or why not)."""

    sql: str
    answers: dict[int, str]
    unmeasurable: dict[int, str]


def measurement(rules: Iterable[QualityRule], columns: Iterable[str], relation: str = "data") -> Measurement:
    """One SELECT computing the row count and every column rule's violation count at once."""
    present = set(columns)
    parts = ["count(*) AS n_rows"]
    answers: dict[int, str] = {}
    unmeasurable: dict[int, str] = {}
    for rule in rules:
        if rule.assertion_type in COLUMN_RULES and rule.column not in present:
            unmeasurable[rule.id] = (
                f"column '{rule.column}' is not in dataset '{rule.dataset_name}' "
                f"(it has {', '.join(sorted(present)) or 'no columns'})"
            )
            continue
        expression = violation_expression(rule)
        if expression is not None:
            answers[rule.id] = f"v_{rule.id}"
            parts.append(f"{expression} AS v_{rule.id}")
    return Measurement(f"SELECT {', '.join(parts)} FROM {relation}", answers, unmeasurable)


# -- judging ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Outcome:
    rule_id: int
    status: str  # passed | violated | not_checkable
    run_id: int | None
    checked_at: _dt.datetime
    rows: int | None = None
    violations: int | None = None
    observed_rate: float | None = None
    observed_value: float | int | None = None
    allowed: float | None = None
    reason: str = ""

    def view(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "run_id": ids.render("run", self.run_id) if self.run_id else None,
            "checked_at": timeutil.iso(self.checked_at),
            "rows": self.rows,
            "violations": self.violations,
            "observed_rate": self.observed_rate,
            "observed_value": self.observed_value,
            "allowed_rate": self.allowed,
            "reason": self.reason,
        }


def _percent(rate: float) -> str:
    return f"{rate * 100:.4g}%"


def judge(
    rule: QualityRule,
    rows: int,
    violations: int | None,
    run_id: int | None,
    now: _dt.datetime,
    age_hours: float | None = None,
) -> Outcome:
    """The verdict on one rule from its measurement (violations of a column rule; the row count;
    the dataset's age for freshness_hours)."""
    allowed = rule.allowed_rate
    base = {"rule_id": rule.id, "run_id": run_id, "checked_at": now, "rows": rows, "allowed": allowed}
    what = f"{rule.assertion_type} on {rule.dataset_name}" + (f".{rule.column}" if rule.column else "")
    if rule.assertion_type == "row_count_min":
        bad = rows < (rule.min or 0)
        return Outcome(
            **base,
            status=VIOLATED if bad else PASSED,
            violations=1 if bad else 0,
            observed_rate=1.0 if bad else 0.0,
            observed_value=rows,
            reason=f"{what}: the run wrote {rows} rows, {'fewer than' if bad else 'at least'} "
            f"the minimum of {_number(rule.min or 0)}.",
        )
    if rule.assertion_type == "freshness_hours":
        age = round(age_hours or 0.0, 4)
        bad = age > float(rule.hours or 0)
        return Outcome(
            **base,
            status=VIOLATED if bad else PASSED,
            violations=1 if bad else 0,
            observed_rate=1.0 if bad else 0.0,
            observed_value=age,
            reason=f"{what}: last written {age:.4g} hours ago, "
            f"{'more' if bad else 'no more'} than the allowed {_number(rule.hours or 0)} hours.",
        )
    count = int(violations or 0)
    rate = round(count / rows, 6) if rows else 0.0
    bad = rate > allowed
    limit = f"allowed {_percent(allowed)}" + (
        f" (threshold {_percent(rule.threshold)}, tolerance {_percent(rule.tolerance)})"
        if rule.tolerance is not None
        else ""
    )
    return Outcome(
        **base,
        status=VIOLATED if bad else PASSED,
        violations=count,
        observed_rate=rate,
        observed_value=rate,
        reason=f"{what}: {count} of {rows} rows violate it ({_percent(rate)}), "
        f"{'above' if bad else 'within'} the {limit}.",
    )


def not_checkable(rule: QualityRule, run_id: int | None, now: _dt.datetime, why: str) -> Outcome:
    return Outcome(
        rule_id=rule.id,
        status=NOT_CHECKABLE,
        run_id=run_id,
        checked_at=now,
        allowed=rule.allowed_rate,
        reason=f"The rule cannot be checked: {why}.",
    )


# -- ports -----------------------------------------------------------------------------------------
class QualityRules(Protocol):
    def next_id(self, project: str) -> int: ...
    def create(self, project: str, rule: QualityRule) -> None: ...
    def get(self, project: str, rule_id: int) -> QualityRule | None: ...
    def list(self, project: str, dataset_name: str | None = None) -> list[QualityRule]: ...
    def of_dataset(self, project: str, dataset_name: str) -> list[QualityRule]: ...
    def set_tolerance(
        self, project: str, rule_id: int, tolerance: float | None, now: _dt.datetime
    ) -> QualityRule: ...
    def record_check(
        self, project: str, rule: QualityRule, outcome: Outcome, alert_id: int | None
    ) -> None: ...
    def claim_alert(self, project: str, rule_id: int, previous: int | None, alert_id: int) -> bool:
        """Make `alert_id` the rule's alert if its alert is still `previous` (one writer wins)."""
        ...


class QualityAlerts(Protocol):
    def get(self, project: str, alert_id: int) -> Alert | None: ...
    def refresh(
        self, project: str, alert: Alert, details: dict[str, Any], message: str, now: _dt.datetime
    ) -> bool: ...
    def transition(
        self,
        project: str,
        alert_id: int,
        from_statuses: tuple[str, ...],
        to_status: str,
        now: _dt.datetime,
        details: dict[str, Any] | None = None,
        message: str | None = None,
        by: str | None = None,
    ) -> Alert | None: ...


class Measurer(Protocol):
    def measure(self, project: str, output_key: str, sql: str) -> dict[str, Any]:
        """Run `sql` over the Parquet object `output_key` as the relation `data`; one row."""
        ...

    def measure_object(self, project: str, uri: str, build: Any) -> dict[str, Any]:
        """Run `build(columns)` over the S3 object `uri` as `data` (any readable format); one row."""
        ...


class DatasetWrites(Protocol):
    def record_write(
        self,
        project: str,
        dataset_name: str,
        rows: int,
        run_id: int,
        pipeline_id: int,
        at: _dt.datetime,
        dataset_rows: int | None = None,
        source: str = "sluice",  # sluice (a run's target), external (an S3 object), dbt (an upload)
    ) -> None: ...


# -- use cases -------------------------------------------------------------------------------------
def create_rule(
    project: str, request: QualityRuleRequest, rules: QualityRules, now: _dt.datetime
) -> QualityRule:
    rule = rule_from_request(rules.next_id(project), request, now)
    rules.create(project, rule)
    return rule


def rule_of(project: str, ref: str | int, rules: QualityRules) -> QualityRule:
    try:
        number = ids.parse(RULE_KIND, ref)
    except SluiceError:
        raise NotFound(f"Rule '{ref}' not found.") from None
    rule = rules.get(project, number)
    if rule is None:
        raise NotFound(f"Rule {ids.render(RULE_KIND, number)} not found.")
    return rule


def set_tolerance(
    project: str, ref: str | int, request: ToleranceRequest, rules: QualityRules, now: _dt.datetime
) -> QualityRule:
    rule = rule_of(project, ref, rules)
    tolerance = None if request.tolerance is None else float(request.tolerance)
    return rules.set_tolerance(project, rule.id, tolerance, now)


@dataclass
class DataQuality:
    """Checks a dataset's rules after a run wrote it, and keeps each rule's alert in step."""

    rules: QualityRules
    alerts: QualityAlerts
    alerting: Alerting
    measurer: Measurer
    writes: DatasetWrites | None = None
    clock: Any = field(default=timeutil.now)
    dbt: Any = None  # sluice.domain.dbt.StatusStore: the latest run of SQL models

    def run_finished(
        self,
        project: str,
        run_id: int,
        status: str,
        started: _dt.datetime,
        finished: _dt.datetime | None,
        node_runs: list[Any],
    ) -> None:
        from sluice.domain.dbt import sluice_run_status

        if self.dbt is None:
            return
        summary = sluice_run_status(run_id, status, started, finished or self.clock(), node_runs)
        if summary is not None:
            self.dbt.put_status(project, summary)

    def after_write(
        self,
        project: str,
        run_id: int,
        pipeline_id: int,
        dataset_name: str,
        output_key: str,
        columns: list[str],
        rows_written: int,
        dataset_rows: int | None = None,
    ) -> list[Outcome]:
        now = self.clock()
        if self.writes is not None:
            self.writes.record_write(
                project, dataset_name, rows_written, run_id, pipeline_id, now, dataset_rows=dataset_rows
            )
        rules = self.rules.of_dataset(project, dataset_name)
        if not rules:
            return []
        plan = measurement(rules, columns)
        row: dict[str, Any] = {}
        failure = None
        if plan.answers or any(r.assertion_type == "row_count_min" for r in rules):
            try:
                row = self.measurer.measure(project, output_key, plan.sql)
            except Exception as exc:  # noqa: BLE001 - a broken check must not fail the run
                failure = f"the data could not be read ({exc})"
        rows = int(row.get("n_rows") or rows_written)
        outcomes = []
        for rule in rules:
            if failure is not None:
                outcome = not_checkable(rule, run_id, now, failure)
            elif rule.id in plan.unmeasurable:
                outcome = not_checkable(rule, run_id, now, plan.unmeasurable[rule.id])
            elif rule.assertion_type == "freshness_hours":
                outcome = judge(rule, rows, None, run_id, now, age_hours=0.0)
            else:
                answer = plan.answers.get(rule.id)
                outcome = judge(rule, rows, int(row.get(answer) or 0) if answer else None, run_id, now)
            self.settle(project, rule, outcome, pipeline_id)
            outcomes.append(outcome)
        return outcomes

    def settle(
        self, project: str, rule: QualityRule, outcome: Outcome, pipeline_id: int | None
    ) -> int | None:
        """Record the outcome on the rule and move its alert: raise, refresh, re-surface or close."""
        current = self.alerts.get(project, rule.alert_id) if rule.alert_id else None
        now = outcome.checked_at
        alert_id = rule.alert_id
        if outcome.status == VIOLATED:
            details = alert_details(rule, outcome)
            message = outcome.reason
            if current is not None and current.status == "active":
                self.alerts.refresh(project, current, details, message, now)
            elif current is not None and current.status == "dismissed":
                if current.details.get("observed_value") != outcome.observed_value:
                    back = self.alerts.transition(
                        project, current.id, ("dismissed",), "active", now, details=details, message=message
                    )
                    if back is not None:
                        self.alerting.announce(back)
            else:
                alert = self.alerting.draft(
                    project,
                    "data_quality",
                    rule.severity,
                    message,
                    now,
                    pipeline_id=pipeline_id,
                    details=details,
                    dataset_name=rule.dataset_name,
                    rule_id=rule.id,
                    run_id=outcome.run_id,
                )
                # Two runs writing the dataset at once both find no open alert: the claim on the
                # rule lets one of them raise it.
                if self.rules.claim_alert(project, rule.id, rule.alert_id, alert.id):
                    self.alerting.raise_alert(alert)
                    alert_id = alert.id
        elif outcome.status == PASSED and current is not None and current.status in ("active", "dismissed"):
            self.alerts.transition(
                project, current.id, ("active", "dismissed"), "resolved", now, by="passing run"
            )
        self.rules.record_check(project, rule, outcome, alert_id)
        return alert_id

    def after_external_end(
        self, project: str, run_id: int, pipeline_id: int, targets: list[str]
    ) -> list[Outcome]:
        """A Watcher execution ended: the rules naming one of its pipeline's target addresses.
        An address that is an S3 object is read and checked like a Sluice dataset; any other
        says why it cannot be checked."""
        now = self.clock()
        outcomes = []
        for target in targets:
            rules = self.rules.of_dataset(project, target)
            if not rules:
                continue
            if not target.startswith("s3://"):
                for rule in rules:
                    outcome = not_checkable(
                        rule, run_id, now,
                        f"'{target}' is neither a Sluice dataset nor an S3 object Sluice can read",
                    )  # fmt: skip
                    self.settle(project, rule, outcome, pipeline_id)
                    outcomes.append(outcome)
                continue
            plans: list[Measurement] = []

            def build(
                columns: list[str], rules: list[QualityRule] = rules, plans: list[Measurement] = plans
            ) -> str:
                plans.append(measurement(rules, columns))
                return plans[-1].sql

            try:
                row = self.measurer.measure_object(project, target, build)
                failure = None
            except Exception as exc:  # noqa: BLE001 - an unreadable object is a reason, not a crash
                row, failure = {}, f"{target} could not be read ({exc})"
            if failure is None and plans and self.writes is not None:
                rows = int(row.get("n_rows") or 0)
                self.writes.record_write(project, target, rows, run_id, pipeline_id, now, source="external")
            for rule in rules:
                if failure is not None or not plans:
                    outcome = not_checkable(rule, run_id, now, failure or f"{target} could not be read")
                elif rule.id in plans[0].unmeasurable:
                    outcome = not_checkable(rule, run_id, now, plans[0].unmeasurable[rule.id])
                else:
                    rows = int(row.get("n_rows") or 0)
                    answer = plans[0].answers.get(rule.id)
                    violations = int(row.get(answer) or 0) if answer else None
                    outcome = judge(rule, rows, violations, run_id, now, age_hours=0.0)
                self.settle(project, rule, outcome, pipeline_id)
                outcomes.append(outcome)
        return outcomes

    def check_freshness(self, project: str, last_writes: dict[str, _dt.datetime]) -> list[Outcome]:
        """The freshness_hours rules of every dataset, on the age of its last write (the scheduled
        freshness check); a dataset never written by Sluice cannot be checked."""
        now = self.clock()
        outcomes = []
        for rule in self.rules.list(project):
            if rule.assertion_type != "freshness_hours":
                continue
            last = last_writes.get(rule.dataset_name)
            if last is None:
                outcome = not_checkable(
                    rule, None, now, f"no Sluice run has written dataset '{rule.dataset_name}' yet"
                )
            else:
                age = (now - last).total_seconds() / 3600
                outcome = judge(rule, 0, None, None, now, age_hours=age)
                outcome = replace(outcome, rows=None)
            self.settle(project, rule, outcome, None)
            outcomes.append(outcome)
        return outcomes


def alert_details(rule: QualityRule, outcome: Outcome) -> dict[str, Any]:
    return {
        "rule_id": ids.render(RULE_KIND, rule.id),
        "dataset_name": rule.dataset_name,
        "assertion_type": rule.assertion_type,
        "column": rule.column,
        "threshold": rule.threshold,
        "tolerance": rule.tolerance,
        "allowed_rate": outcome.allowed,
        "observed_rate": outcome.observed_rate,
        "observed_value": outcome.observed_value,
        "violations": outcome.violations,
        "rows": outcome.rows,
        "run_id": ids.render("run", outcome.run_id) if outcome.run_id else None,
        "reason": outcome.reason,
    }


def dataset_freshness(
    states: list[dict[str, Any]], rules: list[QualityRule], now: _dt.datetime
) -> list[dict[str, Any]]:
    """`GET /api/pipeline/freshness` for the datasets Sluice writes: the threshold is the smallest
    `hours` of the dataset's freshness_hours rules; without one a dataset is fresh (its last write
    succeeded: only successful writes are recorded)."""
    limits: dict[str, float] = {}
    for rule in rules:
        if rule.assertion_type == "freshness_hours" and rule.hours is not None:
            limits[rule.dataset_name] = min(float(rule.hours), limits.get(rule.dataset_name, math.inf))
    report = []
    for state in sorted(states, key=lambda s: s["dataset_name"]):
        last = timeutil.from_stored(state.get("last_refresh_at"))
        limit = limits.get(state["dataset_name"])
        age = (now - last).total_seconds() / 3600 if last is not None else None
        report.append(
            {
                "dataset_name": state["dataset_name"],
                "last_refresh_at": timeutil.iso(last),
                "freshness_threshold": limit,
                "is_fresh": True if limit is None else (age is not None and age <= limit),
                "pipeline_id": int(state["pipeline_id"]) if state.get("pipeline_id") is not None else None,
                "run_id": ids.render("run", int(state["run_id"])) if state.get("run_id") else None,
                "row_count": state.get("row_count"),
            }
        )
    return report
