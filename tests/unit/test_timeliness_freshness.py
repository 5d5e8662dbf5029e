"""Timeliness and freshness rules (SPEC 7): which allowance applies, mute flags, calendar-aware
deadlines, and the checks' once-only records, on fakes."""

from __future__ import annotations

import pendulum
import pytest

from sluice.domain.alerts import Alerting
from sluice.domain.events import ALERT_RAISED, QueueDepth, RecordingPublisher
from sluice.domain.executions import Run, WatchedPipeline, WatchedPipelineType
from sluice.domain.monitoring import (
    Sla,
    check_freshness,
    check_timeliness,
    checked_sla,
    freshness_report,
    is_late,
    is_muted,
    is_stale,
    monitor_queue,
    queue_severity,
    sla_of,
)
from sluice.errors import Unavailable, ValidationFailed

NOW = pendulum.datetime(2024, 3, 1, 12, tz="UTC")


def pipeline(**overrides) -> WatchedPipeline:
    return WatchedPipeline(**{"id": 1, "name": "orders", "pipeline_type_id": 1, **overrides})


def pipeline_type(**overrides) -> WatchedPipelineType:
    return WatchedPipelineType(**{"id": 1, "name": "extraction", **overrides})


# -- which allowance ------------------------------------------------------------------------------------
def test_the_pipelines_own_pair_wins_over_its_types():
    own = pipeline(timeliness_number=2, timeliness_datepart="hour")
    kind = pipeline_type(timeliness_number=1, timeliness_datepart="day")

    assert sla_of("timeliness", own, kind) == Sla(2, "hour", from_pipeline=True)
    assert sla_of("timeliness", pipeline(), kind) == Sla(1, "day", from_pipeline=False)
    assert sla_of("timeliness", pipeline(), pipeline_type()) is None
    assert sla_of("timeliness", pipeline(), None) is None


def test_a_half_pair_falls_back_to_the_type():
    half = pipeline(freshness_number=5, freshness_datepart=None)
    assert sla_of("freshness", half, pipeline_type(freshness_number=24, freshness_datepart="hour")) == Sla(
        24, "hour", from_pipeline=False
    )


@pytest.mark.parametrize(
    ("pipeline_mute", "type_mute", "muted"), [(False, False, False), (True, False, True), (False, True, True)]
)
def test_either_mute_flag_silences_the_check(pipeline_mute, type_mute, muted):
    own = pipeline(freshness_number=1, freshness_datepart="hour", mute_freshness_check=pipeline_mute)
    kind = pipeline_type(mute_freshness_check=type_mute)

    assert is_muted("freshness", own, kind) is muted
    assert (checked_sla("freshness", own, kind) is None) is muted
    assert not is_muted("timeliness", own, kind)


# -- deadlines -----------------------------------------------------------------------------------------
def test_deadlines_add_calendar_units():
    jan_31 = pendulum.datetime(2024, 1, 31, 10, tz="UTC")

    assert Sla(1, "month", True).deadline(jan_31) == pendulum.datetime(2024, 2, 29, 10, tz="UTC")
    assert Sla(1, "year", True).deadline(pendulum.datetime(2024, 2, 29, tz="UTC")) == pendulum.datetime(
        2025, 2, 28, tz="UTC"
    )
    assert Sla(2, "week", True).deadline(jan_31) == pendulum.datetime(2024, 2, 14, 10, tz="UTC")
    assert Sla(90, "minute", True).deadline(jan_31) == pendulum.datetime(2024, 1, 31, 11, 30, tz="UTC")
    with pytest.raises(ValidationFailed):
        Sla(1, "fortnight", True).deadline(jan_31)


def running(start, **overrides) -> Run:
    return Run(**{"id": 1, "pipeline_id": 1, "status": "running", "start_date": start, **overrides})


def test_late_means_running_past_the_deadline_or_succeeding_after_it():
    start = NOW.subtract(hours=3)
    deadline = start.add(hours=2)

    assert is_late(running(start), deadline, NOW)
    assert not is_late(running(start), deadline, start.add(hours=1))
    late_end = dict(status="success", end_date=start.add(hours=2, seconds=1), completed_successfully=True)
    assert is_late(running(start, **late_end), deadline, NOW)
    on_time = dict(status="success", end_date=deadline, completed_successfully=True)
    assert not is_late(running(start, **on_time), deadline, NOW)
    failed_late = dict(status="failed", end_date=start.add(hours=3), completed_successfully=False)
    assert not is_late(running(start, **failed_late), deadline, NOW)


def test_stale_when_the_deadline_after_the_last_write_has_passed():
    sla = Sla(1, "month", True)
    assert is_stale(pendulum.datetime(2024, 1, 31, tz="UTC"), sla, NOW)  # deadline Feb 29 < Mar 1
    assert not is_stale(pendulum.datetime(2024, 2, 1, 12, tz="UTC"), sla, NOW)  # deadline = now, not past


# -- the checks on fakes ----------------------------------------------------------------------------------
class FakeCatalog:
    def __init__(self, pipelines, types):
        self.pipelines = {p.id: p for p in pipelines}
        self._types = {t.id: t for t in types}

    def get(self, project, pipeline_id):
        return self.pipelines.get(pipeline_id)

    def get_type(self, project, type_id):
        return self._types.get(type_id)

    def all(self, project):
        return list(self.pipelines.values())

    def types(self, project):
        return dict(self._types)


class FakeStartedRuns:
    def __init__(self, runs):
        self.runs = runs

    def started_between(self, project, since, until):
        return [r for r in self.runs if since <= r.start_date <= until]


class FakeChecks:
    def __init__(self):
        self.late, self.stale, self.alerts = {}, {}, []

    def has_timeliness_record(self, project, run_id):
        return run_id in self.late

    def record_late_execution(self, project, record, alert):
        if record.execution_id in self.late:
            return False
        self.late[record.execution_id] = record
        self.alerts.append(alert)
        return True

    def has_freshness_record(self, project, pipeline_id, last_dml):
        return (pipeline_id, last_dml) in self.stale

    def record_stale_pipeline(self, project, record, alert):
        key = (record.pipeline_id, record.last_dml)
        if key in self.stale:
            return False
        self.stale[key] = record
        self.alerts.append(alert)
        return True


class CountingAlerts:
    def __init__(self):
        self.ids = 0
        self.added = []

    def next_alert_id(self, project):
        self.ids += 1
        return self.ids

    def add(self, alert, once_key=None, once_for=None):
        if once_key and any(key == once_key for key, _ in self.added):
            return False
        self.added.append((once_key, alert))
        return True


def alerting():
    publisher = RecordingPublisher()
    return Alerting(CountingAlerts(), publisher), publisher


def test_a_late_running_execution_is_recorded_once_however_often_the_check_runs():
    catalog = FakeCatalog([pipeline(timeliness_number=1, timeliness_datepart="hour")], [pipeline_type()])
    runs = FakeStartedRuns([running(NOW.subtract(minutes=90))])
    checks = FakeChecks()
    desk, publisher = alerting()

    for minute in range(0, 30, 5):
        check_timeliness("acme", 120, NOW.add(minutes=minute), runs, catalog, checks, desk)

    assert list(checks.late) == [1]
    assert checks.late[1].execution_status == "running"
    assert len(publisher.of_type(ALERT_RAISED)) == 1


def test_timeliness_skips_muted_unconfigured_and_old_executions():
    catalog = FakeCatalog(
        [
            pipeline(id=1, timeliness_number=1, timeliness_datepart="hour", mute_timeliness_check=True),
            pipeline(id=2, pipeline_type_id=2),  # its type is muted
            pipeline(id=3, pipeline_type_id=3),  # nothing configured anywhere
            pipeline(id=4, timeliness_number=1, timeliness_datepart="hour"),
        ],
        [
            pipeline_type(
                id=2, timeliness_number=1, timeliness_datepart="minute", mute_timeliness_check=True
            ),
            pipeline_type(id=3),
        ],
    )
    old = NOW.subtract(hours=5)
    runs = FakeStartedRuns(
        [
            running(NOW.subtract(minutes=90), id=1, pipeline_id=1),
            running(NOW.subtract(minutes=90), id=2, pipeline_id=2),
            running(NOW.subtract(minutes=90), id=3, pipeline_id=3),
            running(old, id=4, pipeline_id=4),  # late, but started before the lookback
        ]
    )
    checks = FakeChecks()

    found = check_timeliness("acme", 120, NOW, runs, catalog, checks, alerting()[0])

    assert found == []
    with pytest.raises(ValidationFailed):
        check_timeliness("acme", 4, NOW, runs, catalog, checks, alerting()[0])


def test_type_allowance_applies_when_the_pipeline_has_none():
    catalog = FakeCatalog([pipeline()], [pipeline_type(timeliness_number=30, timeliness_datepart="minute")])
    start = NOW.subtract(minutes=50)
    ended_late = running(
        start,
        status="success",
        end_date=start.add(minutes=45),
        completed_successfully=True,
        duration_seconds=2700,
    )
    checks = FakeChecks()

    found = check_timeliness("acme", 60, NOW, FakeStartedRuns([ended_late]), catalog, checks, alerting()[0])

    assert [(r.execution_status, r.sla.from_pipeline, r.seconds_late) for r in found] == [
        ("completed", False, 900)
    ]


def test_a_stale_pipeline_is_recorded_once_per_last_write():
    last = NOW.subtract(days=2)
    catalog = FakeCatalog(
        [pipeline(freshness_number=24, freshness_datepart="hour", last_target_insert=last)], [pipeline_type()]
    )
    checks = FakeChecks()
    desk, publisher = alerting()

    check_freshness("acme", NOW, catalog, checks, desk)
    check_freshness("acme", NOW.add(hours=1), catalog, checks, desk)
    assert len(checks.stale) == 1

    # A new write that is itself stale again makes a second record
    catalog.pipelines[1] = pipeline(
        freshness_number=24,
        freshness_datepart="hour",
        last_target_insert=last,
        last_target_update=last.add(hours=1),
    )
    check_freshness("acme", NOW.add(hours=2), catalog, checks, desk)
    assert len(checks.stale) == 2
    assert len(publisher.of_type(ALERT_RAISED)) == 2


def test_freshness_skips_muted_fresh_and_never_written_pipelines():
    catalog = FakeCatalog(
        [
            pipeline(
                id=1,
                freshness_number=1,
                freshness_datepart="hour",
                last_target_insert=NOW.subtract(days=1),
                mute_freshness_check=True,
            ),
            pipeline(id=2, last_target_insert=NOW.subtract(days=1), pipeline_type_id=2),
            pipeline(
                id=3, freshness_number=1, freshness_datepart="day", last_target_insert=NOW.subtract(hours=1)
            ),
            pipeline(id=4, freshness_number=1, freshness_datepart="hour"),
        ],
        [
            pipeline_type(id=1),
            pipeline_type(id=2, freshness_number=1, freshness_datepart="hour", mute_freshness_check=True),
        ],
    )

    assert check_freshness("acme", NOW, catalog, FakeChecks(), alerting()[0]) == []


def test_freshness_report_lists_every_pipeline():
    catalog = FakeCatalog(
        [
            pipeline(
                id=1,
                name="stale",
                freshness_number=24,
                freshness_datepart="hour",
                last_target_insert=NOW.subtract(days=2),
            ),
            pipeline(id=2, name="fresh", pipeline_type_id=2, last_target_update=NOW.subtract(hours=1)),
            pipeline(id=3, name="no allowance", pipeline_type_id=1),
            pipeline(id=4, name="never written", freshness_number=1, freshness_datepart="day"),
        ],
        [pipeline_type(id=1), pipeline_type(id=2, freshness_number=1, freshness_datepart="day")],
    )

    report = freshness_report("acme", NOW, catalog)

    assert [(r["pipeline_name"], r["freshness_threshold"], r["is_fresh"]) for r in report] == [
        ("stale", "24 hour", False),
        ("fresh", "1 day", True),
        ("no allowance", None, True),
        ("never written", "1 day", False),
    ]
    assert report[0]["last_refresh_at"] == "2024-02-28T12:00:00Z"


# -- queue monitor -------------------------------------------------------------------------------------------
class FixedQueue:
    def __init__(self, depth=None):
        self._depth = depth

    def depth(self):
        if self._depth is None:
            raise Unavailable("The run queue could not be read: no such queue.")
        return self._depth


@pytest.mark.parametrize(
    ("total", "severity"), [(49, None), (50, "warning"), (99, "warning"), (100, "critical")]
)
def test_queue_thresholds(total, severity):
    assert queue_severity(total) == severity


def test_queue_monitor_reports_depth_and_alerts_once_an_hour():
    desk, publisher = alerting()
    queue = FixedQueue(QueueDepth(visible=40, in_flight=15, delayed=5))

    report = monitor_queue(["acme"], queue, desk, NOW)
    monitor_queue(["acme"], queue, desk, NOW.add(minutes=5))

    assert report == {"status": "success", "total_pending": 60, "visible": 40, "in_flight": 15, "delayed": 5}
    raised = publisher.of_type(ALERT_RAISED)
    assert [(a["alert"]["type"], a["alert"]["severity"]) for a in raised] == [("queue", "warning")]
    assert monitor_queue(["acme"], FixedQueue(), desk, NOW)["status"] == "error"
