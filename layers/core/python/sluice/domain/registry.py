"""Watcher's registry (seed 004, SPEC 7): pipelines, pipeline types, addresses and address types.

The request models normalise input the way Watcher does (top-level strings stripped and
lowercased, watermarks kept verbatim as strings); `Registry` holds the use cases and receives its
repositories, so unit tests run it on in-memory fakes and the API areas on DynamoDB.
"""

from __future__ import annotations

import datetime as _dt
import json
from typing import Annotated, Any, Literal, Protocol

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from sluice.domain.views.registry import (
    MUTE_DEFAULTS,
    PIPELINE_DEFAULTS,
    address_type_view,
    address_view,
    pipeline_type_view,
    pipeline_view,
)
from sluice.errors import Conflict, NameTaken, NotFound

MAX_INT = 2_147_483_647  # Watcher's columns are 32-bit integers; larger numbers are refused (422)
MAX_METADATA_CHARS = 65_536  # keeps an item far below DynamoDB's 400 KB
MAX_LINEAGE_EDGES = 10_000  # sources x targets of one POST /address_lineage
WATERMARK_FIELDS = frozenset({"watermark", "next_watermark"})
PAIRS = (("freshness_number", "freshness_datepart"), ("timeliness_number", "timeliness_datepart"))

Datepart = Literal["minute", "hour", "day", "week", "month", "year"]


# -- field types --------------------------------------------------------------------------------
def _invalid(kind: str, sentence: str) -> PydanticCustomError:
    """A validation error whose message is our sentence alone (no 'Value error,' prefix)."""
    return PydanticCustomError(kind, sentence)


def _not_bool(value: Any) -> Any:
    # pydantic's lax mode would read true as 1; a boolean where a number belongs is a wrong type.
    if isinstance(value, bool):
        raise _invalid("int_type", "Input should be a valid integer, not a boolean.")
    return value


def _watermark_text(value: Any) -> str | None:
    """Watcher keeps watermarks as strings of at most 50 characters, whatever their JSON type."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float | _dt.date):
        raise _invalid("watermark_type", "A watermark must be a string, a number, a date or a datetime.")
    text = value.isoformat() if isinstance(value, _dt.date) else str(value)
    if len(text) > 50:
        raise _invalid("string_too_long", "A watermark must be at most 50 characters.")
    return text


def _bounded_metadata(value: Any) -> Any:
    if value is not None and isinstance(value, dict):
        size = len(json.dumps(value, separators=(",", ":"), ensure_ascii=False))
        if size > MAX_METADATA_CHARS:
            raise _invalid(
                "metadata_too_long", f"Metadata must be at most {MAX_METADATA_CHARS} characters of JSON."
            )
    return value


Id = Annotated[int, BeforeValidator(_not_bool)]
Interval = Annotated[int, BeforeValidator(_not_bool), Field(gt=0, le=MAX_INT)]
Name = Annotated[str, Field(min_length=1, max_length=150)]
Part = Annotated[str, Field(max_length=50)]
Watermark = Annotated[str | None, BeforeValidator(_watermark_text)]
Metadata = Annotated[dict[str, Any] | None, BeforeValidator(_bounded_metadata)]


# -- request models -----------------------------------------------------------------------------
class WatcherRequest(BaseModel):
    """Base of every Watcher body: unknown fields ignored, top-level strings stripped and lowercased.

    Watermarks keep their case (they are opaque positions); nested JSON (metadata) keeps its case
    because only top-level values are touched.
    """

    model_config = ConfigDict(extra="ignore")

    @model_validator(mode="before")
    @classmethod
    def _normalise_strings(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        return {
            key: value.strip().lower() if isinstance(value, str) and key not in WATERMARK_FIELDS else value
            for key, value in data.items()
        }

    def given(self) -> dict[str, Any]:
        """Fields the caller sent, with the values they sent (null included)."""
        return {name: getattr(self, name) for name in self.model_fields_set}

    def _check_pairs(self) -> None:
        for number, datepart in PAIRS:
            sent = [field for field in (number, datepart) if field in self.model_fields_set]
            values = [getattr(self, field) for field in (number, datepart)]
            if len(sent) == 1 or (values[0] is None) != (values[1] is None):
                raise _invalid(
                    "paired_fields", f"{number} and {datepart} must be given together or not at all."
                )

    def _check_not_null(self, *fields: str) -> None:
        for field in fields:
            if field in self.model_fields_set and getattr(self, field) is None:
                raise _invalid("not_nullable", f"{field} may not be null.")


class Patch(WatcherRequest):
    """A PATCH names its object by `id` or, failing that, by `name`."""

    id: Id | None = None
    name: Name | None = None

    @model_validator(mode="after")
    def _needs_id_or_name(self) -> Patch:
        if self.id is None and self.name is None:
            raise _invalid("missing", "Give the id or the name of the object to update.")
        return self

    def changes(self, nullable: frozenset[str]) -> dict[str, Any]:
        """Fields to write: given ones, minus the lookup keys; null clears a nullable field."""
        changes = {k: v for k, v in self.given().items() if k not in ("id", "name")}
        if self.id is not None and self.name is not None:
            changes["name"] = self.name  # with an id, a name is the new name
        return {k: v for k, v in changes.items() if v is not None or k in nullable}


class PipelineTypeUpsert(WatcherRequest):
    name: Name
    freshness_number: Interval | None = None
    freshness_datepart: Datepart | None = None
    mute_freshness_check: bool | None = None
    timeliness_number: Interval | None = None
    timeliness_datepart: Datepart | None = None
    mute_timeliness_check: bool | None = None

    @model_validator(mode="after")
    def _valid(self) -> PipelineTypeUpsert:
        self._check_pairs()
        return self


class PipelineTypePatch(Patch):
    freshness_number: Interval | None = None
    freshness_datepart: Datepart | None = None
    mute_freshness_check: bool | None = None
    timeliness_number: Interval | None = None
    timeliness_datepart: Datepart | None = None
    mute_timeliness_check: bool | None = None

    @model_validator(mode="after")
    def _valid(self) -> PipelineTypePatch:
        self._check_pairs()
        self._check_not_null("mute_freshness_check", "mute_timeliness_check")
        return self


class PipelineUpsert(WatcherRequest):
    name: Name
    pipeline_type_name: Name
    next_watermark: Watermark = None
    pipeline_metadata: Metadata = None
    freshness_number: Interval | None = None
    freshness_datepart: Datepart | None = None
    mute_freshness_check: bool | None = None
    timeliness_number: Interval | None = None
    timeliness_datepart: Datepart | None = None
    mute_timeliness_check: bool | None = None
    load_lineage: bool | None = None
    active: bool | None = None

    @model_validator(mode="after")
    def _valid(self) -> PipelineUpsert:
        self._check_pairs()
        return self


class PipelinePatch(Patch):
    pipeline_type_id: Id | None = None
    watermark: Watermark = None
    next_watermark: Watermark = None
    pipeline_metadata: Metadata = None
    freshness_number: Interval | None = None
    freshness_datepart: Datepart | None = None
    mute_freshness_check: bool | None = None
    timeliness_number: Interval | None = None
    timeliness_datepart: Datepart | None = None
    mute_timeliness_check: bool | None = None
    load_lineage: bool | None = None
    active: bool | None = None

    @model_validator(mode="after")
    def _valid(self) -> PipelinePatch:
        self._check_pairs()
        self._check_not_null(
            "pipeline_type_id", "mute_freshness_check", "mute_timeliness_check", "load_lineage", "active"
        )
        return self


class AddressTypeUpsert(WatcherRequest):
    name: Name
    group_name: Name


class AddressTypePatch(Patch):
    group_name: Name | None = None

    @model_validator(mode="after")
    def _valid(self) -> AddressTypePatch:
        self._check_not_null("group_name")
        return self


class AddressUpsert(WatcherRequest):
    name: Name
    address_type_name: Name
    address_type_group_name: Name
    database_name: Part | None = None
    schema_name: Part | None = None
    table_name: Part | None = None
    primary_key: Part | None = None
    address_metadata: Metadata = None


class AddressPatch(Patch):
    address_type_id: Id | None = None
    database_name: Part | None = None
    schema_name: Part | None = None
    table_name: Part | None = None
    primary_key: Part | None = None
    address_metadata: Metadata = None

    @model_validator(mode="after")
    def _valid(self) -> AddressPatch:
        self._check_not_null("address_type_id")
        return self


class AddressLineageRequest(WatcherRequest):
    """Each listed address is an address request of its own, normalised like a POST /address body."""

    pipeline_id: Id
    source_addresses: list[AddressUpsert] = Field(max_length=MAX_LINEAGE_EDGES)
    target_addresses: list[AddressUpsert] = Field(max_length=MAX_LINEAGE_EDGES)

    @model_validator(mode="after")
    def _bounded(self) -> AddressLineageRequest:
        sources = {a.name for a in self.source_addresses}
        targets = {a.name for a in self.target_addresses}
        if len(sources) * len(targets) > MAX_LINEAGE_EDGES:
            raise _invalid(
                "too_many_edges",
                f"source_addresses x target_addresses makes more than {MAX_LINEAGE_EDGES} relationships.",
            )
        return self


PIPELINE_TYPE_NULLABLE = frozenset(f for pair in PAIRS for f in pair)
PIPELINE_NULLABLE = PIPELINE_TYPE_NULLABLE | {"watermark", "next_watermark", "pipeline_metadata"}
ADDRESS_NULLABLE = frozenset(
    {"database_name", "schema_name", "table_name", "primary_key", "address_metadata"}
)
ADDRESS_PARTS = ("database_name", "schema_name", "table_name")


def parts_of_dotted_name(name: str) -> dict[str, str]:
    """`db.schema.table` -> database_name, schema_name, table_name (nothing unless all three fit)."""
    parts = name.split(".")
    if len(parts) != 3 or not all(0 < len(p) <= 50 for p in parts):
        return {}
    return dict(zip(ADDRESS_PARTS, parts, strict=True))


# -- ports ------------------------------------------------------------------------------------
class NamedStore(Protocol):
    """A repository of objects with an integer id and a project-unique, case-insensitive name.

    Records are the stored attributes (metadata decoded to objects). `create` raises NameTaken
    when the name is claimed (`create_many` answers None for each such name); `update` raises NotFound or NameTaken; a None value in `changes`
    removes the attribute.
    """

    def get(self, project: str, object_id: int) -> dict[str, Any] | None: ...
    def get_many(
        self, project: str, object_ids: set[int], consistent: bool = False
    ) -> dict[int, dict[str, Any]]: ...
    def list(self, project: str) -> list[dict[str, Any]]: ...
    def find_by_name(self, project: str, name: str) -> dict[str, Any] | None: ...
    def find_many_by_name(self, project: str, names: list[str]) -> dict[str, dict[str, Any]]: ...
    def create(self, project: str, attributes: dict[str, Any]) -> dict[str, Any]: ...
    def create_many(self, project: str, attributes: list[dict[str, Any]]) -> list[dict[str, Any] | None]: ...
    def update(self, project: str, object_id: int, changes: dict[str, Any]) -> dict[str, Any]: ...


# -- use cases --------------------------------------------------------------------------------
class Registry:
    """The use cases of Watcher's registry, over one repository per kind of object."""

    def __init__(
        self,
        pipelines: NamedStore,
        pipeline_types: NamedStore,
        addresses: NamedStore,
        address_types: NamedStore,
    ):
        self.pipelines = pipelines
        self.pipeline_types = pipeline_types
        self.addresses = addresses
        self.address_types = address_types

    # -- pipeline types ---------------------------------------------------------------------
    def upsert_pipeline_type(self, project: str, body: PipelineTypeUpsert) -> tuple[dict, bool]:
        """Create the type, or find it by name and change nothing (Watcher's get-or-create)."""
        record, created = _get_or_create(
            self.pipeline_types,
            project,
            body.name,
            {**MUTE_DEFAULTS, **_present(body.model_dump(exclude={"name"}))},
            "Pipeline type",
        )
        return {"id": record["id"]}, created

    def list_pipeline_types(self, project: str) -> list[dict]:
        return [pipeline_type_view(r) for r in self.pipeline_types.list(project)]

    def get_pipeline_type(self, project: str, type_id: int) -> dict:
        return pipeline_type_view(_require(self.pipeline_types, project, type_id, "Pipeline type"))

    def update_pipeline_type(self, project: str, body: PipelineTypePatch) -> dict:
        record = _locate(self.pipeline_types, project, body, "Pipeline type")
        changed = _apply(self.pipeline_types, project, record, body.changes(PIPELINE_TYPE_NULLABLE))
        return pipeline_type_view(changed)

    # -- pipelines --------------------------------------------------------------------------
    def upsert_pipeline(self, project: str, body: PipelineUpsert) -> tuple[dict, bool]:
        """201 with a new pipeline, or 200 with the one of that name after applying given fields.

        Names match without regard to case, so a pipeline named `User-Analytics` on another
        surface is the one `user-analytics` finds. Concurrent creators of one name end with one
        pipeline: the loser of the name claim re-reads the winner and updates it like a second call.
        """
        existing = self.pipelines.find_by_name(project, body.name)
        created = False
        if existing is None:
            type_record, _ = _get_or_create(
                self.pipeline_types, project, body.pipeline_type_name, {}, "Pipeline type"
            )
            try:
                record = self.pipelines.create(project, _new_pipeline(body, type_record["id"]))
                created = True
            except NameTaken:
                existing = _winner(self.pipelines, project, body.name, "Pipeline")
        if existing is not None:
            record = self._refresh_pipeline(project, existing, body)
        watermark = record.get("watermark") if body.next_watermark is not None else None
        response = {
            "id": record["id"],
            "active": record.get("active", True),
            "load_lineage": record.get("load_lineage", True),
            "watermark": watermark,
        }
        return response, created

    def create_pipelines(self, project: str, bodies: list[PipelineUpsert]) -> tuple[dict[str, int], set[int]]:
        """({name: id}, the ids created) after upserting pipelines of names expected to be new
        (OpenLineage's new jobs): the new ones created together (ids from one counter update,
        items and claims in transactions), each name another object holds by then upserted as
        `upsert_pipeline` does (its id is not among those created)."""
        types = {
            type_name: _get_or_create(self.pipeline_types, project, type_name, {}, "Pipeline type")[0]["id"]
            for type_name in sorted({b.pipeline_type_name for b in bodies})
        }
        attributes = [_new_pipeline(body, types[body.pipeline_type_name]) for body in bodies]
        records = self.pipelines.create_many(project, attributes)
        created = {body.name: int(r["id"]) for body, r in zip(bodies, records, strict=True) if r is not None}
        held = {
            b.name: int(self.upsert_pipeline(project, b)[0]["id"]) for b in bodies if b.name not in created
        }
        return created | held, set(created.values())

    def known_pipelines(self, project: str, wanted: dict[str, str]) -> dict[str, int]:
        """{name: id} of the pipelines among `wanted` ({name: pipeline type name}) that exist with
        that type: those `upsert_pipeline` with only the name and type would leave unchanged
        (four batched reads for any number, where upserts read four items each)."""
        found = self.pipelines.find_many_by_name(project, list(wanted))
        types = self.pipeline_types.find_many_by_name(project, sorted({wanted[n] for n in found}))
        return {
            name: int(record["id"])
            for name, record in found.items()
            if (kind := types.get(wanted[name])) is not None and record.get("pipeline_type_id") == kind["id"]
        }

    def _refresh_pipeline(self, project: str, record: dict, body: PipelineUpsert) -> dict:
        changes = _present(body.model_dump(exclude={"name", "pipeline_type_name"}, exclude_unset=True))
        type_record, _ = _get_or_create(
            self.pipeline_types, project, body.pipeline_type_name, {}, "Pipeline type"
        )
        changes["pipeline_type_id"] = type_record["id"]
        return _apply(self.pipelines, project, record, changes)

    def list_pipelines(self, project: str) -> list[dict]:
        return [pipeline_view(r) for r in self.pipelines.list(project)]

    def get_pipeline(self, project: str, pipeline_id: int) -> dict:
        return pipeline_view(_require(self.pipelines, project, pipeline_id, "Pipeline"))

    def update_pipeline(self, project: str, body: PipelinePatch) -> dict:
        record = _locate(self.pipelines, project, body, "Pipeline")
        changes = body.changes(PIPELINE_NULLABLE)
        if "pipeline_type_id" in changes:
            _require(self.pipeline_types, project, changes["pipeline_type_id"], "Pipeline type")
        return pipeline_view(_apply(self.pipelines, project, record, changes))

    # -- address types ----------------------------------------------------------------------
    def upsert_address_type(self, project: str, body: AddressTypeUpsert) -> tuple[dict, bool]:
        record, created = _get_or_create(
            self.address_types, project, body.name, {"group_name": body.group_name}, "Address type"
        )
        return {"id": record["id"]}, created

    def list_address_types(self, project: str) -> list[dict]:
        return [address_type_view(r) for r in self.address_types.list(project)]

    def get_address_type(self, project: str, type_id: int) -> dict:
        return address_type_view(_require(self.address_types, project, type_id, "Address type"))

    def update_address_type(self, project: str, body: AddressTypePatch) -> dict:
        record = _locate(self.address_types, project, body, "Address type")
        return address_type_view(_apply(self.address_types, project, record, body.changes(frozenset())))

    # -- addresses --------------------------------------------------------------------------
    def upsert_address(self, project: str, body: AddressUpsert) -> tuple[dict, bool]:
        """Create the address (and its type if new), or update the given fields of the existing one.

        A `database` address named `db.schema.table` gets its three parts from the name unless
        they are given explicitly, or (on an existing address) already stored.
        """
        type_record = self._address_type(project, body)
        given, derived = _address_fields(body)
        existing = self.addresses.find_by_name(project, body.name)
        if existing is None:
            try:
                record = self.addresses.create(project, _new_address(body, type_record["id"]))
                return {"id": record["id"]}, True
            except NameTaken:
                existing = _winner(self.addresses, project, body.name, "Address")
        fill = {k: v for k, v in derived.items() if existing.get(k) is None}
        changes = {**fill, **given, "address_type_id": type_record["id"]}
        record = _apply(self.addresses, project, existing, changes)
        return {"id": record["id"]}, False

    def create_addresses(self, project: str, bodies: list[AddressUpsert]) -> dict[str, int]:
        """{name: id} of the addresses among `bodies` (one per name) that no object held: created
        together, as `upsert_address` would create each (one counter update, items and claims in
        transactions). The names left out are held by then: `upsert_address` updates those."""
        existing = self.addresses.find_many_by_name(project, [b.name for b in bodies])
        fresh = [body for body in bodies if body.name not in existing]
        types: dict[str, int] = {}  # one get-or-create per type: the first body names its group
        attributes = []
        for body in fresh:
            if body.address_type_name not in types:
                types[body.address_type_name] = self._address_type(project, body)["id"]
            attributes.append(_new_address(body, types[body.address_type_name]))
        created = self.addresses.create_many(project, attributes)
        return {b.name: int(r["id"]) for b, r in zip(fresh, created, strict=True) if r is not None}

    def _address_type(self, project: str, body: AddressUpsert) -> dict:
        record, _ = _get_or_create(
            self.address_types,
            project,
            body.address_type_name,
            {"group_name": body.address_type_group_name},
            "Address type",
        )
        return record

    def list_addresses(self, project: str) -> list[dict]:
        return [address_view(r) for r in self.addresses.list(project)]

    def get_address(self, project: str, address_id: int) -> dict:
        return address_view(_require(self.addresses, project, address_id, "Address"))

    def update_address(self, project: str, body: AddressPatch) -> dict:
        record = _locate(self.addresses, project, body, "Address")
        changes = body.changes(ADDRESS_NULLABLE)
        if "address_type_id" in changes:
            _require(self.address_types, project, changes["address_type_id"], "Address type")
        return address_view(_apply(self.addresses, project, record, changes))


# -- helpers shared by the use cases ------------------------------------------------------------
def _present(values: dict[str, Any]) -> dict[str, Any]:
    """On a POST, a null means 'not given'."""
    return {k: v for k, v in values.items() if v is not None}


def _new_pipeline(body: PipelineUpsert, type_id: int) -> dict[str, Any]:
    """A new pipeline's attributes: Watcher's defaults under what the upsert gives."""
    given = _present(body.model_dump(exclude={"name", "pipeline_type_name"}))
    return {"name": body.name, **PIPELINE_DEFAULTS, **given, "pipeline_type_id": type_id}


def _new_address(body: AddressUpsert, type_id: int) -> dict[str, Any]:
    given, derived = _address_fields(body)
    return {"name": body.name, **derived, **given, "address_type_id": type_id}


def _address_fields(body: AddressUpsert) -> tuple[dict[str, Any], dict[str, Any]]:
    """The fields an address upsert gives, and the parts its name gives a `database` address."""
    given = _present(
        body.model_dump(exclude={"name", "address_type_name", "address_type_group_name"}, exclude_unset=True)
    )
    derived = parts_of_dotted_name(body.name) if body.address_type_group_name == "database" else {}
    return given, derived


def _require(store: NamedStore, project: str, object_id: int, label: str) -> dict:
    record = store.get(project, object_id)
    if record is None:
        raise NotFound(f"{label} {object_id} not found.")
    return record


def _locate(store: NamedStore, project: str, body: Patch, label: str) -> dict:
    if body.id is not None:
        return _require(store, project, body.id, label)
    record = store.find_by_name(project, body.name or "")
    if record is None:
        raise NotFound(f"{label} named '{body.name}' not found.")
    return record


def _winner(store: NamedStore, project: str, name: str, label: str) -> dict:
    record = store.find_by_name(project, name)
    if record is None:  # the claim and the object are written together, so this is a deletion race
        raise Conflict(f"{label} '{name}' changed while it was being created; retry.")
    return record


def _get_or_create(
    store: NamedStore, project: str, name: str, attributes: dict[str, Any], label: str
) -> tuple[dict, bool]:
    """Watcher's get-or-create: an existing object is returned unchanged."""
    found = store.find_by_name(project, name)
    if found is not None:
        return found, False
    try:
        return store.create(project, {"name": name, **attributes}), True
    except NameTaken:
        return _winner(store, project, name, label), False


def _apply(store: NamedStore, project: str, record: dict, changes: dict[str, Any]) -> dict:
    """Write only what differs from the record; nothing differing means no write (updated_at kept)."""
    differing = {k: v for k, v in changes.items() if record.get(k) != v}
    if not differing:
        return record
    return store.update(project, record["id"], differing)
