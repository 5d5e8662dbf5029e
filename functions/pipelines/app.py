"""Pipelines area, Watcher's surface (seed 004): `/pipeline` and `/pipeline_type`."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Response

from sluice.auth.principal import Principal
from sluice.domain.catalog import DEFAULT_PAGE, MAX_PAGE, page_view
from sluice.domain.connectors import ConnectorCreate, Connectors, ConnectorUpdate
from sluice.domain.registry import (
    PipelinePatch,
    PipelineTypePatch,
    PipelineTypeUpsert,
    PipelineUpsert,
    Registry,
)
from sluice.domain.schemas import SchemaCreate, Schemas, SchemaUpdate
from sluice.domain.variables import Variables, VariableWrite
from sluice.edge.app import create_app, editor, json_body, lambda_handler, viewer
from sluice.store.catalog import ConnectorRepository, SchemaRepository, VariableRepository
from sluice.store.registry import (
    AddressRepository,
    AddressTypeRepository,
    PipelineRepository,
    PipelineTypeRepository,
)
from sluice.store.secrets import SecretStore
from sluice.store.table import Table

router = APIRouter()


def registry() -> Registry:
    table = Table()
    return Registry(
        PipelineRepository(table),
        PipelineTypeRepository(table),
        AddressRepository(table),
        AddressTypeRepository(table),
    )


def _status(response: Response, created: bool) -> None:
    response.status_code = 201 if created else 200


# -- pipelines ----------------------------------------------------------------------------------
@router.post("/pipeline")
def post_pipeline(
    response: Response,
    caller: Principal = Depends(editor),
    body: PipelineUpsert = Depends(json_body(PipelineUpsert)),
) -> dict:
    result, created = registry().upsert_pipeline(caller.project, body)
    _status(response, created)
    return result


@router.get("/pipeline")
def get_pipelines(caller: Principal = Depends(viewer)) -> list[dict]:
    return registry().list_pipelines(caller.project)


@router.get("/pipeline/{pipeline_id}")
def get_pipeline(pipeline_id: int, caller: Principal = Depends(viewer)) -> dict:
    return registry().get_pipeline(caller.project, pipeline_id)


@router.patch("/pipeline")
def patch_pipeline(
    caller: Principal = Depends(editor), body: PipelinePatch = Depends(json_body(PipelinePatch))
) -> dict:
    return registry().update_pipeline(caller.project, body)


# -- pipeline types -----------------------------------------------------------------------------
@router.post("/pipeline_type")
def post_pipeline_type(
    response: Response,
    caller: Principal = Depends(editor),
    body: PipelineTypeUpsert = Depends(json_body(PipelineTypeUpsert)),
) -> dict:
    result, created = registry().upsert_pipeline_type(caller.project, body)
    _status(response, created)
    return result


@router.get("/pipeline_type")
def get_pipeline_types(caller: Principal = Depends(viewer)) -> list[dict]:
    return registry().list_pipeline_types(caller.project)


@router.get("/pipeline_type/{pipeline_type_id}")
def get_pipeline_type(pipeline_type_id: int, caller: Principal = Depends(viewer)) -> dict:
    return registry().get_pipeline_type(caller.project, pipeline_type_id)


@router.patch("/pipeline_type")
def patch_pipeline_type(
    caller: Principal = Depends(editor), body: PipelineTypePatch = Depends(json_body(PipelineTypePatch))
) -> dict:
    return registry().update_pipeline_type(caller.project, body)


# -- catalog: connectors, schemas, variables ------------------------------------------------------
# Seed 003's references of a pipeline and seed 001's variables; docs/api.md "Connectors, schemas
# and variables". Single objects come wrapped as {"data": {...}}, lists as {"data": [...]}.
catalog = APIRouter(prefix="/api/v1")
PageLimit = Query(None, ge=1, le=MAX_PAGE, description="page size; with it or cursor the list is paged")


def connector_service() -> Connectors:
    return Connectors(ConnectorRepository(Table()), SecretStore())


def schema_service() -> Schemas:
    return Schemas(SchemaRepository(Table()))


def variable_service() -> Variables:
    return Variables(VariableRepository(Table()), SecretStore())


def _listed(views: list[dict], cursor: str | None, limit: int | None, given_cursor: str | None) -> dict:
    paged = limit is not None or given_cursor is not None
    return page_view(views, cursor, limit or DEFAULT_PAGE, paged)


@catalog.post("/connectors", status_code=201)
def post_connector(
    caller: Principal = Depends(editor), body: ConnectorCreate = Depends(json_body(ConnectorCreate))
) -> dict:
    return {"data": connector_service().create(caller.project, body)}


@catalog.get("/connectors")
def get_connectors(
    caller: Principal = Depends(viewer), limit: int | None = PageLimit, cursor: str | None = None
) -> dict:
    views, next_cursor = connector_service().list(caller.project, limit, cursor)
    return _listed(views, next_cursor, limit, cursor)


@catalog.get("/connectors/{connector_id}")
def get_connector(connector_id: str, caller: Principal = Depends(viewer)) -> dict:
    return {"data": connector_service().get(caller.project, connector_id)}


@catalog.put("/connectors/{connector_id}")
def put_connector(
    connector_id: str,
    caller: Principal = Depends(editor),
    body: ConnectorUpdate = Depends(json_body(ConnectorUpdate)),
) -> dict:
    return {"data": connector_service().update(caller.project, connector_id, body)}


@catalog.delete("/connectors/{connector_id}", status_code=204)
def delete_connector(connector_id: str, caller: Principal = Depends(editor)) -> Response:
    connector_service().delete(caller.project, connector_id)
    return Response(status_code=204)


@catalog.post("/schemas", status_code=201)
def post_schema(
    caller: Principal = Depends(editor), body: SchemaCreate = Depends(json_body(SchemaCreate))
) -> dict:
    return {"data": schema_service().create(caller.project, body)}


@catalog.get("/schemas")
def get_schemas(
    caller: Principal = Depends(viewer), limit: int | None = PageLimit, cursor: str | None = None
) -> dict:
    views, next_cursor = schema_service().list(caller.project, limit, cursor)
    return _listed(views, next_cursor, limit, cursor)


@catalog.get("/schemas/{schema_id}")
def get_schema(schema_id: str, caller: Principal = Depends(viewer)) -> dict:
    return {"data": schema_service().get(caller.project, schema_id)}


@catalog.put("/schemas/{schema_id}")
def put_schema(
    schema_id: str, caller: Principal = Depends(editor), body: SchemaUpdate = Depends(json_body(SchemaUpdate))
) -> dict:
    return {"data": schema_service().update(caller.project, schema_id, body)}


@catalog.delete("/schemas/{schema_id}", status_code=204)
def delete_schema(schema_id: str, caller: Principal = Depends(editor)) -> Response:
    schema_service().delete(caller.project, schema_id)
    return Response(status_code=204)


@catalog.get("/variables")
def get_variables(
    caller: Principal = Depends(viewer), limit: int | None = PageLimit, cursor: str | None = None
) -> dict:
    views, next_cursor = variable_service().list(caller.project, limit, cursor)
    return _listed(views, next_cursor, limit, cursor)


@catalog.get("/variables/{key}")
def get_variable(key: str, caller: Principal = Depends(viewer)) -> dict:
    return {"data": variable_service().get(caller.project, key)}


@catalog.put("/variables/{key}")
def put_variable(
    key: str,
    response: Response,
    caller: Principal = Depends(editor),
    body: VariableWrite = Depends(json_body(VariableWrite)),
) -> dict:
    view, created = variable_service().put(caller.project, key, body)
    response.status_code = 201 if created else 200
    return {"data": view}


@catalog.delete("/variables/{key}", status_code=204)
def delete_variable(key: str, caller: Principal = Depends(editor)) -> Response:
    variable_service().delete(caller.project, key)
    return Response(status_code=204)


# -- end of catalog ---------------------------------------------------------------------------------


app = create_app("pipelines", [router, catalog])
handler = lambda_handler(app, "pipelines")
