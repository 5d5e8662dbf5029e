"""Platform area: liveness (`GET /`, `GET /health`), API key management and project settings."""

from __future__ import annotations

import sys
from pathlib import Path

from fastapi import Depends, Response
from pydantic import BaseModel, Field

from sluice import __version__, composition
from sluice.auth.principal import Principal
from sluice.domain.access import create_api_key, list_api_keys
from sluice.domain.settings import SettingsChange
from sluice.edge.app import admin, area_router, create_app, json_body, lambda_handler, viewer
from sluice.edge.responses.platform import ApiKeys, Liveness, NewApiKey, ProjectSettings
from sluice.store.api_keys import ApiKeyRepository
from sluice.store.settings import SettingsRepository

public = area_router()
router = area_router()


class ApiKeyRequest(BaseModel):
    name: str = Field(min_length=1, max_length=150)
    role: str = Field(min_length=1, max_length=20)


@public.get("/", response_model=Liveness)
def root() -> dict:
    return {"status": "ok"}


@public.get("/health", response_model=Liveness)
def health() -> dict:
    return {"status": "ok", "version": __version__}


@router.post("/api/v1/api-keys", status_code=201, response_model=NewApiKey)
def post_api_key(
    caller: Principal = Depends(admin),
    body: ApiKeyRequest = Depends(json_body(ApiKeyRequest)),
    keys: ApiKeyRepository = Depends(composition.api_keys),
) -> dict:
    return create_api_key(caller, body.name.strip(), body.role, keys)


@router.get("/api/v1/api-keys", response_model=ApiKeys)
def get_api_keys(
    caller: Principal = Depends(admin), keys: ApiKeyRepository = Depends(composition.api_keys)
) -> dict:
    return {"data": list_api_keys(caller.project, keys)}


@router.delete("/api/v1/api-keys/{key_id}", status_code=204)
def delete_api_key(
    key_id: str, caller: Principal = Depends(admin), keys: ApiKeyRepository = Depends(composition.api_keys)
) -> Response:
    keys.revoke(caller.project, key_id)
    return Response(status_code=204)


@router.get("/api/system/settings", response_model=ProjectSettings)
def get_settings(
    caller: Principal = Depends(viewer), settings: SettingsRepository = Depends(composition.project_settings)
) -> dict:
    return settings.get(caller.project).view()


@router.patch("/api/system/settings", response_model=ProjectSettings)
def patch_settings(
    caller: Principal = Depends(admin),
    body: SettingsChange = Depends(json_body(SettingsChange)),
    settings: SettingsRepository = Depends(composition.project_settings),
) -> dict:
    return settings.change(caller.project, body.changes(), caller.subject).view()


# The modules beside this file (named platform_* to be unique across the areas) are imported by
# name: Lambda puts this directory on sys.path; the local stack and tests load this file by path.
_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.append(_HERE)

import platform_overview  # noqa: E402

app = create_app("platform", [public, router, platform_overview.router])
handler = lambda_handler(app, "platform")
