"""The Run state machine on Step Functions: starting a run's execution and reading its status (the
reconciler's `execution_status`)."""

from __future__ import annotations

import contextlib
import json
import os

from sluice import aws
from sluice.domain.run_engine.ports import EXECUTION_MISSING


class StepFunctionsRuns:
    """Starting and describing Run state machine executions by name."""

    def __init__(self, state_machine_arn: str | None = None):
        self.arn = state_machine_arn or os.environ.get("RUN_STATE_MACHINE_ARN", "")

    def start(self, name: str, project: str, run_id: int) -> None:
        client = aws.client("stepfunctions")
        # A redelivered message: the run's execution is already going.
        with contextlib.suppress(client.exceptions.ExecutionAlreadyExists):
            client.start_execution(
                stateMachineArn=self.arn, name=name, input=json.dumps({"project": project, "run_id": run_id})
            )

    def status(self, name: str) -> str | None:
        client = aws.client("stepfunctions")
        execution_arn = self.arn.replace(":stateMachine:", ":execution:") + f":{name}"
        try:
            return client.describe_execution(executionArn=execution_arn)["status"]
        except client.exceptions.ExecutionDoesNotExist:
            return EXECUTION_MISSING


class StepFunctionsBackfills:
    """Starting Backfill state machine executions (statemachines/backfill.asl.json)."""

    def __init__(self, state_machine_arn: str | None = None):
        self.arn = state_machine_arn or os.environ.get("BACKFILL_STATE_MACHINE_ARN", "")

    def start(self, name: str, payload: dict) -> None:
        if not self.arn:
            raise RuntimeError("BACKFILL_STATE_MACHINE_ARN is not set")
        client = aws.client("stepfunctions")
        with contextlib.suppress(client.exceptions.ExecutionAlreadyExists):
            client.start_execution(stateMachineArn=self.arn, name=name, input=json.dumps(payload))

    def status(self, name: str) -> str | None:
        """The Backfill execution's status (EXECUTION_MISSING when Step Functions has none)."""
        if not self.arn:
            return None
        client = aws.client("stepfunctions")
        execution_arn = self.arn.replace(":stateMachine:", ":execution:") + f":{name}"
        try:
            return client.describe_execution(executionArn=execution_arn)["status"]
        except client.exceptions.ExecutionDoesNotExist:
            return EXECUTION_MISSING
