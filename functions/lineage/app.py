"""Lineage area: Watcher's surface (seed 004) `/address`, `/address_type`, `/address_lineage`, and
seed 002's project-wide `GET /api/lineage`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import Depends, Response

from sluice import composition
from sluice.auth.principal import Principal
from sluice.domain.registry import (
    AddressLineageRequest,
    AddressPatch,
    AddressTypePatch,
    AddressTypeUpsert,
    AddressUpsert,
    Registry,
)
from sluice.edge.app import area_router, create_app, created_status, editor, json_body, lambda_handler, viewer
from sluice.edge.responses.registry import (
    Address,
    AddressLineage,
    AddressType,
    Created,
    LineageRecorded,
)
from sluice.edge.responses.registry import (
    ProjectLineage as ProjectLineageAnswer,
)

if TYPE_CHECKING:  # the services load with their builders, at the first request that needs them
    from sluice.domain.lineage import LineageService
    from sluice.domain.project_lineage import ProjectLineage

router = area_router()
Watcher = Depends(composition.watcher_registry)
Lineage = Depends(composition.lineage_service)


# -- addresses ----------------------------------------------------------------------------------
@router.post("/address", response_model=Created)
def post_address(
    response: Response,
    caller: Principal = Depends(editor),
    body: AddressUpsert = Depends(json_body(AddressUpsert)),
    registry: Registry = Watcher,
) -> dict:
    result, created = registry.upsert_address(caller.project, body)
    created_status(response, created)
    return result


@router.get("/address", response_model=list[Address])
def get_addresses(caller: Principal = Depends(viewer), registry: Registry = Watcher) -> list[dict]:
    return registry.list_addresses(caller.project)


@router.get("/address/{address_id}", response_model=Address)
def get_address(address_id: int, caller: Principal = Depends(viewer), registry: Registry = Watcher) -> dict:
    return registry.get_address(caller.project, address_id)


@router.patch("/address", response_model=Address)
def patch_address(
    caller: Principal = Depends(editor),
    body: AddressPatch = Depends(json_body(AddressPatch)),
    registry: Registry = Watcher,
) -> dict:
    return registry.update_address(caller.project, body)


# -- address types ------------------------------------------------------------------------------
@router.post("/address_type", response_model=Created)
def post_address_type(
    response: Response,
    caller: Principal = Depends(editor),
    body: AddressTypeUpsert = Depends(json_body(AddressTypeUpsert)),
    registry: Registry = Watcher,
) -> dict:
    result, created = registry.upsert_address_type(caller.project, body)
    created_status(response, created)
    return result


@router.get("/address_type", response_model=list[AddressType])
def get_address_types(caller: Principal = Depends(viewer), registry: Registry = Watcher) -> list[dict]:
    return registry.list_address_types(caller.project)


@router.get("/address_type/{address_type_id}", response_model=AddressType)
def get_address_type(
    address_type_id: int, caller: Principal = Depends(viewer), registry: Registry = Watcher
) -> dict:
    return registry.get_address_type(caller.project, address_type_id)


@router.patch("/address_type", response_model=AddressType)
def patch_address_type(
    caller: Principal = Depends(editor),
    body: AddressTypePatch = Depends(json_body(AddressTypePatch)),
    registry: Registry = Watcher,
) -> dict:
    return registry.update_address_type(caller.project, body)


# -- lineage --------------------------------------------------------------------------------------
@router.post("/address_lineage", response_model=LineageRecorded)
def post_address_lineage(
    response: Response,
    caller: Principal = Depends(editor),
    body: AddressLineageRequest = Depends(json_body(AddressLineageRequest)),
    lineage: LineageService = Lineage,
) -> dict:
    result, created = lineage.record_address_lineage(caller.project, body)
    created_status(response, created)
    return result


@router.get("/address_lineage/{address_id}", response_model=AddressLineage)
def get_address_lineage(
    address_id: int, caller: Principal = Depends(viewer), lineage: LineageService = Lineage
) -> dict:
    return lineage.lineage_of(caller.project, address_id)


@router.get("/api/lineage", response_model=ProjectLineageAnswer)
def get_project_lineage(
    caller: Principal = Depends(viewer), lineage: ProjectLineage = Depends(composition.project_lineage)
) -> dict:
    return lineage.of(caller.project)


app = create_app("lineage", [router])
handler = lambda_handler(app, "lineage")
