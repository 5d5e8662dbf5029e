"""The z-score rule of SPEC 7 as a pure function, and detection's choice of baseline (on fakes)."""

from __future__ import annotations

import statistics

import pendulum
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from sluice import timeutil
from sluice.domain.alerts import Alerting
from sluice.domain.anomalies import (
    AnomalyRule,
    RulePatch,
    RuleRequest,
    UnflagRequest,
    detect_anomalies,
    judge,
    unflag_anomalies,
)
from sluice.domain.events import ALERT_RAISED, RecordingPublisher
from sluice.domain.executions import BaselineRun, Run
from sluice.errors import NotFound

BASELINE = [10, 12, 14, 16, 18]
NOW = pendulum.datetime(2024, 6, 30, 12, tz="UTC")


# -- the rule -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "anomalous"), [(100, True), (3, True), (14, False), (17, False), (18, True)]
)
def test_issue_example_flags_values_outside_one_sample_std(value, anomalous):
    verdict = judge(value, BASELINE, z_threshold=1.0, minimum_executions=5)

    assert verdict is not None
    assert verdict.mean == 14
    assert verdict.std == pytest.approx(statistics.stdev(BASELINE))  # sample std, n-1
    assert verdict.is_anomaly is anomalous


def test_bounds_are_strict():
    verdict = judge(0, [1, 3], z_threshold=1.0, minimum_executions=2)
    assert verdict is not None
    on_upper = judge(verdict.upper_bound, [1, 3], z_threshold=1.0, minimum_executions=2)
    assert on_upper is not None and not on_upper.is_anomaly


def test_lower_bound_is_floored_at_zero():
    verdict = judge(0, [1, 2, 30, 4, 5], z_threshold=3.0, minimum_executions=5)

    assert verdict is not None
    assert verdict.lower_bound == 0.0
    assert not verdict.is_anomaly  # 0 is not below a floor of 0


def test_no_verdict_without_enough_values_or_without_spread():
    assert judge(100, [10, 12, 14, 16], z_threshold=1.0, minimum_executions=5) is None
    assert judge(100, [10, 12, None, 14, 16, None], z_threshold=1.0, minimum_executions=5) is None
    assert judge(100, [7, 7, 7, 7, 7], z_threshold=1.0, minimum_executions=5) is None


def test_z_score_and_baseline_count_are_reported():
    verdict = judge(100, [*BASELINE, None], z_threshold=2.0, minimum_executions=5)

    assert verdict.baseline_count == 5
    assert verdict.z_score == pytest.approx((100 - 14) / statistics.stdev(BASELINE))
    assert verdict.upper_bound == pytest.approx(14 + 2 * statistics.stdev(BASELINE))


metric_values = st.one_of(
    st.integers(min_value=0, max_value=10**9),
    st.floats(min_value=0, max_value=1e9, allow_nan=False, allow_infinity=False),
)


@settings(max_examples=300, deadline=None)
@given(
    baseline=st.lists(st.one_of(metric_values, st.none()), min_size=0, max_size=60),
    value=metric_values,
    z=st.floats(min_value=1.0, max_value=10.0),
    minimum=st.integers(min_value=2, max_value=40),
)
def test_rule_agrees_with_a_direct_computation(baseline, value, z, minimum):
    values = [v for v in baseline if v is not None]
    verdict = judge(value, baseline, z_threshold=z, minimum_executions=minimum)

    if len(values) < minimum or statistics.stdev(values) == 0:
        assert verdict is None
        return
    mean, std = statistics.mean(values), statistics.stdev(values)
    upper, lower = mean + z * std, max(0, mean - z * std)
    assume(abs(value - upper) > 1e-9 * max(1, upper) and abs(value - lower) > 1e-9 * max(1, lower))
    assert verdict is not None
    assert verdict.baseline_count == len(values)
    assert verdict.mean == pytest.approx(float(mean))
    assert verdict.std == pytest.approx(float(std))
    assert verdict.is_anomaly == (value > upper or value < lower)


@settings(max_examples=100, deadline=None)
@given(
    values=st.lists(st.integers(min_value=0, max_value=1000), min_size=5, max_size=30), z=st.floats(1.0, 10.0)
)
def test_the_mean_itself_is_never_anomalous(values, z):
    assume(statistics.stdev(values) > 0)
    verdict = judge(statistics.mean(values), values, z_threshold=z, minimum_executions=5)
    assert verdict is not None and not verdict.is_anomaly


# -- request validation ------------------------------------------------------------------------------------
def test_rule_request_defaults_and_ranges():
    rule = RuleRequest.model_validate({"pipeline_id": 1, "metric_field": " Total_Rows "})
    assert (
        rule.metric_field,
        rule.z_threshold,
        rule.lookback_days,
        rule.minimum_executions,
        rule.active,
    ) == (
        "total_rows",
        3.0,
        30,
        30,
        True,
    )
    for bad in (
        {"z_threshold": 0.99},
        {"z_threshold": 10.01},
        {"lookback_days": 0},
        {"lookback_days": 366},
        {"minimum_executions": 4},
        {"minimum_executions": 1001},
        {"metric_field": "rows"},
    ):
        with pytest.raises(ValueError):
            RuleRequest.model_validate({"pipeline_id": 1, "metric_field": "total_rows", **bad})


def test_patch_ignores_explicit_nulls_and_unflag_accepts_one_metric():
    patch = RulePatch.model_validate({"id": 1, "z_threshold": None, "active": False})
    assert patch.changes() == {"active": False}
    unflag = UnflagRequest.model_validate(
        {"pipeline_id": 1, "pipeline_execution_id": 2, "metric_field": "Inserts"}
    )
    assert unflag.metric_field == ["inserts"]


# -- detection on fakes ------------------------------------------------------------------------------------
class FakeRuns:
    def __init__(self, runs: list[Run]):
        self.runs = {r.id: r for r in runs}
        self.bucket_reads: list[tuple[int, int]] = []

    def get(self, project, run_id):
        return self.runs.get(run_id)

    def baseline_in_hour(self, project, pipeline_id, hour, since, metrics):
        self.bucket_reads.append((pipeline_id, hour))
        return [
            BaselineRun(
                id=r.id,
                ended=timeutil.sortable(r.end_date),
                metrics={m: r.metric(m) for m in metrics},
                flags=dict(r.anomaly_flags),
            )
            for r in self.runs.values()
            if r.pipeline_id == pipeline_id
            and r.hour_recorded == hour
            and r.succeeded
            and r.end_date >= since
        ]


class FakeRules:
    def __init__(self, rules):
        self.rules = rules

    def active_for_pipeline(self, project, pipeline_id):
        return [r for r in self.rules if r.pipeline_id == pipeline_id and r.active]


class FakeResults:
    def __init__(self, runs: FakeRuns):
        self.runs = runs
        self.recorded = {}
        self.alerts = []  # stored in the same transaction as a new result

    def record(self, project, result, alert):
        run = self.runs.runs[result.execution_id]
        self.runs.runs[run.id] = Run(
            **{**run.__dict__, "anomaly_flags": {**run.anomaly_flags, result.metric_field: True}}
        )
        new = (result.execution_id, result.metric_field) not in self.recorded
        self.recorded[(result.execution_id, result.metric_field)] = result
        if new:
            self.alerts.append(alert)
        return new

    def unflag(self, project, run_id, metrics):
        run = self.runs.runs[run_id]
        self.runs.runs[run_id] = Run(
            **{**run.__dict__, "anomaly_flags": {**run.anomaly_flags, **dict.fromkeys(metrics, False)}}
        )
        for metric in metrics:
            self.recorded.pop((run_id, metric), None)
        return True


class FakeAlerts:
    def __init__(self):
        self.next_id = 0
        self.added = []

    def next_alert_id(self, project):
        self.next_id += 1
        return self.next_id

    def add(self, alert, once_key=None, once_for=None):
        self.added.append(alert)
        return True


def run_at(run_id, day, total_rows, hour=10, flags=None, succeeded=True, pipeline_id=1):
    start = NOW.subtract(days=day).set(hour=hour, minute=0)
    return Run(
        id=run_id,
        pipeline_id=pipeline_id,
        status="success" if succeeded else "failed",
        start_date=start,
        end_date=start.add(minutes=5),
        completed_successfully=succeeded,
        total_rows=total_rows,
        anomaly_flags=flags or {},
    )


def rule(**overrides):
    values = {
        "id": 1,
        "pipeline_id": 1,
        "metric_field": "total_rows",
        "z_threshold": 1.0,
        "lookback_days": 30,
        "minimum_executions": 5,
        "active": True,
        "created_at": NOW,
    }
    return AnomalyRule(**{**values, **overrides})


def detect(runs, rules, run_id):
    publisher = RecordingPublisher()
    alerts = FakeAlerts()
    results = FakeResults(runs)
    found = detect_anomalies(
        "acme", run_id, runs, FakeRules(rules), results, Alerting(alerts, publisher), NOW
    )
    return found, alerts, publisher, results


def baseline_runs():
    return [run_at(i + 1, day=i + 1, total_rows=v) for i, v in enumerate(BASELINE)]


def test_detection_flags_an_outlier_and_raises_one_alert():
    runs = FakeRuns([*baseline_runs(), run_at(6, day=0, total_rows=100)])

    found, alerts, publisher, results = detect(runs, [rule()], 6)

    assert [r.metric_field for r in found] == ["total_rows"]
    assert runs.runs[6].anomaly_flags == {"total_rows": True}
    assert [a.type for a in results.alerts] == ["anomaly"]
    assert publisher.of_type(ALERT_RAISED)[0]["alert"]["details"]["baseline_count"] == 5
    assert runs.bucket_reads == [(1, 10)]


def test_flagged_executions_leave_the_baseline():
    # Given a flagged outlier already in the bucket
    runs = FakeRuns([*baseline_runs(), run_at(6, day=0, total_rows=100, flags={"total_rows": True})])
    runs.runs[7] = run_at(7, day=0, total_rows=14)

    found, *_ = detect(runs, [rule()], 7)

    assert found == []  # 14 lies inside 10..18's band
    runs.runs[8] = run_at(8, day=0, total_rows=3)
    found, *_ = detect(runs, [rule()], 8)
    assert [r.verdict.baseline_count for r in found] == [6]  # 10..18 and 14, not 100


def test_other_hours_failed_runs_and_runs_outside_the_lookback_are_not_compared():
    runs = FakeRuns(
        [
            *baseline_runs(),
            run_at(20, day=40, total_rows=14),  # outside a 30-day lookback
            run_at(21, day=2, total_rows=14, succeeded=False),
            run_at(22, day=2, total_rows=14, hour=11),
            run_at(30, day=0, total_rows=100, hour=11),
        ]
    )

    found, *_ = detect(runs, [rule()], 30)

    assert found == []  # hour 11 holds one other run, fewer than minimum_executions
    short = rule(lookback_days=3, minimum_executions=5)
    runs.runs[31] = run_at(31, day=0, total_rows=100)
    found, *_ = detect(runs, [short], 31)
    assert found == []  # only days 1..3 are in a 3-day window


def test_inactive_rules_failed_runs_and_null_metrics_are_skipped():
    runs = FakeRuns(
        [
            *baseline_runs(),
            run_at(6, day=0, total_rows=None),
            run_at(7, day=0, total_rows=100, succeeded=False),
        ]
    )

    assert detect(runs, [rule()], 6)[0] == []
    assert detect(runs, [rule()], 7)[0] == []
    runs.runs[8] = run_at(8, day=0, total_rows=100)
    assert detect(runs, [rule(active=False)], 8)[0] == []


def test_redetection_does_not_raise_a_second_alert():
    runs = FakeRuns([*baseline_runs(), run_at(6, day=0, total_rows=100)])
    _, _, first_publisher, results = detect(runs, [rule()], 6)
    publisher = RecordingPublisher()
    alerts = FakeAlerts()

    detect_anomalies("acme", 6, runs, FakeRules([rule()]), results, Alerting(alerts, publisher), NOW)

    assert publisher.of_type(ALERT_RAISED) == []
    assert len(first_publisher.of_type(ALERT_RAISED)) == 1


def test_unflag_needs_a_flagged_metric():
    runs = FakeRuns([run_at(1, day=0, total_rows=100, flags={"total_rows": True})])
    results = FakeResults(runs)

    with pytest.raises(NotFound):
        unflag_anomalies(
            "acme",
            UnflagRequest(pipeline_id=1, pipeline_execution_id=1, metric_field=["inserts"]),
            runs,
            results,
        )
    with pytest.raises(NotFound):
        unflag_anomalies(
            "acme",
            UnflagRequest(pipeline_id=2, pipeline_execution_id=1, metric_field=["total_rows"]),
            runs,
            results,
        )
    cleared = unflag_anomalies(
        "acme",
        UnflagRequest(pipeline_id=1, pipeline_execution_id=1, metric_field=["total_rows", "inserts"]),
        runs,
        results,
    )
    assert cleared == ["total_rows"]
    assert runs.runs[1].anomaly_flags == {"total_rows": False}
    with pytest.raises(NotFound):
        unflag_anomalies(
            "acme",
            UnflagRequest(pipeline_id=1, pipeline_execution_id=1, metric_field=["total_rows"]),
            runs,
            results,
        )
