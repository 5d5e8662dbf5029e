"""The run queue's consumer: takes an execution slot for a pending run and starts its Run state
machine execution; a run that finds every slot taken goes back to the queue for a retry soon."""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools import Logger

from sluice import composition

RETRY_AFTER_SECONDS = 2  # a full project's head run is looked at again this soon (FIFO order kept)

logger = Logger(service="runs")


@logger.inject_lambda_context
def on_runs_queued(event: dict[str, Any], context: Any) -> dict[str, Any]:
    failures = []
    engine = composition.run_engine()
    machine = composition.run_state_machine()
    for record in event.get("Records") or []:
        try:
            body = json.loads(record.get("body") or "")
            project, run_id = str(body["project"]), int(body["run_id"])
        except (ValueError, KeyError, TypeError):
            logger.warning("dropping a malformed run message", extra={"body": record.get("body")})
            continue
        try:
            outcome = engine.dispatch(
                project, run_id, lambda name, p=project, r=run_id: machine.start(name, p, r)
            )
        except Exception:
            logger.exception("run not dispatched; retrying", extra={"project": project, "run_id": run_id})
            outcome = "full"
        logger.info("run dispatch", extra={"project": project, "run_id": run_id, "outcome": outcome})
        if outcome == "full":
            _retry_soon(record)
            failures.append({"itemIdentifier": record["messageId"]})
    return {"batchItemFailures": failures}


def _retry_soon(record: dict[str, Any]) -> None:
    composition.run_queue().retry_soon(record["receiptHandle"], RETRY_AFTER_SECONDS)
