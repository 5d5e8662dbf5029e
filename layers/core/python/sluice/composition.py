"""The composition root: the one place that builds Sluice's services, each over its adapters.

Every builder takes no argument, so a route receives what it needs as a FastAPI dependency
(`registry: Registry = Depends(composition.watcher_registry)`; a test swaps one with
`app.dependency_overrides`), and a job calls the same builder directly. A builder makes a fresh
`Table()` (a name and a shared boto3 client, nothing more), so the environment is read per call, as
the local stack and tests need. Imports sit inside each builder: an area loads only the services it
uses at cold start.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sluice import aws
from sluice.store.table import Table

if TYPE_CHECKING:
    from sluice.adapters.live import ConnectionPoster
    from sluice.adapters.node_engine import S3RunArtifacts
    from sluice.adapters.queues import SqsCheckQueue, SqsQueueDepth, SqsRunQueue
    from sluice.adapters.state_machine import StepFunctionsBackfills, StepFunctionsRuns
    from sluice.domain.alerts import Alerting, Notifier
    from sluice.domain.api_health import ApiHealthSource
    from sluice.domain.connectors import Connectors
    from sluice.domain.events import EventPublisher
    from sluice.domain.flow_ai import AiRecipes
    from sluice.domain.flow_codegen import FlowCodegen
    from sluice.domain.flow_recipes import RecipeBook
    from sluice.domain.lineage import DatasetLineage, LineageService
    from sluice.domain.openlineage import OpenLineageIngest
    from sluice.domain.pipelines import PipelineDefinitions, Schedules
    from sluice.domain.project_lineage import ProjectLineage
    from sluice.domain.quality import DataQuality
    from sluice.domain.registry import Registry
    from sluice.domain.run_engine import RevisionGraphs, RunEngine
    from sluice.domain.schemas import Schemas
    from sluice.domain.variables import Variables
    from sluice.store.alerts import AlertRepository
    from sluice.store.anomalies import AnomalyResultRepository, RuleRepository
    from sluice.store.api_keys import ApiKeyRepository
    from sluice.store.checks import CheckRepository
    from sluice.store.executions import ProjectRegistry, RunRepository, WatchedPipelines
    from sluice.store.live import ConnectionRepository
    from sluice.store.platform import PlatformRepository, RunPurge
    from sluice.store.quality import DatasetStateRepository, DbtStatusRepository, QualityRuleRepository
    from sluice.store.run_calendar import RunCalendarRepository
    from sluice.store.runs import RunEngineRepository
    from sluice.store.settings import SettingsRepository

WEBHOOK_ENV = "SLUICE_ALERT_WEBHOOK_URL"


# -- Watcher's registry, lineage and executions -------------------------------------------------
def watcher_registry() -> Registry:
    return _registry(Table())


def lineage_service() -> LineageService:
    return _lineage(Table())


def project_lineage() -> ProjectLineage:
    """`GET /api/lineage`: the project's pipelines, datasets, connectors and variables as one graph."""
    from sluice.domain.project_lineage import ProjectLineage
    from sluice.store.lineage import LineageRepository
    from sluice.store.pipelines import PipelineDefinitionRepository

    table = Table()
    return ProjectLineage(PipelineDefinitionRepository(table), LineageRepository(table))


def openlineage_ingest() -> OpenLineageIngest:
    """`POST /api/v1/lineage`: OpenLineage RunEvents through Watcher's executions and lineage."""
    from sluice.domain.openlineage import OpenLineageIngest
    from sluice.store.openlineage import OpenLineageMarks

    table = Table()
    return OpenLineageIngest(_registry(table), _lineage(table), event_publisher(), OpenLineageMarks(table))


def run_repository() -> RunRepository:
    from sluice.store.executions import RunRepository

    return RunRepository(Table())


def watched_pipelines() -> WatchedPipelines:
    from sluice.store.executions import WatchedPipelines

    return WatchedPipelines(Table())


def project_registry() -> ProjectRegistry:
    from sluice.store.executions import ProjectRegistry

    return ProjectRegistry(Table())


# -- pipeline definitions and the catalog ----------------------------------------------------------
def pipeline_definitions() -> PipelineDefinitions:
    from sluice.domain.pipelines import PipelineDefinitions
    from sluice.store.executions import RunRepository
    from sluice.store.pipelines import PipelineDefinitionRepository

    table = Table()
    return PipelineDefinitions(
        PipelineDefinitionRepository(table), RunRepository(table), configured_schedules(), _lineage(table)
    )


def configured_schedules() -> Schedules:
    """EventBridge Scheduler when its target and role are configured; else schedules are kept only
    in DynamoDB and nothing fires them."""
    from sluice.adapters.schedules import EventBridgeSchedules, UnscheduledPipelines

    target = os.environ.get("PIPELINE_SCHEDULE_TARGET_ARN", "")
    role = os.environ.get("SCHEDULER_ROLE_ARN", "")
    if not target or not role:
        return UnscheduledPipelines()
    return EventBridgeSchedules(target, role)


def connectors() -> Connectors:
    from sluice.domain.connectors import Connectors
    from sluice.store.catalog import ConnectorRepository
    from sluice.store.secrets import SecretStore

    return Connectors(ConnectorRepository(Table()), SecretStore())


def schemas() -> Schemas:
    from sluice.domain.schemas import Schemas
    from sluice.store.catalog import SchemaRepository

    return Schemas(SchemaRepository(Table()))


def variables() -> Variables:
    from sluice.domain.variables import Variables
    from sluice.store.catalog import VariableRepository
    from sluice.store.secrets import SecretStore

    return Variables(VariableRepository(Table()), SecretStore())


def resolve_connector_config(project: str, connector_id: str | int) -> dict[str, Any]:
    """The run engine's entry point: the connector's config with its secret values put back."""
    return connectors().resolve_config(project, connector_id)


def resolve_variables(project: str) -> Mapping[str, str]:
    """The run engine's entry point: every variable of the project with its real value."""
    return variables().resolve(project)


# -- the run engine ----------------------------------------------------------------------------------
def run_engine() -> RunEngine:
    from sluice.adapters.events import EventBridgePublisher
    from sluice.adapters.node_engine import EngineExecutor, S3RunArtifacts
    from sluice.domain.lineage import DatasetLineage
    from sluice.domain.run_engine import RunEngine
    from sluice.store.pipelines import PipelineDefinitionRepository
    from sluice.store.run_calendar import RunCalendarRepository
    from sluice.store.run_control import RunControl
    from sluice.store.runs import RunEngineRepository

    table = Table()
    return RunEngine(
        RunEngineRepository(table),
        PipelineDefinitionRepository(table),
        RunControl(table),
        queue=run_queue(),
        publisher=EventBridgePublisher(),
        lineage=DatasetLineage(_lineage(table)),
        graphs=_revision_graphs(table),
        executor=EngineExecutor(),
        variables=resolve_variables,
        artifacts=S3RunArtifacts(),
        quality=data_quality(),
        backfills=backfill_state_machine(),
        dated_runs=RunCalendarRepository(table),
    )


def run_queue() -> SqsRunQueue:
    from sluice.adapters.queues import SqsRunQueue

    return SqsRunQueue()


def run_state_machine() -> StepFunctionsRuns:
    from sluice.adapters.state_machine import StepFunctionsRuns

    return StepFunctionsRuns()


def backfill_state_machine() -> StepFunctionsBackfills:
    from sluice.adapters.state_machine import StepFunctionsBackfills

    return StepFunctionsBackfills()


# Revision graphs never change within a table, so the engines of one table share a cache. A table
# is its name at one endpoint for as long as the process keeps its AWS clients: a test that points
# the process at a fresh moto account resets them (sluice.aws.reset_clients), and with them this.
_graphs: dict[tuple[int, str | None, str], RevisionGraphs] = {}
_graphs_lock = threading.Lock()


def _revision_graphs(table: Table) -> RevisionGraphs:
    from sluice.domain.run_engine import RevisionGraphs

    key = (aws.client_generation(), os.environ.get("AWS_ENDPOINT_URL"), table.name)
    with _graphs_lock:
        found = _graphs.get(key)
        if found is None:
            for stale in [k for k in _graphs if k[0] != key[0]]:
                del _graphs[stale]
            found = _graphs[key] = RevisionGraphs()
        return found


# -- the platform of seed 002 (issue 12) -------------------------------------------------------------
def run_counters() -> RunCalendarRepository:
    from sluice.store.run_calendar import RunCalendarRepository

    return RunCalendarRepository(Table())


def platform_reads() -> PlatformRepository:
    from sluice.store.platform import PlatformRepository

    return PlatformRepository(Table())


def run_purge() -> RunPurge:
    from sluice.store.platform import RunPurge

    return RunPurge(Table())


def run_folders() -> S3RunArtifacts:
    from sluice.adapters.node_engine import S3RunArtifacts

    return S3RunArtifacts()


def live_connections() -> ConnectionRepository:
    from sluice.store.live import ConnectionRepository

    return ConnectionRepository(Table())


def live_poster() -> ConnectionPoster:
    from sluice.adapters.live import ConnectionPoster

    return ConnectionPoster()


# -- monitoring ------------------------------------------------------------------------------------
def alerting() -> Alerting:
    from sluice.domain.alerts import Alerting
    from sluice.store.alerts import AlertRepository

    return Alerting(AlertRepository(Table()), event_publisher(), configured_notifier())


def configured_notifier() -> Notifier:
    """The webhook notifier when SLUICE_ALERT_WEBHOOK_URL is set, else one that does nothing."""
    from sluice.domain.alerts import SilentNotifier

    url = os.environ.get(WEBHOOK_ENV, "").strip()
    if not url:
        return SilentNotifier()
    from sluice.adapters.webhook import WebhookNotifier

    return WebhookNotifier(url)


def event_publisher() -> EventPublisher:
    from sluice.adapters.events import EventBridgePublisher

    return EventBridgePublisher()


def rule_repository() -> RuleRepository:
    from sluice.store.anomalies import RuleRepository

    return RuleRepository(Table())


def anomaly_results() -> AnomalyResultRepository:
    from sluice.store.anomalies import AnomalyResultRepository

    return AnomalyResultRepository(Table())


def check_repository() -> CheckRepository:
    from sluice.store.checks import CheckRepository

    return CheckRepository(Table())


def check_queue() -> SqsCheckQueue:
    from sluice.adapters.queues import SqsCheckQueue

    return SqsCheckQueue()


def run_queue_depth() -> SqsQueueDepth:
    from sluice.adapters.queues import SqsQueueDepth

    return SqsQueueDepth()


# -- data quality and the alerts inbox (issue 13) ---------------------------------------------------
def data_quality() -> DataQuality:
    from sluice.adapters.quality import DuckDbMeasurer
    from sluice.domain.quality import DataQuality
    from sluice.store.alerts import AlertRepository
    from sluice.store.quality import DatasetStateRepository, DbtStatusRepository, QualityRuleRepository

    table = Table()
    return DataQuality(
        QualityRuleRepository(table),
        AlertRepository(table),
        alerting(),
        DuckDbMeasurer(),
        DatasetStateRepository(table),
        dbt=DbtStatusRepository(table),
    )


def quality_rules() -> QualityRuleRepository:
    from sluice.store.quality import QualityRuleRepository

    return QualityRuleRepository(Table())


def alert_inbox() -> AlertRepository:
    from sluice.store.alerts import AlertRepository

    return AlertRepository(Table())


def dbt_statuses() -> DbtStatusRepository:
    from sluice.store.quality import DbtStatusRepository

    return DbtStatusRepository(Table())


def dataset_lineage() -> DatasetLineage:
    from sluice.domain.lineage import DatasetLineage

    return DatasetLineage(_lineage(Table()))


def run_items() -> RunEngineRepository:
    """The run and node-run items (an uploaded dbt run's models become node runs)."""
    from sluice.store.runs import RunEngineRepository

    return RunEngineRepository(Table())


def dataset_states() -> DatasetStateRepository:
    from sluice.store.quality import DatasetStateRepository

    return DatasetStateRepository(Table())


def api_health_source() -> ApiHealthSource:
    """CloudWatch where the areas emit EMF metrics; with metrics disabled (the local stack), the
    figures this process keeps of every request it served."""
    disabled = os.environ.get("POWERTOOLS_METRICS_DISABLED", "false").strip().lower() in ("1", "true", "yes")
    if disabled:
        from sluice.domain.api_health import RECORDER

        return RECORDER
    from sluice.adapters.api_health import CloudWatchApiHealth

    return CloudWatchApiHealth()


# -- platform --------------------------------------------------------------------------------------
def api_keys() -> ApiKeyRepository:
    from sluice.store.api_keys import ApiKeyRepository

    return ApiKeyRepository(Table())


def project_settings() -> SettingsRepository:
    from sluice.store.settings import SettingsRepository

    return SettingsRepository(Table())


# -- flows: visual recipes (issue 14) ------------------------------------------------------------
def flow_codegen() -> FlowCodegen:
    from sluice.adapters.recipe_engine import EngineRecipes
    from sluice.domain.flow_codegen import FlowCodegen

    return FlowCodegen(EngineRecipes())


def recipe_book() -> RecipeBook:
    """Saved recipes (their pipelines kept in step) and zones."""
    from sluice.adapters.recipe_engine import EngineRecipes, S3ModelFiles
    from sluice.domain.flow_codegen import FlowCodegen
    from sluice.domain.flow_recipes import RecipeBook
    from sluice.store.flows import RecipeRepository, ZoneRepository
    from sluice.store.pipelines import PipelineDefinitionRepository

    table = Table()
    return RecipeBook(
        RecipeRepository(table),
        ZoneRepository(table),
        FlowCodegen(EngineRecipes()),
        S3ModelFiles(),
        pipeline_definitions(),
        PipelineDefinitionRepository(table).all,
    )


def ai_recipes() -> AiRecipes:
    """AI recipes, their pipelines kept in step; the run engine is built only to run or list runs."""
    from sluice.domain.flow_ai import AiRecipes
    from sluice.store.flows import AiRecipeRepository

    return AiRecipes(AiRecipeRepository(Table()), pipeline_definitions(), run_engine)


# -- shared by the builders --------------------------------------------------------------------------
def _registry(table: Table) -> Registry:
    from sluice.domain.registry import Registry
    from sluice.store.registry import (
        AddressRepository,
        AddressTypeRepository,
        PipelineRepository,
        PipelineTypeRepository,
    )

    return Registry(
        PipelineRepository(table),
        PipelineTypeRepository(table),
        AddressRepository(table),
        AddressTypeRepository(table),
    )


def _lineage(table: Table) -> LineageService:
    from sluice.domain.lineage import LineageService
    from sluice.store.lineage import LineageRepository

    return LineageService(LineageRepository(table), _registry(table))
