"""The composition root: each domain service built with its DynamoDB-backed adapters, in one place.

Imports sit inside each builder so an area loads only the services it uses at cold start.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sluice.store.table import Table

if TYPE_CHECKING:
    from sluice.domain.lineage import LineageService
    from sluice.domain.pipelines import PipelineDefinitions
    from sluice.domain.registry import Registry


def watcher_registry(table: Table | None = None) -> Registry:
    from sluice.domain.registry import Registry
    from sluice.store.registry import (
        AddressRepository,
        AddressTypeRepository,
        PipelineRepository,
        PipelineTypeRepository,
    )

    table = table or Table()
    return Registry(
        PipelineRepository(table),
        PipelineTypeRepository(table),
        AddressRepository(table),
        AddressTypeRepository(table),
    )


def lineage_service(table: Table | None = None) -> LineageService:
    from sluice.domain.lineage import LineageService
    from sluice.store.lineage import LineageRepository

    table = table or Table()
    return LineageService(LineageRepository(table), watcher_registry(table))


def pipeline_definitions(table: Table | None = None) -> PipelineDefinitions:
    from sluice.domain.pipelines import PipelineDefinitions
    from sluice.schedules_port import configured_schedules
    from sluice.store.executions import RunRepository
    from sluice.store.pipelines import PipelineDefinitionRepository, StaleDefinition

    table = table or Table()
    return PipelineDefinitions(
        PipelineDefinitionRepository(table),
        RunRepository(table),
        configured_schedules(),
        lineage_service(table),
        stale=StaleDefinition,
    )


def project_lineage(project: str, table: Table | None = None) -> dict:
    """`GET /api/lineage`: the project's pipelines, datasets, connectors and variables as one graph."""
    from sluice.domain.project_lineage import project_lineage as build
    from sluice.store.lineage import LineageRepository
    from sluice.store.pipelines import PipelineDefinitionRepository

    table = table or Table()
    return build(project, PipelineDefinitionRepository(table), LineageRepository(table))
