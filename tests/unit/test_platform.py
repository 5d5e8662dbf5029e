"""The platform's rules without AWS (issue 12): backfill dates and reprocess choices, calendar
days, dashboard ranking, search, scheduler status, live-event fan-out."""

from __future__ import annotations

import datetime as _dt

import pendulum
import pytest

from sluice.auth.principal import Principal, Role
from sluice.domain import live, platform
from sluice.domain.run_engine.backfill import backfill_dates, chosen_dates
from sluice.errors import Unauthorized, ValidationFailed

NOW = pendulum.datetime(2024, 3, 10, 12, tz="UTC")


def test_backfill_dates_are_inclusive_and_at_most_366():
    assert backfill_dates(_dt.date(2024, 2, 28), _dt.date(2024, 3, 1)) == [
        "2024-02-28",
        "2024-02-29",
        "2024-03-01",
    ]
    assert len(backfill_dates(_dt.date(2024, 1, 1), _dt.date(2024, 12, 31))) == 366
    with pytest.raises(ValidationFailed, match="at most 366"):
        backfill_dates(_dt.date(2023, 1, 1), _dt.date(2024, 1, 2))
    with pytest.raises(ValidationFailed, match="before"):
        backfill_dates(_dt.date(2024, 1, 2), _dt.date(2024, 1, 1))


def test_reprocess_chooses_from_each_dates_latest_run():
    dates = ["d1", "d2", "d3", "d4"]
    latest = {"d1": {"status": "success"}, "d2": {"status": "failed"}, "d3": {"status": "cancelled"}}
    assert chosen_dates(dates, latest, "all") == dates
    assert chosen_dates(dates, latest, "failed") == ["d2"]
    assert chosen_dates(dates, latest, "missing") == ["d2", "d3", "d4"]
    with pytest.raises(ValidationFailed):
        chosen_dates(dates, latest, "everything")


class Counters:
    def __init__(self, days, last=None):
        self._days, self._last, self.asked = days, last or {}, []

    def days(self, project, first, last):
        self.asked.append((first, last))
        return {d: i for d, i in self._days.items() if first <= d <= last}

    def last_runs(self, project):
        return self._last


def test_the_calendar_is_every_day_oldest_first_zeros_included_never_below_zero():
    counters = Counters({"2024-03-09": {"total": 3, "success": 2, "failed": 1, "running": -1}})
    days = platform.run_calendar(counters, "p", 3, NOW)
    assert [d["date"] for d in days] == ["2024-03-08", "2024-03-09", "2024-03-10"]
    assert days[1] == {"date": "2024-03-09", "total": 3, "success": 2, "failed": 1, "running": 0,
                       "pending": 0, "cancelled": 0}  # fmt: skip
    assert days[0]["total"] == 0 and counters.asked == [("2024-03-08", "2024-03-10")]
    for bad in (0, 366, -5):
        with pytest.raises(ValidationFailed):
            platform.run_calendar(counters, "p", bad, NOW)


class Reads:
    def __init__(self, pipelines=(), searchable=(), scheduled=()):
        self._pipelines, self._searchable, self._scheduled = (
            list(pipelines),
            list(searchable),
            list(scheduled),
        )

    def pipelines_page(self, project, limit):
        return self._pipelines[:limit]

    def recent_runs(self, project, limit):
        return []

    def searchable(self, project):
        return self._searchable

    def scheduled(self, project):
        return self._scheduled

    def pipeline_names(self, project, ids):
        return {}


def test_the_dashboard_ranks_failing_pipelines_over_seven_days():
    counters = Counters(
        {
            "2024-03-10": {"total": 4, "success": 1, "failed": 3, "failed#1": 1, "failed#2": 2},
            "2024-03-05": {"total": 2, "failed": 2, "failed#1": 2},
            "2024-03-01": {"total": 9, "failed": 9, "failed#3": 9},  # older than 7 days
        },
        {1: {"run_id": 7, "status": "failed", "start_date": "s", "end_date": "e"}},
    )
    reads = Reads(pipelines=[{"id": 1, "name": "one"}, {"id": 2, "name": "two", "status": "paused"}])
    board = platform.dashboard(counters, reads, "p", NOW, lambda run: {})
    assert board["top_failing"] == [
        {"pipeline_id": "pipeline-1", "name": "one", "fail_count": 3},
        {"pipeline_id": "pipeline-2", "name": "two", "fail_count": 2},
    ]
    assert [t["date"] for t in board["trends"]] == [f"2024-03-{d:02d}" for d in range(4, 11)]
    assert board["trends"][-1] == {"date": "2024-03-10", "success": 1, "failed": 3, "total": 4}
    assert board["pipelines"][0]["last_run"]["id"] == "run-7" and board["pipelines"][1]["last_run"] is None
    assert board["pipelines"][1]["status"] == "paused"


def test_search_matches_names_first_then_descriptions_case_insensitively():
    reads = Reads(
        searchable=[
            {"type": "pipeline", "id": "pipeline-1", "name": "Orders", "description": "for USERS"},
            {"type": "connector", "id": "connector-1", "name": "users-db", "description": None},
            {"type": "variable", "id": "X", "name": "X", "description": "nothing"},
        ]
    )
    found = platform.search(reads, "p", "Users", 30)
    assert [f["id"] for f in found] == ["connector-1", "pipeline-1"]
    assert "description" not in found[0] and found[1]["description"] == "for USERS"
    assert len(platform.search(reads, "p", "users", 1)) == 1
    for q, limit in ((None, 30), ("", 30), (" ", 30), ("x", 0), ("x", 101), ("x" * 201, 30)):
        with pytest.raises(ValidationFailed):
            platform.search(reads, "p", q, limit)


def test_scheduler_status_disables_paused_and_inactive_pipelines():
    reads = Reads(
        scheduled=[
            {"id": 1, "name": "a", "schedule": "0 */6 * * *"},
            {"id": 2, "name": "b", "schedule": "0 2 * * *", "status": "paused"},
            {"id": 3, "name": "c", "schedule": "5 * * * *", "active": False},
        ]
    )
    entries = platform.scheduler_status(reads, "p", NOW)
    assert [(e["pipeline_id"], e["enabled"]) for e in entries] == [
        ("pipeline-1", True),
        ("pipeline-2", False),
        ("pipeline-3", False),
    ]
    assert entries[0]["next_run_at"] == "2024-03-10T18:00:00Z" and entries[1]["next_run_at"] is None


class Connections:
    def __init__(self):
        self.open: dict[str, list[str]] = {}

    def add(self, project, connection_id, subject, expires_at):
        self.open.setdefault(project, []).append(connection_id)

    def remove(self, connection_id):
        for ids in self.open.values():
            if connection_id in ids:
                ids.remove(connection_id)

    def of_project(self, project, now):
        return list(self.open.get(project, []))


class Poster:
    def __init__(self, gone=()):
        self.sent, self.gone = [], set(gone)

    def post(self, connection_id, message):
        if connection_id in self.gone:
            raise live.Gone(connection_id)
        self.sent.append((connection_id, message))


def test_a_socket_needs_a_valid_token_and_gets_its_projects_events_only():
    connections = Connections()

    def authenticate(token):
        if token != "good":
            raise Unauthorized("bad token")
        return Principal("acme", Role.viewer, "u")

    with pytest.raises(Unauthorized):
        live.connect("c0", None, authenticate, connections, 0)
    with pytest.raises(Unauthorized):
        live.connect("c0", "bad", authenticate, connections, 0)
    live.connect("c1", "good", authenticate, connections, 0)
    live.connect("c2", "good", authenticate, connections, 0)
    connections.add("other", "c3", "x", 0)
    poster = Poster(gone={"c2"})
    detail = {
        "project": "acme",
        "run_id": "run-1",
        "node_id": "n",
        "lines": [{"message": "a"}, {"message": "b"}],
    }
    done = live.fan_out(live.LOG_LINES, detail, connections, poster, 0)
    assert done == {"connections": 2, "sent": 2, "gone": 1}
    assert [(c, m["message"], m["type"]) for c, m in poster.sent] == [("c1", "a", "log"), ("c1", "b", "log")]
    assert "project" not in poster.sent[0][1] and connections.of_project("acme", 0) == ["c1"]
    assert live.fan_out("execution.ended", {"project": "acme"}, connections, poster, 0)["sent"] == 0
