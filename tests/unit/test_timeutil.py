"""timeutil.iso and sortable render exactly as pendulum's format did (they are stored and compared)."""

from __future__ import annotations

import datetime as _dt

import pendulum
import pytest

from sluice import timeutil


def pendulum_iso(value: _dt.datetime) -> str:
    moment = pendulum.instance(value).in_timezone("UTC")
    text = moment.format("YYYY-MM-DDTHH:mm:ss")
    return text + (f".{moment.microsecond:06d}" if moment.microsecond else "") + "Z"


def pendulum_sortable(value: _dt.datetime) -> str:
    moment = pendulum.instance(value).in_timezone("UTC")
    return moment.format("YYYY-MM-DDTHH:mm:ss") + f".{moment.microsecond:06d}Z"


@pytest.mark.parametrize(
    "value",
    [
        _dt.datetime(2026, 12, 3, 10, 0, 0),  # naive: UTC
        _dt.datetime(2026, 12, 3, 10, 0, 0, 5, tzinfo=_dt.UTC),
        # the next year in UTC
        _dt.datetime(2026, 12, 31, 23, 30, 0, tzinfo=_dt.timezone(_dt.timedelta(hours=-5))),
        _dt.datetime(2026, 1, 1, 0, 15, 0, 999999, tzinfo=_dt.timezone(_dt.timedelta(hours=5, minutes=30))),
        pendulum.datetime(2026, 3, 29, 1, 30, tz="Europe/Paris"),
        _dt.datetime(50, 7, 5, 4, 32, 44, tzinfo=_dt.UTC),  # pendulum does not pad years below 1000
    ],
)
def test_iso_and_sortable_render_as_pendulum_format(value: _dt.datetime) -> None:
    assert timeutil.iso(value) == pendulum_iso(value)
    assert timeutil.sortable(value) == pendulum_sortable(value)
