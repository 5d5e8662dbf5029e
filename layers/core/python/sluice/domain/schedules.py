"""Schedule expressions: 5-field cron (seed 001), EventBridge `cron(...)` and `rate(...)`.

One parser serves pipeline schedules and the local stack's scheduler; `next_after` gives the
next firing strictly after an instant (UTC, minute resolution; `rate` keeps its own phase).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pendulum

from sluice.errors import ValidationFailed

MONTH_NAMES = {
    m: i
    for i, m in enumerate(
        ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"], 1
    )
}
DAY_NAMES = {d: i for i, d in enumerate(["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"])}  # 0 = Sunday
RATE_UNITS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}


@dataclass(frozen=True)
class Cron:
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday
    days_restricted: bool
    weekdays_restricted: bool
    years: frozenset[int] | None = None

    def matches_day(self, moment: pendulum.DateTime) -> bool:
        day_ok = moment.day in self.days
        weekday_ok = (moment.isoweekday() % 7) in self.weekdays
        if self.days_restricted and self.weekdays_restricted:
            return day_ok or weekday_ok  # classic cron: either restriction admits the day
        return day_ok and weekday_ok

    def next_after(self, moment: pendulum.DateTime) -> pendulum.DateTime:
        candidate = moment.in_timezone("UTC").replace(second=0, microsecond=0).add(minutes=1)
        limit = candidate.add(years=5)
        while candidate <= limit:
            if self.years is not None and candidate.year not in self.years:
                future = [y for y in self.years if y > candidate.year]
                if not future:
                    break
                candidate = pendulum.datetime(min(future), 1, 1, tz="UTC")
                continue
            if candidate.month not in self.months:
                candidate = candidate.start_of("month").add(months=1)
                continue
            if not self.matches_day(candidate):
                candidate = candidate.start_of("day").add(days=1)
                continue
            if candidate.hour not in self.hours:
                candidate = candidate.start_of("hour").add(hours=1)
                continue
            if candidate.minute not in self.minutes:
                candidate = candidate.add(minutes=1)
                continue
            return candidate
        raise ValidationFailed("schedule never fires in the next five years.")


@dataclass(frozen=True)
class Rate:
    seconds: int

    def next_after(
        self, moment: pendulum.DateTime, anchor: pendulum.DateTime | None = None
    ) -> pendulum.DateTime:
        base = anchor or moment
        elapsed = (moment - base).total_seconds()
        steps = int(elapsed // self.seconds) + 1 if elapsed >= 0 else 1
        return base.add(seconds=steps * self.seconds)


def _parse_field(text: str, low: int, high: int, names: dict[str, int] | None, label: str) -> frozenset[int]:
    values: set[int] = set()
    for part in text.split(","):
        if not part:
            raise ValidationFailed(f"cron {label} field '{text}' has an empty list item.")
        step = 1
        stepped = "/" in part
        if stepped:
            part, _, step_text = part.partition("/")
            if not step_text.isdigit() or int(step_text) == 0:
                raise ValidationFailed(f"cron {label} step '{step_text}' must be a positive whole number.")
            step = int(step_text)
        if part in ("*", "?"):
            start, end = low, high
        elif "-" in part:
            first, _, last = part.partition("-")
            start, end = _value(first, low, high, names, label), _value(last, low, high, names, label)
            if start > end:
                raise ValidationFailed(f"cron {label} range '{part}' runs backwards.")
        else:
            start = _value(part, low, high, names, label)
            end = high if stepped else start
        values.update(range(start, end + 1, step))
    return frozenset(values)


def _value(text: str, low: int, high: int, names: dict[str, int] | None, label: str) -> int:
    upper = text.upper()
    if names and upper in names:
        return names[upper]
    if not text.isdigit():
        raise ValidationFailed(f"cron {label} value '{text}' is not a number{' or name' if names else ''}.")
    number = int(text)
    if not low <= number <= high:
        raise ValidationFailed(f"cron {label} value {number} is outside {low}-{high}.")
    return number


def parse_cron(expression: str) -> Cron:
    """A classic 5-field cron: minute hour day-of-month month day-of-week (0 or 7 = Sunday)."""
    if not isinstance(expression, str):
        raise ValidationFailed("schedule must be a string with five cron fields.")
    fields = expression.split()
    if len(fields) != 5:
        raise ValidationFailed(
            f"schedule '{expression}' must have five fields (minute hour day-of-month month day-of-week), "
            f"not {len(fields)}."
        )
    minute, hour, day, month, weekday = fields
    weekdays = _parse_field(weekday, 0, 7, DAY_NAMES, "day-of-week")
    weekdays = frozenset(7 % 7 if w == 7 else w for w in weekdays)
    return Cron(
        minutes=_parse_field(minute, 0, 59, None, "minute"),
        hours=_parse_field(hour, 0, 23, None, "hour"),
        days=_parse_field(day, 1, 31, None, "day-of-month"),
        months=_parse_field(month, 1, 12, MONTH_NAMES, "month"),
        weekdays=weekdays,
        days_restricted=day not in ("*", "?"),
        weekdays_restricted=weekday not in ("*", "?"),
    )


def parse_eventbridge(expression: str) -> Cron | Rate:
    """EventBridge `rate(N unit)` or `cron(min hour dom month dow year)` (dow 1 = Sunday).

    `rate(N seconds)` is accepted for the local stack's tests; EventBridge itself starts at minutes.
    """
    text = expression.strip()
    rate = re.fullmatch(r"rate\(\s*(\d+)\s+(second|minute|hour|day)s?\s*\)", text)
    if rate:
        amount = int(rate.group(1))
        if amount <= 0:
            raise ValidationFailed(f"rate '{expression}' must be positive.")
        return Rate(amount * RATE_UNITS[rate.group(2)])
    cron = re.fullmatch(r"cron\((.*)\)", text)
    if not cron:
        raise ValidationFailed(f"schedule expression '{expression}' is neither rate(...) nor cron(...).")
    fields = cron.group(1).split()
    if len(fields) != 6:
        raise ValidationFailed(f"EventBridge cron '{expression}' must have six fields.")
    minute, hour, day, month, weekday, year = fields
    eb_days = {name: number + 1 for name, number in DAY_NAMES.items()}
    weekdays = frozenset(w - 1 for w in _parse_field(weekday, 1, 7, eb_days, "day-of-week"))
    return Cron(
        minutes=_parse_field(minute, 0, 59, None, "minute"),
        hours=_parse_field(hour, 0, 23, None, "hour"),
        days=_parse_field(day, 1, 31, None, "day-of-month"),
        months=_parse_field(month, 1, 12, MONTH_NAMES, "month"),
        weekdays=weekdays,
        days_restricted=day not in ("*", "?"),
        weekdays_restricted=weekday not in ("*", "?"),
        years=None if year in ("*", "?") else _parse_field(year, 1970, 2199, None, "year"),
    )


# -- 5-field cron -> EventBridge Scheduler ---------------------------------------------------------
EVENTBRIDGE_DAY_NAMES = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")  # index = cron number


def to_eventbridge_cron(expression: str) -> str:
    """A 5-field cron as EventBridge's `cron(min hour day-of-month month day-of-week year)`.

    EventBridge wants `?` in one of the two day fields and names (or 1-7 from Sunday) for days of
    the week, without steps there; days of the week are written out as names. Classic cron fires
    when EITHER restricted day field matches, which EventBridge cannot say: 422.
    """
    cron = parse_cron(expression)
    minute, hour, day, month, weekday = (f.replace("?", "*") for f in expression.split())
    if cron.days_restricted and cron.weekdays_restricted:
        raise ValidationFailed(
            f"schedule '{expression}' restricts both day-of-month and day-of-week; EventBridge Scheduler "
            "cannot express that (classic cron fires when either matches). Restrict only one of them."
        )
    if cron.weekdays_restricted:
        day, weekday = "?", ",".join(EVENTBRIDGE_DAY_NAMES[d] for d in sorted(cron.weekdays))
    else:
        weekday = "?"
    return f"cron({minute} {hour} {day} {month.upper()} {weekday} *)"


def check_schedule(expression: str) -> Cron:
    """A pipeline schedule: a 5-field cron that fires within five years and EventBridge can run."""
    cron = parse_cron(expression)
    to_eventbridge_cron(expression)
    cron.next_after(pendulum.now("UTC"))  # "0 0 30 2 *" parses but never fires: 422
    return cron
