"""Data-quality rules (issue 13): request validation, the one measuring query per dataset (run on
DuckDB), judging with thresholds and tolerances, and each rule's alert lifecycle on fakes."""

from __future__ import annotations

import dataclasses

import duckdb
import pendulum
import pytest
from pydantic import ValidationError

from sluice.domain.alerts import Alert, Alerting
from sluice.domain.events import RecordingPublisher
from sluice.domain.quality import (
    NOT_CHECKABLE,
    PASSED,
    VIOLATED,
    DataQuality,
    QualityRuleRequest,
    judge,
    measurement,
    rule_from_request,
)

NOW = pendulum.datetime(2026, 1, 5, 12, tz="UTC")


def rule(rule_id: int = 1, **body):
    return rule_from_request(rule_id, QualityRuleRequest(dataset_name="orders", **body), NOW)


def measure(rows: list[tuple], columns: str, *rules, names: list[str] | None = None):
    """Every rule measured in one query over an in-memory table `data`."""
    con = duckdb.connect()
    con.execute(f"CREATE TABLE data ({columns})")
    if rows:
        marks = ", ".join("?" for _ in rows[0])
        con.executemany(f"INSERT INTO data VALUES ({marks})", rows)
    names = names or [c.split()[0] for c in columns.split(",")]
    plan = measurement(rules, names)
    cursor = con.execute(plan.sql)
    record = dict(zip([d[0] for d in cursor.description], cursor.fetchone(), strict=True))
    return plan, record


# -- validation ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "body",
    [
        {"assertion_type": "no_such_type", "column": "id"},
        {"assertion_type": "range", "column": "amount"},
        {"assertion_type": "range", "column": "amount", "min": 5, "max": 1},
        {"assertion_type": "not_null", "column": "id", "threshold": 1.5},
        {"assertion_type": "not_null", "column": "id", "threshold": -0.1},
        {"assertion_type": "not_null"},
        {"assertion_type": "accepted_values", "column": "status"},
        {"assertion_type": "accepted_values", "column": "status", "values": []},
        {"assertion_type": "row_count_min"},
        {"assertion_type": "row_count_min", "min": 2.5},
        {"assertion_type": "freshness_hours"},
        {"assertion_type": "not_null", "column": "id", "severity": "fatal"},
        {"assertion_type": "not_null", "column": "id", "threshold": "0.1"},
    ],
)
def test_bad_rules_are_refused(body):
    with pytest.raises(ValidationError):
        QualityRuleRequest(dataset_name="orders", **body)


def test_a_rule_keeps_only_what_its_type_uses():
    made = rule(assertion_type="not_null", column="id", min=3, values=["a"], severity="CRITICAL")
    assert (made.column, made.min, made.values, made.severity) == ("id", None, None, "critical")
    assert rule(assertion_type="range", column="amount", max=10).view()["max"] == 10


# -- one query, every rule -------------------------------------------------------------------------
def test_every_assertion_is_measured_in_one_query():
    rules = [
        rule(1, assertion_type="not_null", column="id"),
        rule(2, assertion_type="unique", column="id"),
        rule(3, assertion_type="accepted_values", column="status", values=["new", "paid"]),
        rule(4, assertion_type="range", column="amount", min=0, max=100),
        rule(5, assertion_type="row_count_min", min=10),
        rule(6, assertion_type="not_null", column="missing"),
    ]
    rows = [(1, "new", 5.0), (1, "paid", 50.0), (None, "lost", 500.0), (2, None, -1.0)]
    plan, record = measure(rows, "id INTEGER, status VARCHAR, amount DOUBLE", *rules)
    assert plan.sql.count("FROM data") == 1
    assert record["n_rows"] == 4
    assert record[plan.answers[1]] == 1  # one null id
    assert record[plan.answers[2]] == 1  # id 1 twice: one row beyond the first
    assert record[plan.answers[3]] == 1  # 'lost' (the null status is not_null's business)
    assert record[plan.answers[4]] == 2  # 500 and -1
    assert 5 not in plan.answers and "missing" in plan.unmeasurable[6]


def test_accepted_values_compare_as_text_and_range_refuses_non_numbers():
    rules = [
        rule(1, assertion_type="accepted_values", column="code", values=[1, 2, True]),
        rule(2, assertion_type="range", column="label", min=0),
    ]
    plan, record = measure([(1, "3"), (3, "x"), (2, "-1")], "code INTEGER, label VARCHAR", *rules)
    assert record[plan.answers[1]] == 1  # 3
    assert record[plan.answers[2]] == 2  # 'x' is no number, -1 is below 0


def test_column_names_are_quoted():
    weird = rule(1, assertion_type="not_null", column='we"ird col')
    plan, record = measure([(None,), (1,)], '"we""ird col" INTEGER', weird, names=['we"ird col'])
    assert record[plan.answers[1]] == 1


# -- judging ---------------------------------------------------------------------------------------
def test_rate_above_the_allowed_rate_violates_and_tolerance_raises_it():
    not_null = rule(assertion_type="not_null", column="id")
    violated = judge(not_null, 400, 1, 7, NOW)
    assert (violated.status, violated.observed_rate) == (VIOLATED, 0.0025)
    assert "1 of 400 rows" in violated.reason and "above" in violated.reason
    tolerant = dataclasses.replace(not_null, tolerance=0.01)
    assert judge(tolerant, 400, 1, 8, NOW).status == PASSED
    assert judge(tolerant, 400, 5, 8, NOW).status == VIOLATED  # 1.25% > 1%
    assert judge(not_null, 0, 0, 9, NOW).status == PASSED  # no rows, no violations


def test_row_count_and_freshness_are_judged_on_a_count_and_an_age():
    minimum = rule(assertion_type="row_count_min", min=10)
    assert judge(minimum, 9, None, 1, NOW).status == VIOLATED
    assert judge(minimum, 10, None, 1, NOW).status == PASSED
    fresh = rule(assertion_type="freshness_hours", hours=2)
    assert judge(fresh, 0, None, None, NOW, age_hours=2.5).status == VIOLATED
    assert judge(fresh, 0, None, None, NOW, age_hours=1).observed_value == 1


# -- the rule's alert ------------------------------------------------------------------------------
class FakeAlerts:
    def __init__(self):
        self.items: dict[int, Alert] = {}
        self.counter = 0

    def next_alert_id(self, project):
        self.counter += 1
        return self.counter

    def add(self, alert, once_key=None, once_for=None):
        self.items[alert.id] = alert
        return True

    def get(self, project, alert_id):
        return self.items.get(alert_id)

    def refresh(self, project, alert, details, message, now):
        return self.transition(project, alert.id, ("active",), "active", now, details, message) is not None

    def transition(
        self, project, alert_id, from_statuses, to_status, now, details=None, message=None, by=None
    ):
        current = self.items.get(alert_id)
        if current is None or current.status not in from_statuses:
            return None
        changed = dataclasses.replace(
            current,
            status=to_status,
            details=details if details is not None else current.details,
            message=message or current.message,
        )
        self.items[alert_id] = changed
        return changed


class FakeRules:
    def __init__(self, rules):
        self.rules = {r.id: r for r in rules}
        self.checks = []

    def of_dataset(self, project, name):
        return [r for r in self.rules.values() if r.dataset_name == name]

    def list(self, project, dataset_name=None):
        return list(self.rules.values())

    def record_check(self, project, rule, outcome, alert_id):
        self.rules[rule.id] = dataclasses.replace(self.rules[rule.id], last_check=outcome.view())
        self.checks.append(outcome)

    def claim_alert(self, project, rule_id, previous, alert_id):
        if self.rules[rule_id].alert_id != previous:
            return False
        self.rules[rule_id] = dataclasses.replace(self.rules[rule_id], alert_id=alert_id)
        return True


class FixedMeasurer:
    def __init__(self):
        self.violations = 0
        self.calls = 0

    def measure(self, project, key, sql):
        self.calls += 1
        return {"n_rows": 400, "v_1": self.violations}


@pytest.fixture
def quality():
    alerts, publisher = FakeAlerts(), RecordingPublisher()
    rules = FakeRules([rule(1, assertion_type="not_null", column="id")])
    measurer = FixedMeasurer()
    service = DataQuality(rules, alerts, Alerting(alerts, publisher), measurer, clock=lambda: NOW)
    return service, rules, alerts, measurer, publisher


def write(service, run_id, columns=("id",)):
    return service.after_write("acme", run_id, 3, "orders", "key", list(columns), 400)


def test_a_violation_raises_one_alert_then_refreshes_it(quality):
    service, rules, alerts, measurer, publisher = quality
    measurer.violations = 1
    assert write(service, 1)[0].status == VIOLATED
    assert write(service, 2)[0].status == VIOLATED
    assert len(alerts.items) == 1 and measurer.calls == 2
    (alert,) = alerts.items.values()
    assert (alert.type, alert.dataset_name, alert.rule_id, alert.run_id) == ("data_quality", "orders", 1, 1)
    assert alert.details["run_id"] == "run-2" and len(publisher.events) == 1


def test_dismissed_comes_back_only_when_the_value_changes_and_a_pass_resolves(quality):
    service, rules, alerts, measurer, publisher = quality
    measurer.violations = 1
    write(service, 1)
    alerts.transition("acme", 1, ("active",), "dismissed", NOW)
    write(service, 2)
    assert alerts.items[1].status == "dismissed"
    measurer.violations = 3
    write(service, 3)
    assert alerts.items[1].status == "active" and len(publisher.events) == 2
    measurer.violations = 0
    write(service, 4)
    assert alerts.items[1].status == "resolved" and len(alerts.items) == 1
    measurer.violations = 2
    write(service, 5)
    assert len(alerts.items) == 2  # after a resolve, a new violation is a new alert


def test_a_missing_column_is_reported_not_alerted(quality):
    service, rules, alerts, measurer, _ = quality
    (outcome,) = write(service, 1, columns=("other",))
    assert outcome.status == NOT_CHECKABLE and "column 'id'" in outcome.reason
    assert not alerts.items and rules.rules[1].last_check["status"] == NOT_CHECKABLE


# -- API health ----------------------------------------------------------------------------------
def test_local_api_health_keeps_the_last_hour_per_area():
    from sluice.domain.api_health import LocalRecorder, percentile

    now = [1000.0]
    recorder = LocalRecorder(clock=lambda: now[0])
    recorder.record("runs", 200, 500.0, "acme")  # an hour and more ago by the time of the report
    now[0] += 3601
    for ms, status in [(10, 200), (20, 200), (30, 404), (40, 500)]:
        recorder.record("runs", status, ms, "acme")
    recorder.record("runs", 200, 99.0, "globex")  # another project's request
    recorder.record("runs", 401, 1.0, None)  # a refused token: no project's
    (runs, monitor) = recorder.health("acme", ["runs", "monitor"])
    assert runs == {
        "router": "runs",
        "requests": 4,
        "error_rate": 25.0,
        "client_error_rate": 25.0,
        "median_latency_ms": 20,
        "p95_latency_ms": 40,
    }
    assert monitor["requests"] == 0 and monitor["median_latency_ms"] is None
    assert percentile([5, 1, 3], 50) == 3 and percentile([], 95) is None
    assert recorder.health("globex", ["runs"])[0]["requests"] == 1


def test_local_api_health_drops_requests_older_than_the_hour_as_new_ones_arrive():
    from sluice.domain.api_health import EVICT_SLACK_SECONDS, LocalRecorder

    now = [0.0]
    recorder = LocalRecorder(keep=50, clock=lambda: now[0])
    for _ in range(7200):  # two hours at one request a second, no report asked for meanwhile
        recorder.record("monitor", 200, 3.0, "acme")
        now[0] += 1
    assert recorder.held() == 50  # at most `keep` per area and project
    roomy = LocalRecorder(clock=lambda: now[0])
    for _ in range(7200):
        roomy.record("monitor", 200, 3.0, "acme")
        now[0] += 1
    assert 3600 <= roomy.held() <= 3600 + EVICT_SLACK_SECONDS + 1  # an hour, not two
    assert roomy.health("acme", ["monitor"])[0]["requests"] == 3600


# -- explainable z-score anomalies (opt-in robust baseline and floor) ------------------------------
def test_watchers_default_rule_is_unchanged_and_robust_baseline_resists_an_outlier():
    from sluice.domain.anomalies import judge as z_judge

    baseline = [10, 11, 12, 13, 500]  # one wild run in the history
    watcher = z_judge(60, baseline, z_threshold=1.0, minimum_executions=5)
    assert (watcher.method, round(watcher.mean, 1)) == ("mean", 109.2) and not watcher.is_anomaly
    robust = z_judge(60, baseline, z_threshold=3.0, minimum_executions=5, method="median")
    assert robust.mean == 12 and round(robust.std, 4) == 1.4826 and robust.is_anomaly
    reason = robust.reason("total_rows", 7, 30)
    assert reason.startswith("total_rows of execution 7 is 60, above the upper bound 16.45")
    assert "median 12 + 3 x MAD x 1.4826 1.483" in reason and "5 successful executions" in reason


def test_min_delta_stops_alerts_on_tiny_tables():
    from sluice.domain.anomalies import judge as z_judge

    tiny = [2, 3, 2, 3, 2]
    assert z_judge(6, tiny, z_threshold=3.0, minimum_executions=5).is_anomaly
    floored = z_judge(6, tiny, z_threshold=3.0, minimum_executions=5, min_delta=10)
    assert not floored.is_anomaly and "under 10 are ignored" in floored.reason("total_rows", 1, 30)
    assert z_judge(40, tiny, z_threshold=3.0, minimum_executions=5, min_delta=10).is_anomaly


def test_external_objects_are_read_by_extension_then_by_content():
    from sluice.adapters.quality import _format_of

    assert [_format_of(k, False) for k in ("a.csv.gz", "b.JSONL", "c.ndjson", "d.json", "e.parquet")] == [
        "csv", "jsonl", "jsonl", "json", "parquet",
    ]  # fmt: skip
    assert (_format_of("export-0001", True), _format_of("export-0001", False)) == ("parquet", "csv")


def test_of_two_runs_that_find_no_open_alert_only_one_raises_it(quality):
    service, rules, alerts, measurer, publisher = quality
    measurer.violations = 1
    stale = rules.rules[1]  # what the second run read before the first raised its alert
    write(service, 1)
    (outcome,) = write(service, 2)
    service.settle("acme", stale, outcome, 3)  # the second run settles on its stale read
    assert len(alerts.items) == 1 and len(publisher.events) == 1
