"""Lineage area: Watcher's surface (seed 004) `/address`, `/address_type`, `/address_lineage`,
seed 002's project-wide `GET /api/lineage`, and OpenLineage in (`POST /api/v1/lineage`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import Depends, Request, Response
from pydantic import RootModel

from sluice import composition
from sluice.auth.principal import Principal
from sluice.domain.openlineage import RunEvent, parse_events
from sluice.domain.registry import (
    AddressLineageRequest,
    AddressPatch,
    AddressTypePatch,
    AddressTypeUpsert,
    AddressUpsert,
    Registry,
)
from sluice.edge.app import (
    RequestBodyDoc,
    area_router,
    create_app,
    created_status,
    editor,
    json_body,
    lambda_handler,
    parse_json,
    validated,
    viewer,
)
from sluice.edge.responses.openlineage import LineageIngested
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
from sluice.errors import PayloadTooLarge

if TYPE_CHECKING:  # the services load with their builders, at the first request that needs them
    from sluice.domain.lineage import LineageService
    from sluice.domain.openlineage import OpenLineageIngest
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


# -- OpenLineage in -------------------------------------------------------------------------------
MAX_LINEAGE_BODY_BYTES = 6 * 1024 * 1024  # Lambda's synchronous payload limit


class OpenLineageBody(RootModel[RunEvent | list[RunEvent]]):
    """One OpenLineage RunEvent (spec 2-0-2) or a JSON array of at most 1,000."""


async def openlineage_events(request: Request) -> list[RunEvent]:
    """The events of the body: 413 over the size or batch limit (before any event is read), 422
    naming the field (with the event's index in a batch) when one fails the spec's schema."""
    raw = await request.body()
    if len(raw) > MAX_LINEAGE_BODY_BYTES:
        raise PayloadTooLarge(f"The body is larger than {MAX_LINEAGE_BODY_BYTES // (1024 * 1024)} MiB.")
    return parse_events(parse_json(raw), validated)


openlineage_events.request_body = RequestBodyDoc(OpenLineageBody, ("application/json",))  # type: ignore[attr-defined]


@router.post("/api/v1/lineage", status_code=201, response_model=LineageIngested)
def post_openlineage(
    response: Response,
    caller: Principal = Depends(editor),
    events: list[RunEvent] = Depends(openlineage_events),
    ingest: OpenLineageIngest = Depends(composition.openlineage_ingest),
) -> dict:
    """OpenLineage RunEvents in: executions, parents, datasets, lineage and row counts (docs/sdk.md).
    201 when an event was applied, 200 when every one was a duplicate of one applied before."""
    result = ingest.ingest(caller.project, events)
    created_status(response, result.applied > 0)
    return result.view()


app = create_app("lineage", [router])
handler = lambda_handler(app, "lineage")
