"""Schedule expressions: 5-field cron, EventBridge cron/rate, and their next firing."""

from __future__ import annotations

import pendulum
import pytest

from sluice.domain.schedules import Rate, parse_cron, parse_eventbridge
from sluice.errors import ValidationFailed

SAT_JAN_31 = pendulum.datetime(2026, 1, 31, 10, 7, tz="UTC")


@pytest.mark.parametrize(
    "expression, expected",
    [
        ("0 */6 * * *", pendulum.datetime(2026, 1, 31, 12, 0, tz="UTC")),
        ("30 9 * * MON-FRI", pendulum.datetime(2026, 2, 2, 9, 30, tz="UTC")),
        ("0 0 29 2 *", pendulum.datetime(2028, 2, 29, 0, 0, tz="UTC")),
        ("*/15 * * * *", pendulum.datetime(2026, 1, 31, 10, 15, tz="UTC")),
        ("0 0 1 * 0", pendulum.datetime(2026, 2, 1, 0, 0, tz="UTC")),  # day 1 OR Sunday: Feb 1 is both
        ("0 12 * * 7", pendulum.datetime(2026, 2, 1, 12, 0, tz="UTC")),  # 7 is Sunday too
        ("5,10 10 31 1 *", pendulum.datetime(2026, 1, 31, 10, 10, tz="UTC")),
        ("5 10 31 1 *", pendulum.datetime(2027, 1, 31, 10, 5, tz="UTC")),
    ],
)
def test_five_field_cron_fires_next_at_the_expected_minute(expression, expected):
    assert parse_cron(expression).next_after(SAT_JAN_31) == expected


def test_next_firing_is_strictly_after_the_given_instant():
    on_the_minute = pendulum.datetime(2026, 1, 31, 12, 0, tz="UTC")
    assert parse_cron("0 */6 * * *").next_after(on_the_minute) == pendulum.datetime(
        2026, 1, 31, 18, 0, tz="UTC"
    )


@pytest.mark.parametrize(
    "expression, reason",
    [
        ("* * * *", "five fields"),
        ("60 * * * *", "outside 0-59"),
        ("* 24 * * *", "outside 0-23"),
        ("* * 0 * *", "outside 1-31"),
        ("* * * 13 *", "outside 1-12"),
        ("*/0 * * * *", "positive"),
        ("5-1 * * * *", "backwards"),
        ("a * * * *", "not a number"),
        ("1,,2 * * * *", "empty list item"),
        ("0 0 31 2 *", "never fires"),
    ],
)
def test_invalid_cron_says_why(expression, reason):
    with pytest.raises(ValidationFailed) as raised:
        parse_cron(expression).next_after(SAT_JAN_31)
    assert reason in raised.value.detail


def test_eventbridge_cron_uses_one_based_weekdays_and_years():
    assert parse_eventbridge("cron(0 3 ? * SUN *)").next_after(SAT_JAN_31) == pendulum.datetime(
        2026, 2, 1, 3, tz="UTC"
    )
    assert parse_eventbridge("cron(0 3 ? * 1 *)").next_after(SAT_JAN_31) == pendulum.datetime(
        2026, 2, 1, 3, tz="UTC"
    )
    assert parse_eventbridge("cron(0 0 1 1 ? 2030)").next_after(SAT_JAN_31) == pendulum.datetime(
        2030, 1, 1, tz="UTC"
    )


def test_rate_keeps_its_phase_from_the_anchor():
    rate = parse_eventbridge("rate(5 minutes)")
    assert isinstance(rate, Rate) and rate.seconds == 300
    anchor = pendulum.datetime(2026, 1, 1, 0, 0, 30, tz="UTC")
    assert rate.next_after(anchor.add(minutes=7), anchor=anchor) == anchor.add(minutes=10)
    assert parse_eventbridge("rate(1 hour)").seconds == 3600
    assert parse_eventbridge("rate(2 seconds)").seconds == 2


@pytest.mark.parametrize(
    "expression", ["every 5 minutes", "rate(0 minutes)", "rate(5 weeks)", "cron(* * * * *)"]
)
def test_invalid_eventbridge_expressions_are_refused(expression):
    with pytest.raises(ValidationFailed):
        parse_eventbridge(expression)
