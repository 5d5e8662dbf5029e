"""Request bodies in JSON or YAML (bombs refused quickly), and 5-field cron as EventBridge cron."""

from __future__ import annotations

import time

import pendulum
import pytest

from sluice.adapters.schedules import schedule_name
from sluice.domain.schedules import check_schedule, parse_cron, parse_eventbridge, to_eventbridge_cron
from sluice.edge.documents import read_document
from sluice.errors import ValidationFailed

YAML = "application/yaml"

BILLION_LAUGHS = """
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""


def refused(raw: str | bytes, content_type: str | None = YAML) -> str:
    with pytest.raises(ValidationFailed) as caught:
        read_document(raw.encode() if isinstance(raw, str) else raw, content_type)
    return caught.value.detail


# -- bodies -------------------------------------------------------------------------------------
def test_yaml_and_json_bodies_read_the_same():
    yaml_text = """
name: user-analytics
version: "1.0"
sources:
  - name: raw
    type: inline
    rows: [{id: 1, day: "2026-01-01"}]
"""
    json_text = '{"name": "user-analytics", "version": "1.0", "sources": [{"name": "raw", "type": "inline", "rows": [{"id": 1, "day": "2026-01-01"}]}]}'
    assert read_document(yaml_text.encode(), "text/yaml; charset=utf-8") == read_document(
        json_text.encode(), "application/json"
    )


def test_yaml_dates_become_iso_strings():
    assert read_document(b"day: 2026-01-01\nat: 2026-01-01T10:00:00+02:00\n", YAML) == {
        "day": "2026-01-01",
        "at": "2026-01-01T08:00:00Z",
    }


def test_a_billion_laughs_document_is_refused_quickly():
    started = time.perf_counter()
    detail = refused(BILLION_LAUGHS)
    assert "anchors and aliases" in detail and "line 2" in detail
    assert time.perf_counter() - started < 0.5


@pytest.mark.parametrize(
    "text, expected",
    [
        ("name: [a, b\nother: 1\n", "not valid YAML at line 2"),
        ("a: 1\n  b: 2\n", "not valid YAML at line 2"),
        ("name: x\n---\nname: y\n", "not valid YAML"),
        ("x: &anchor 1\ny: 2\n", "anchors and aliases"),
        ("[" * 65 + "]" * 65, "nested more than 64 levels"),
        ("1: one\n", "keys must be strings"),
        ("n: .nan\n", ".nan and .inf"),
        ("b: !!binary aGVsbG8=\n", "bytes"),
        ("s: !!set {a, b}\n", "!!set"),
        ("x: !!python/object:os.system {}\n", "not valid YAML"),
    ],
)
def test_yaml_that_is_not_plain_data_is_refused_with_the_reason(text, expected):
    assert expected in refused(text)


@pytest.mark.parametrize(
    "raw, content_type, expected",
    [
        ("{not json", "application/json", "not valid JSON"),
        ("name: yaml-but-sent-as-json", "application/json", "YAML is accepted with Content-Type"),
        ('{"a": NaN}', "application/json", "not valid JSON"),
        ("[" * 100_000 + "]" * 100_000, None, "not valid JSON"),
        ("   ", "application/json", "Request body is required"),
        (b"\xff\xfe\x00", "application/json", "not UTF-8"),
        ("x" * (4 * 1024 * 1024 + 1), "application/json", "larger than 4 MiB"),
    ],
)
def test_bodies_that_are_neither_json_nor_yaml_are_refused(raw, content_type, expected):
    assert expected in refused(raw, content_type)


# -- cron -> EventBridge ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "cron, eventbridge",
    [
        ("0 */6 * * *", "cron(0 */6 * * ? *)"),
        ("30 9 * * MON-FRI", "cron(30 9 ? * MON,TUE,WED,THU,FRI *)"),
        ("30 9 * * 1-5", "cron(30 9 ? * MON,TUE,WED,THU,FRI *)"),
        ("0 12 * * 0", "cron(0 12 ? * SUN *)"),
        ("0 12 * * 7", "cron(0 12 ? * SUN *)"),
        ("0 0 * * */2", "cron(0 0 ? * SUN,TUE,THU,SAT *)"),
        ("15 3 1,15 * *", "cron(15 3 1,15 * ? *)"),
        ("0 0 1 jan *", "cron(0 0 1 JAN ? *)"),
        ("*/5 * ? * *", "cron(*/5 * * * ? *)"),
    ],
)
def test_five_field_cron_becomes_eventbridge_cron(cron, eventbridge):
    assert to_eventbridge_cron(cron) == eventbridge


@pytest.mark.parametrize(
    "cron", ["0 */6 * * *", "30 9 * * 1-5", "0 12 * * 7", "0 0 * * */2", "15 3 1,15 * *", "5 4 29 2 *"]
)
def test_the_eventbridge_form_fires_when_the_cron_does(cron):
    eventbridge = parse_eventbridge(to_eventbridge_cron(cron))
    moment = pendulum.datetime(2026, 1, 31, 10, 7, tz="UTC")
    for _ in range(5):
        expected = parse_cron(cron).next_after(moment)
        assert eventbridge.next_after(moment) == expected
        moment = expected


def test_a_cron_restricting_both_day_fields_cannot_be_expressed_in_eventbridge():
    with pytest.raises(ValidationFailed, match="restricts both day-of-month and day-of-week"):
        to_eventbridge_cron("0 0 1 * MON")


@pytest.mark.parametrize(
    "cron, reason",
    [
        ("0 */6 * *", "must have five fields"),
        ("0 25 * * *", "hour value 25 is outside 0-23"),
        ("@daily", "must have five fields"),
        ("0 0 30 2 *", "never fires"),
        ("0 0 1 * 1", "restricts both"),
    ],
)
def test_a_schedule_that_is_not_a_runnable_five_field_cron_is_refused(cron, reason):
    with pytest.raises(ValidationFailed, match=reason):
        check_schedule(cron)


def test_schedule_names_fit_eventbridge_and_stay_unique():
    assert schedule_name("acme", 7) == "sluice-acme-7"
    long_a, long_b = "a" * 64, "a" * 63 + "b"
    names = {schedule_name(long_a, 123456789012), schedule_name(long_b, 123456789012)}
    assert len(names) == 2 and all(len(n) <= 64 and n.endswith("-123456789012") for n in names)
    assert all(set(n) <= set("abcdefghijklmnopqrstuvwxyz0123456789-_.") for n in names)
