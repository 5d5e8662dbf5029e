"""Pipelines area, Watcher's surface (seed 004): `/pipeline` and `/pipeline_type`."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Response

from sluice.auth.principal import Principal
from sluice.domain.registry import (
    PipelinePatch,
    PipelineTypePatch,
    PipelineTypeUpsert,
    PipelineUpsert,
    Registry,
)
from sluice.edge.app import create_app, editor, json_body, lambda_handler, viewer
from sluice.store.registry import (
    AddressRepository,
    AddressTypeRepository,
    PipelineRepository,
    PipelineTypeRepository,
)
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


app = create_app("pipelines", [router])
handler = lambda_handler(app, "pipelines")
