"""Pipelines area: Watcher's `/pipeline` and `/pipeline_type` (seed 004), pipeline definitions on
`/api/v1/pipelines` (seeds 001 and 003), and the catalog (connectors, schemas, variables)."""

from __future__ import annotations

from typing import Literal

from fastapi import Depends, Query, Response

from sluice import composition
from sluice.auth.principal import Principal
from sluice.domain.catalog import DEFAULT_PAGE, MAX_PAGE
from sluice.domain.connectors import ConnectorCreate, Connectors, ConnectorUpdate
from sluice.domain.definition_requests import DefinitionRequest
from sluice.domain.pipelines import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    REVISIONS_PAGE_SIZE,
    PipelineDefinitions,
)
from sluice.domain.registry import (
    PipelinePatch,
    PipelineTypePatch,
    PipelineTypeUpsert,
    PipelineUpsert,
    Registry,
)
from sluice.domain.schemas import SchemaCreate, Schemas, SchemaUpdate
from sluice.domain.variables import Variables, VariableWrite
from sluice.domain.views.catalog import page_view
from sluice.edge.app import area_router, create_app, created_status, editor, json_body, lambda_handler, viewer
from sluice.edge.documents import document_body
from sluice.edge.responses.catalog import (
    ConnectorData,
    SchemaData,
    VariableData,
)
from sluice.edge.responses.catalog import (
    Connectors as ConnectorList,
)
from sluice.edge.responses.catalog import (
    Schemas as SchemaList,
)
from sluice.edge.responses.catalog import (
    Variables as VariableList,
)
from sluice.edge.responses.definitions import DefinitionData, RevisionData, Revisions
from sluice.edge.responses.definitions import Definitions as DefinitionList
from sluice.edge.responses.registry import Created, PipelineType, PipelineUpserted, WatcherPipeline
from sluice.errors import ValidationFailed

router = area_router()
Watcher = Depends(composition.watcher_registry)


# -- pipelines ----------------------------------------------------------------------------------
@router.post("/pipeline", response_model=PipelineUpserted)
def post_pipeline(
    response: Response,
    caller: Principal = Depends(editor),
    body: PipelineUpsert = Depends(json_body(PipelineUpsert)),
    registry: Registry = Watcher,
) -> dict:
    result, created = registry.upsert_pipeline(caller.project, body)
    created_status(response, created)
    return result


@router.get("/pipeline", response_model=list[WatcherPipeline])
def get_pipelines(caller: Principal = Depends(viewer), registry: Registry = Watcher) -> list[dict]:
    return registry.list_pipelines(caller.project)


@router.get("/pipeline/{pipeline_id}", response_model=WatcherPipeline)
def get_pipeline(pipeline_id: int, caller: Principal = Depends(viewer), registry: Registry = Watcher) -> dict:
    return registry.get_pipeline(caller.project, pipeline_id)


@router.patch("/pipeline", response_model=WatcherPipeline)
def patch_pipeline(
    caller: Principal = Depends(editor),
    body: PipelinePatch = Depends(json_body(PipelinePatch)),
    registry: Registry = Watcher,
) -> dict:
    return registry.update_pipeline(caller.project, body)


# -- pipeline types -----------------------------------------------------------------------------
@router.post("/pipeline_type", response_model=Created)
def post_pipeline_type(
    response: Response,
    caller: Principal = Depends(editor),
    body: PipelineTypeUpsert = Depends(json_body(PipelineTypeUpsert)),
    registry: Registry = Watcher,
) -> dict:
    result, created = registry.upsert_pipeline_type(caller.project, body)
    created_status(response, created)
    return result


@router.get("/pipeline_type", response_model=list[PipelineType])
def get_pipeline_types(caller: Principal = Depends(viewer), registry: Registry = Watcher) -> list[dict]:
    return registry.list_pipeline_types(caller.project)


@router.get("/pipeline_type/{pipeline_type_id}", response_model=PipelineType)
def get_pipeline_type(
    pipeline_type_id: int, caller: Principal = Depends(viewer), registry: Registry = Watcher
) -> dict:
    return registry.get_pipeline_type(caller.project, pipeline_type_id)


@router.patch("/pipeline_type", response_model=PipelineType)
def patch_pipeline_type(
    caller: Principal = Depends(editor),
    body: PipelineTypePatch = Depends(json_body(PipelineTypePatch)),
    registry: Registry = Watcher,
) -> dict:
    return registry.update_pipeline_type(caller.project, body)


# -- pipeline definitions: seeds 001 and 003 (SPEC 3) --------------------------------------------
# docs/api.md "Pipeline definitions". Bodies are JSON or YAML; single objects come as {"data": {...}}.
definitions = area_router("/api/v1/pipelines")
Definitions = Depends(composition.pipeline_definitions)


@definitions.get("", response_model=DefinitionList)
def list_definitions(
    caller: Principal = Depends(viewer),
    status: Literal["active", "paused", "error", "draft"] | None = None,
    page: int | None = Query(None, ge=1),
    per_page: int | None = Query(None, ge=1, le=MAX_PAGE_SIZE),
    limit: int | None = Query(None, ge=1, le=MAX_PAGE_SIZE),
    cursor: str | None = None,
    service: PipelineDefinitions = Definitions,
) -> dict:
    keyset = limit is not None or cursor is not None
    if keyset and (page is not None or per_page is not None):
        raise ValidationFailed(
            "Page with page/per_page (seed 001) or with limit/cursor (seed 003), not both."
        )
    if keyset:
        return service.list_cursor(caller.project, status, limit or DEFAULT_PAGE_SIZE, cursor)
    return service.list_pages(caller.project, status, page or 1, per_page or DEFAULT_PAGE_SIZE)


@definitions.post("", status_code=201, response_model=DefinitionData)
def create_definition(
    caller: Principal = Depends(editor),
    body: DefinitionRequest = Depends(document_body(DefinitionRequest)),
    service: PipelineDefinitions = Definitions,
) -> dict:
    return {"data": service.create(caller.project, body, caller.subject)}


@definitions.put("", response_model=DefinitionData)
def update_definition_by_id(
    caller: Principal = Depends(editor),
    body: DefinitionRequest = Depends(document_body(DefinitionRequest)),
    service: PipelineDefinitions = Definitions,
) -> dict:
    pipeline_id = service.locate_by_id(caller.project, body.id)
    return {"data": service.update(caller.project, pipeline_id, body, caller.subject)}


@definitions.delete("", status_code=204)
def delete_definition_by_id(
    caller: Principal = Depends(editor),
    pipeline_id: str | None = Query(None, alias="id"),
    service: PipelineDefinitions = Definitions,
) -> Response:
    service.delete(caller.project, service.locate_by_id(caller.project, pipeline_id))
    return Response(status_code=204)


@definitions.get("/{name}", response_model=DefinitionData)
def get_definition(
    name: str, caller: Principal = Depends(viewer), service: PipelineDefinitions = Definitions
) -> dict:
    return {"data": service.get(caller.project, name)}


@definitions.put("/{name}", response_model=DefinitionData)
def update_definition(
    name: str,
    caller: Principal = Depends(editor),
    body: DefinitionRequest = Depends(document_body(DefinitionRequest)),
    service: PipelineDefinitions = Definitions,
) -> dict:
    return {"data": service.update(caller.project, name, body, caller.subject)}


@definitions.delete("/{name}", status_code=204)
def delete_definition(
    name: str, caller: Principal = Depends(editor), service: PipelineDefinitions = Definitions
) -> Response:
    service.delete(caller.project, name)
    return Response(status_code=204)


@definitions.get("/{name}/revisions", response_model=Revisions)
def list_revisions(
    name: str,
    caller: Principal = Depends(viewer),
    limit: int = Query(REVISIONS_PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE),
    before: int | None = Query(None, ge=1),
    service: PipelineDefinitions = Definitions,
) -> dict:
    return service.revisions(caller.project, name, limit, before)


@definitions.get("/{name}/revisions/{revision}", response_model=RevisionData)
def get_revision(
    name: str, revision: int, caller: Principal = Depends(viewer), service: PipelineDefinitions = Definitions
) -> dict:
    return {"data": service.revision(caller.project, name, revision)}


# -- catalog: connectors, schemas, variables ------------------------------------------------------
# Seed 003's references of a pipeline and seed 001's variables; docs/api.md "Connectors, schemas
# and variables". Single objects come wrapped as {"data": {...}}, lists as {"data": [...]}.
catalog = area_router("/api/v1")
PageLimit = Query(None, ge=1, le=MAX_PAGE, description="page size; with it or cursor the list is paged")
ConnectorService = Depends(composition.connectors)
SchemaService = Depends(composition.schemas)
VariableService = Depends(composition.variables)


def _listed(views: list[dict], cursor: str | None, limit: int | None, given_cursor: str | None) -> dict:
    paged = limit is not None or given_cursor is not None
    return page_view(views, cursor, limit or DEFAULT_PAGE, paged)


@catalog.post("/connectors", status_code=201, response_model=ConnectorData)
def post_connector(
    caller: Principal = Depends(editor),
    body: ConnectorCreate = Depends(json_body(ConnectorCreate)),
    connectors: Connectors = ConnectorService,
) -> dict:
    return {"data": connectors.create(caller.project, body)}


@catalog.get("/connectors", response_model=ConnectorList)
def get_connectors(
    caller: Principal = Depends(viewer),
    limit: int | None = PageLimit,
    cursor: str | None = None,
    connectors: Connectors = ConnectorService,
) -> dict:
    views, next_cursor = connectors.list(caller.project, limit, cursor)
    return _listed(views, next_cursor, limit, cursor)


@catalog.get("/connectors/{connector_id}", response_model=ConnectorData)
def get_connector(
    connector_id: str, caller: Principal = Depends(viewer), connectors: Connectors = ConnectorService
) -> dict:
    return {"data": connectors.get(caller.project, connector_id)}


@catalog.put("/connectors/{connector_id}", response_model=ConnectorData)
def put_connector(
    connector_id: str,
    caller: Principal = Depends(editor),
    body: ConnectorUpdate = Depends(json_body(ConnectorUpdate)),
    connectors: Connectors = ConnectorService,
) -> dict:
    return {"data": connectors.update(caller.project, connector_id, body)}


@catalog.delete("/connectors/{connector_id}", status_code=204)
def delete_connector(
    connector_id: str, caller: Principal = Depends(editor), connectors: Connectors = ConnectorService
) -> Response:
    connectors.delete(caller.project, connector_id)
    return Response(status_code=204)


@catalog.post("/schemas", status_code=201, response_model=SchemaData)
def post_schema(
    caller: Principal = Depends(editor),
    body: SchemaCreate = Depends(json_body(SchemaCreate)),
    schemas: Schemas = SchemaService,
) -> dict:
    return {"data": schemas.create(caller.project, body)}


@catalog.get("/schemas", response_model=SchemaList)
def get_schemas(
    caller: Principal = Depends(viewer),
    limit: int | None = PageLimit,
    cursor: str | None = None,
    schemas: Schemas = SchemaService,
) -> dict:
    views, next_cursor = schemas.list(caller.project, limit, cursor)
    return _listed(views, next_cursor, limit, cursor)


@catalog.get("/schemas/{schema_id}", response_model=SchemaData)
def get_schema(schema_id: str, caller: Principal = Depends(viewer), schemas: Schemas = SchemaService) -> dict:
    return {"data": schemas.get(caller.project, schema_id)}


@catalog.put("/schemas/{schema_id}", response_model=SchemaData)
def put_schema(
    schema_id: str,
    caller: Principal = Depends(editor),
    body: SchemaUpdate = Depends(json_body(SchemaUpdate)),
    schemas: Schemas = SchemaService,
) -> dict:
    return {"data": schemas.update(caller.project, schema_id, body)}


@catalog.delete("/schemas/{schema_id}", status_code=204)
def delete_schema(
    schema_id: str, caller: Principal = Depends(editor), schemas: Schemas = SchemaService
) -> Response:
    schemas.delete(caller.project, schema_id)
    return Response(status_code=204)


@catalog.get("/variables", response_model=VariableList)
def get_variables(
    caller: Principal = Depends(viewer),
    limit: int | None = PageLimit,
    cursor: str | None = None,
    variables: Variables = VariableService,
) -> dict:
    views, next_cursor = variables.list(caller.project, limit, cursor)
    return _listed(views, next_cursor, limit, cursor)


@catalog.get("/variables/{key}", response_model=VariableData)
def get_variable(
    key: str, caller: Principal = Depends(viewer), variables: Variables = VariableService
) -> dict:
    return {"data": variables.get(caller.project, key)}


@catalog.put("/variables/{key}", response_model=VariableData)
def put_variable(
    key: str,
    response: Response,
    caller: Principal = Depends(editor),
    body: VariableWrite = Depends(json_body(VariableWrite)),
    variables: Variables = VariableService,
) -> dict:
    view, created = variables.put(caller.project, key, body)
    response.status_code = 201 if created else 200
    return {"data": view}


@catalog.delete("/variables/{key}", status_code=204)
def delete_variable(
    key: str, caller: Principal = Depends(editor), variables: Variables = VariableService
) -> Response:
    variables.delete(caller.project, key)
    return Response(status_code=204)


# -- end of catalog ---------------------------------------------------------------------------------


app = create_app("pipelines", [router, definitions, catalog])
handler = lambda_handler(app, "pipelines")
