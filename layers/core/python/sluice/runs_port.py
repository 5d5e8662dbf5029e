"""The run engine's adapters: the SQS run queue, Step Functions, the node engine on S3, lineage
through LineageService, and `run_engine()` wiring them over the table."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Mapping
from typing import Any

from sluice import aws
from sluice.config import settings
from sluice.domain.registry import AddressLineageRequest, AddressUpsert
from sluice.domain.run_engine import RevisionGraphs, RunEngine, drop_folder, scratch_folder
from sluice.errors import Unavailable
from sluice.events import EventBridgePublisher
from sluice.store.pipelines import PipelineDefinitionRepository
from sluice.store.run_control import RunControl
from sluice.store.runs import RunEngineRepository
from sluice.store.table import Table
from sluice.wiring import lineage_service

DATASET_ADDRESS_TYPE = "sluice_dataset"
DATASET_ADDRESS_GROUP = "sluice"


class SqsRunQueue:
    """Pending runs in the FIFO run queue: one message group per project keeps its runs in order."""

    def __init__(self, queue_url: str | None = None):
        self.queue_url = queue_url or settings().run_queue_url

    def send(self, project: str, run_id: int, resend: int = 0) -> None:
        if not self.queue_url:
            raise Unavailable("RUN_QUEUE_URL is not set.")
        # Each re-send has a deduplication id of its own: SQS would drop a re-send inside its
        # 5-minute window under the first send's id, lost message or not.
        deduplication = f"{project}-{run_id}" + (f"-r{resend}" if resend else "")
        aws.client("sqs").send_message(
            QueueUrl=self.queue_url,
            MessageBody=json.dumps({"project": project, "run_id": run_id}),
            MessageGroupId=project,
            MessageDeduplicationId=deduplication,
        )


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
            return "MISSING"


class EngineExecutor:
    """sluice.engine on the data bucket."""

    def __init__(self, storage: Any = None):
        self._storage = storage

    @property
    def storage(self) -> Any:
        if self._storage is None:
            from sluice.engine import Storage

            self._storage = Storage.s3()
        return self._storage

    def run(self, project: str, artifact_run: str, node: dict, inputs: dict[str, str], options: dict) -> Any:
        from sluice.engine import ArtifactRef, NodeRun, RunOptions, execute_node
        from sluice.engine import Node as EngineNode

        run = NodeRun(
            project,
            artifact_run,
            EngineNode.from_dict(node),
            {name: ArtifactRef(key) for name, key in inputs.items()},
            RunOptions.from_dict(options),
        )
        return execute_node(run, self.storage)

    def dry_run(
        self, project: str, nodes: list[tuple[dict, list[str]]], options: dict
    ) -> list[tuple[str, Any]]:
        """Each node on its first rows in one scratch folder, so downstream nodes find upstream
        outputs there; a node whose input failed is skipped (None)."""
        from sluice.engine import (
            ArtifactRef,
            NodeFailed,
            NodeRun,
            RunOptions,
            execute_node,
            node_artifact_key,
        )
        from sluice.engine import Node as EngineNode

        folder = scratch_folder()
        scratch = self.storage.scratch(folder)
        done: dict[str, bool] = {}
        outcomes: list[tuple[str, Any]] = []
        try:
            for spec, upstream in nodes:
                node_id = spec["id"]
                if not all(done.get(u) for u in upstream):
                    done[node_id] = False
                    outcomes.append((node_id, None))
                    continue
                inputs = {
                    u: ArtifactRef(node_artifact_key(project, "dry-run", u, "output.parquet"))
                    for u in upstream
                }
                try:
                    node = EngineNode.from_dict(spec)
                    result = execute_node(
                        NodeRun(project, "dry-run", node, inputs, RunOptions.from_dict(options)), scratch
                    )
                except NodeFailed as failed:
                    done[node_id] = False
                    outcomes.append((node_id, failed))
                    continue
                done[node_id] = True
                outcomes.append((node_id, result))
        finally:
            drop_folder(folder)
        return outcomes


class DatasetLineage:
    """A run's dataset sources and targets as Watcher addresses, linked through LineageService."""

    def __init__(self, table: Table):
        self.service = lineage_service(table)

    def record(self, project: str, pipeline_id: int, sources: list[str], targets: list[str]) -> None:
        def address(name: str) -> AddressUpsert:
            return AddressUpsert(
                name=name,
                address_type_name=DATASET_ADDRESS_TYPE,
                address_type_group_name=DATASET_ADDRESS_GROUP,
            )

        request = AddressLineageRequest(
            pipeline_id=pipeline_id,
            source_addresses=[address(n) for n in sources],
            target_addresses=[address(n) for n in targets],
        )
        self.service.record_address_lineage(project, request)


# Revision graphs never change within a table, so engines of one table share a cache.
_graphs: dict[str, RevisionGraphs] = {}


def forget_revision_graphs() -> None:
    """For tests, whose moto tables share a name but not their contents."""
    _graphs.clear()


def run_engine(table: Table | None = None) -> RunEngine:
    table = table or Table()
    return RunEngine(
        RunEngineRepository(table),
        PipelineDefinitionRepository(table),
        RunControl(table),
        queue=SqsRunQueue(),
        publisher=EventBridgePublisher(),
        lineage=DatasetLineage(table),
        graphs=_graphs.setdefault(table.name, RevisionGraphs()),
    )


def project_variables(project: str) -> Mapping[str, str]:
    from sluice.domain.variables import resolve_variables

    return resolve_variables(project)


def project_flow(project: str, table: Table | None = None) -> Any:
    """The project's flow graph (seed 000) over all its pipelines, read page by page (Queries)."""
    from sluice.domain.flows import FlowGraph

    return FlowGraph.of(PipelineDefinitionRepository(table or Table()).all(project))
