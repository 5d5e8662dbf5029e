"""The local EventBridge scheduler: fires the scheduled rules that the stack created from template.yaml.

moto stores schedule rules but never fires them; this thread reads them through the EventBridge
API, computes each rule's next firing, and hands the scheduled event to the rule's targets.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable
from typing import Any

import boto3
import pendulum

from sluice import timeutil
from sluice.domain.schedules import Rate, parse_eventbridge
from sluice.local.functions import ACCOUNT, REGION

Dispatch = Callable[[str, Any], None]  # (target arn, event)


def scheduled_event(rule_arn: str, moment: pendulum.DateTime) -> dict[str, Any]:
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": ACCOUNT,
        "time": timeutil.iso(moment.replace(microsecond=0)),
        "region": REGION,
        "resources": [rule_arn],
        "detail": {},
    }


class Scheduler:
    def __init__(
        self,
        endpoint: str,
        dispatch: Dispatch,
        tick_seconds: float = 0.5,
        overrides: dict[str, str] | None = None,
        clients: Callable[[str], Any] | None = None,
    ):
        # The stack hands its in-process clients; alone (tests), the scheduler talks to `endpoint`.
        make = clients or (lambda service: boto3.client(service, endpoint_url=endpoint))
        self.events = make("events")
        self.scheduler = make("scheduler")
        self._schedule_details: dict[str, tuple[Any, dict[str, Any]]] = {}  # name -> (modified, schedule)
        self.dispatch = dispatch
        self.tick_seconds = tick_seconds
        self.overrides = overrides or {}  # rule name -> expression to use instead of the rule's own
        self.fired: dict[str, int] = {}  # rule name -> times fired (for tests and `sluice dev` logs)
        self._next: dict[str, pendulum.DateTime] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._started = timeutil.now()

    def rules(self) -> list[dict[str, Any]]:
        found, token = [], None
        while True:
            kwargs = {"NextToken": token} if token else {}
            page = self.events.list_rules(**kwargs)
            found.extend(r for r in page.get("Rules", []) if r.get("ScheduleExpression"))
            token = page.get("NextToken")
            if not token:
                return found

    def tick(self, now: pendulum.DateTime | None = None) -> int:
        """Fire every enabled scheduled rule that is due; returns how many fired."""
        now = now or timeutil.now()
        fired = 0
        for rule in self.rules():
            name = rule["Name"]
            if rule.get("State", "ENABLED") != "ENABLED":
                continue
            schedule = parse_eventbridge(self.overrides.get(name, rule["ScheduleExpression"]))
            due = self._next.get(name)
            if due is None:
                if isinstance(schedule, Rate):
                    due = schedule.next_after(now, anchor=self._started)
                else:
                    due = schedule.next_after(now)
                self._next[name] = due
            if now < due:
                continue
            self._next[name] = (
                schedule.next_after(now, anchor=self._started)
                if isinstance(schedule, Rate)
                else schedule.next_after(now)
            )
            self._fire(rule, due)
            fired += 1
        return fired + self._tick_schedules(now)

    # -- EventBridge Scheduler (pipeline cron schedules) ------------------------------------------
    def schedules(self) -> list[dict[str, Any]]:
        """Every enabled EventBridge Scheduler schedule, with its expression and target."""
        found, token = [], None
        while True:
            page = self.scheduler.list_schedules(**({"NextToken": token} if token else {}))
            for summary in page.get("Schedules", []):
                key = f"{summary.get('GroupName', 'default')}/{summary['Name']}"
                cached = self._schedule_details.get(key)
                if cached is None or cached[0] != summary.get("LastModificationDate"):
                    detail = self.scheduler.get_schedule(
                        Name=summary["Name"], GroupName=summary.get("GroupName", "default")
                    )
                    cached = (summary.get("LastModificationDate"), detail)
                    self._schedule_details[key] = cached
                    self._next.pop(f"schedule:{key}", None)
                if cached[1].get("State", "ENABLED") == "ENABLED":
                    found.append({**cached[1], "_key": key})
            token = page.get("NextToken")
            if not token:
                return found

    def _tick_schedules(self, now: pendulum.DateTime) -> int:
        fired = 0
        for schedule in self.schedules():
            name = f"schedule:{schedule['_key']}"
            expression = schedule["ScheduleExpression"]
            if expression.startswith("at("):
                moment = pendulum.parse(
                    expression[3:-1], tz=schedule.get("ScheduleExpressionTimezone") or "UTC"
                )
                if self.fired.get(name) or now < moment:
                    continue
                due = moment
            else:
                parsed = parse_eventbridge(expression)
                due = self._next.get(name)
                if due is None:
                    due = (
                        parsed.next_after(now, anchor=self._started)
                        if isinstance(parsed, Rate)
                        else parsed.next_after(now)
                    )
                    self._next[name] = due
                if now < due:
                    continue
                self._next[name] = (
                    parsed.next_after(now, anchor=self._started)
                    if isinstance(parsed, Rate)
                    else parsed.next_after(now)
                )
            self.fired[name] = self.fired.get(name, 0) + 1
            target = schedule["Target"]
            self.dispatch(target["Arn"], json.loads(target["Input"]) if target.get("Input") else {})
            fired += 1
        return fired

    def _fire(self, rule: dict[str, Any], moment: pendulum.DateTime) -> None:
        self.fired[rule["Name"]] = self.fired.get(rule["Name"], 0) + 1
        event = scheduled_event(rule["Arn"], moment)
        targets = self.events.list_targets_by_rule(Rule=rule["Name"]).get("Targets", [])
        for target in targets:
            payload = json.loads(target["Input"]) if target.get("Input") else event
            self.dispatch(target["Arn"], payload)

    def _run(self) -> None:
        while not self._stop.wait(self.tick_seconds):
            try:
                self.tick()
            except Exception:  # a bad rule must not stop the other schedules
                import logging

                logging.getLogger("sluice.local").exception("scheduler tick failed")

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="sluice-scheduler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)
