"""Watcher's registry objects (seed 004) as its surface renders them: the fields each object shows,
in order, and the defaults of fields an item may lack."""

from __future__ import annotations

from typing import Any

PIPELINE_FIELDS = (
    "id",
    "name",
    "pipeline_type_id",
    "watermark",
    "next_watermark",
    "pipeline_metadata",
    "last_target_insert",
    "last_target_update",
    "last_target_soft_delete",
    "freshness_number",
    "freshness_datepart",
    "mute_freshness_check",
    "timeliness_number",
    "timeliness_datepart",
    "mute_timeliness_check",
    "load_lineage",
    "active",
    "created_at",
    "updated_at",
)
# What an item lacks renders as its default; the registry writes the same defaults on create.
MUTE_DEFAULTS = {"mute_freshness_check": False, "mute_timeliness_check": False}
PIPELINE_DEFAULTS = {**MUTE_DEFAULTS, "load_lineage": True, "active": True}
PIPELINE_TYPE_FIELDS = (
    "id",
    "name",
    "freshness_number",
    "freshness_datepart",
    "mute_freshness_check",
    "timeliness_number",
    "timeliness_datepart",
    "mute_timeliness_check",
    "created_at",
    "updated_at",
)
ADDRESS_FIELDS = (
    "id",
    "name",
    "address_type_id",
    "database_name",
    "schema_name",
    "table_name",
    "primary_key",
    "address_metadata",
    "created_at",
    "updated_at",
)
ADDRESS_TYPE_FIELDS = ("id", "name", "group_name", "created_at", "updated_at")


def _view(record: dict[str, Any], fields: tuple[str, ...], defaults: dict[str, Any] | None = None) -> dict:
    defaults = defaults or {}
    return {f: record.get(f, defaults.get(f)) for f in fields}


def pipeline_view(record: dict[str, Any]) -> dict[str, Any]:
    return _view(record, PIPELINE_FIELDS, PIPELINE_DEFAULTS)


def pipeline_type_view(record: dict[str, Any]) -> dict[str, Any]:
    return _view(record, PIPELINE_TYPE_FIELDS, MUTE_DEFAULTS)


def address_view(record: dict[str, Any]) -> dict[str, Any]:
    return _view(record, ADDRESS_FIELDS)


def address_type_view(record: dict[str, Any]) -> dict[str, Any]:
    return _view(record, ADDRESS_TYPE_FIELDS)
