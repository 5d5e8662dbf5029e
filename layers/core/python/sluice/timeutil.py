"""The one place time is parsed and rendered: pendulum in, UTC ISO 8601 with `Z` out."""

from __future__ import annotations

import datetime as _dt

import pendulum

from sluice.errors import ValidationFailed

DATEPARTS = ("minute", "hour", "day", "week", "month", "year")


def now() -> pendulum.DateTime:
    return pendulum.now("UTC")


def parse_instant(value: str | _dt.datetime | _dt.date, field: str = "timestamp") -> pendulum.DateTime:
    """Parse any ISO 8601 input (any offset; naive means UTC) into a UTC instant."""
    try:
        if isinstance(value, pendulum.DateTime):
            parsed = value
        elif isinstance(value, _dt.datetime):
            parsed = pendulum.instance(value, tz="UTC")
        elif isinstance(value, _dt.date):
            parsed = pendulum.datetime(value.year, value.month, value.day, tz="UTC")
        else:
            parsed = pendulum.parse(str(value).strip(), tz="UTC", strict=False)
    except (ValueError, TypeError, pendulum.parsing.exceptions.ParserError) as exc:
        raise ValidationFailed(f"{field} '{value}' is not an ISO 8601 date or time.") from exc
    if not isinstance(parsed, pendulum.DateTime):
        if isinstance(parsed, pendulum.Date):
            return pendulum.datetime(parsed.year, parsed.month, parsed.day, tz="UTC")
        raise ValidationFailed(f"{field} '{value}' is not an ISO 8601 date or time.")
    return parsed.in_timezone("UTC")


def iso(value: _dt.datetime | None) -> str | None:
    """Render an instant as ISO 8601 UTC with a `Z` suffix (microseconds only when present)."""
    if value is None:
        return None
    moment = _utc(value)
    text = _seconds(moment)
    if moment.microsecond:
        text += f".{moment.microsecond:06d}"
    return text + "Z"


def sortable(value: _dt.datetime) -> str:
    """Fixed-width UTC rendering for sort keys: lexical order is time order."""
    moment = _utc(value)
    return _seconds(moment) + f".{moment.microsecond:06d}Z"


def _utc(value: _dt.datetime) -> _dt.datetime:
    """The instant in UTC (naive means UTC), without pendulum's costlier conversion."""
    return value.replace(tzinfo=_dt.UTC) if value.tzinfo is None else value.astimezone(_dt.UTC)


def _seconds(moment: _dt.datetime) -> str:
    """YYYY-MM-DDTHH:mm:ss, exactly as pendulum's format("YYYY-MM-DDTHH:mm:ss") renders it."""
    return (
        f"{moment.year}-{moment.month:02d}-{moment.day:02d}"
        f"T{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}"
    )


def from_stored(text: str | None) -> pendulum.DateTime | None:
    """Read back an instant that Sluice stored itself (always ISO 8601 UTC)."""
    if text is None:
        return None
    return pendulum.parse(text).in_timezone("UTC")


def add_dateparts(moment: pendulum.DateTime, number: int, datepart: str) -> pendulum.DateTime:
    """Calendar-aware addition: a month after Jan 31 is Feb 28/29, as pendulum does it."""
    if datepart not in DATEPARTS:
        raise ValidationFailed(f"datepart must be one of {', '.join(DATEPARTS)}, not '{datepart}'.")
    return moment.add(**{f"{datepart}s": number})
