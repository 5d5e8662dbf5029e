"""Connectors, schemas and variables (seed 003's references, seed 001's variables) as the catalog
routes answer them, and the short forms pipelines embed: secret values always masked, never a
secret's name or version."""

from __future__ import annotations

from typing import Any

from sluice.domain import ids
from sluice.domain.secrets import MASK, mask


def page_view(views: list[dict[str, Any]], cursor: str | None, limit: int | None, paged: bool) -> dict:
    """`{"data": [...]}`, plus `pagination` when the caller asked for a page (limit or cursor)."""
    body: dict[str, Any] = {"data": views}
    if paged:
        body["pagination"] = {"limit": limit, "cursor": cursor, "hasMore": cursor is not None}
    return body


def connector_view(record: dict[str, Any]) -> dict[str, Any]:
    """The one rendering of a connector: secret values masked, never the secret's name or version."""
    return {
        "id": ids.render("connector", int(record["id"])),
        "name": record["name"],
        "type": record["type"],
        "config": mask(record.get("config") or {}),
        "secretFields": list(record.get("secret_fields") or []),
        "pipelineCount": max(int(record.get("ref_count") or 0), 0),
        "created_at": record.get("created_at"),
        "updated_at": record.get("updated_at"),
    }


def connector_reference(record: dict[str, Any]) -> dict[str, Any]:
    """A connector as a pipeline embeds it (`connector` of a definition, `/api/lineage`)."""
    return {
        "id": ids.render("connector", int(record["id"])),
        "name": record["name"],
        "type": record.get("type"),
    }


def schema_view(record: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": ids.render("schema", int(record["id"])),
        "name": record["name"],
        "displayName": record.get("display_name") or record["name"],
        "columns": [
            {
                "name": c["name"],
                "type": c["type"],
                "nullable": c.get("nullable", True),
                "description": c.get("description"),
            }
            for c in record.get("columns") or []
        ],
        "pipelineCount": max(int(record.get("ref_count") or 0), 0),
        "created_at": record.get("created_at"),
        "updated_at": record.get("updated_at"),
    }


def schema_reference(record: dict[str, Any]) -> dict[str, Any]:
    """A schema as a pipeline embeds it (`schema` of a definition)."""
    display = record.get("display_name") or record.get("displayName") or record["name"]
    return {"id": ids.render("schema", int(record["id"])), "name": record["name"], "displayName": display}


def variable_view(record: dict[str, Any]) -> dict[str, Any]:
    secret = bool(record.get("secret"))
    return {
        "key": record["key"],
        "value": MASK if secret else record.get("value", ""),
        "secret": secret,
        "description": record.get("description"),
        "created_at": record.get("created_at"),
        "updated_at": record.get("updated_at"),
    }
