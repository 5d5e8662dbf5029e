"""Connectors (seed 003's `connectorId`): a named, typed config whose secret values live in the
secret store; the table keeps references, responses show `********`, the run engine gets the values.

Every change of a connector's secret writes the secret first and the item second, under a short
lease on the connector, so the item never points at values that are not there and a failed item
write leaves nothing behind (a secret this request created is deleted again).
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from aws_lambda_powertools import Logger
from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

from sluice.domain import ids
from sluice.domain.catalog import CatalogName, CatalogStore, PlainText
from sluice.domain.secrets import (
    MASK,
    SecretFields,
    SecretMissing,
    SecretVault,
    SplitConfig,
    check_config_shape,
    mask,
    references,
    reveal,
    split_secrets,
)
from sluice.domain.views.catalog import connector_view
from sluice.errors import InvalidRequest, NameTaken, NotFound, SluiceError

KIND = "connector"
SECRETS_COLLECTION = "connectors"
TYPE_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9_.+-]{0,63}$")
MAX_SECRET_FIELDS = 100

logger = Logger(service="sluice")


def _connector_type(value: str) -> str:
    if not TYPE_PATTERN.fullmatch(value):
        raise PydanticCustomError(
            "connector_type",
            "type is 1-64 characters: a letter, then letters, digits, '_', '.', '+' or '-' (e.g. postgres).",
        )
    return value


SecretField = Annotated[PlainText, Field(min_length=1, max_length=256)]


class ConnectorFields(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    @field_validator("type", check_fields=False)
    @classmethod
    def _type(cls, value: str | None) -> str | None:
        return None if value is None else _connector_type(value.strip())

    @field_validator("config", check_fields=False)
    @classmethod
    def _config(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None:
            check_config_shape(value)  # raises ValidationFailed, turned into a 422 by the caller
        return value

    @field_validator("secret_fields", check_fields=False)
    @classmethod
    def _secret_fields(cls, value: list[str] | None) -> list[str] | None:
        if value is not None:
            SecretFields.of(value)
        return value


class ConnectorCreate(ConnectorFields):
    """POST /api/v1/connectors `{name, type, config, secretFields?}`."""

    name: CatalogName
    type: str
    config: dict[str, Any] = Field(default_factory=dict)
    secret_fields: list[SecretField] = Field(
        default_factory=list, alias="secretFields", max_length=MAX_SECRET_FIELDS
    )


class ConnectorUpdate(ConnectorFields):
    """PUT /api/v1/connectors/{id}: the fields given replace the stored ones; null means not given."""

    name: CatalogName | None = None
    type: str | None = None
    config: dict[str, Any] | None = None
    secret_fields: list[SecretField] | None = Field(
        default=None, alias="secretFields", max_length=MAX_SECRET_FIELDS
    )


class Connectors:
    """The connector use cases over a repository and the secret store."""

    def __init__(self, store: CatalogStore, vault: SecretVault):
        self.store = store
        self.vault = vault

    def create(self, project: str, body: ConnectorCreate) -> dict[str, Any]:
        if self.store.find_by_name(project, body.name) is not None:
            raise NameTaken(f"Connector name '{body.name}' is already taken in this project.")
        split = split_secrets(body.config, SecretFields.of(body.secret_fields))
        connector_id = self.store.next_id(project)
        attributes = {
            "name": body.name,
            "type": body.type,
            "config": split.stored,
            "secret_fields": list(body.secret_fields),
        }
        secret_name = self.vault.name_for(project, SECRETS_COLLECTION, connector_id)
        created_secret = False
        if split.secrets:
            written = self.vault.write(secret_name, split.secrets)
            attributes["secret_version"] = written.version_id
            created_secret = True  # the id is new, so whatever is under that name is this request's
        try:
            record = self.store.insert(project, connector_id, attributes)
        except BaseException:
            if created_secret:
                self._forget_secret(secret_name)
            raise
        return connector_view(record)

    def list(self, project: str, limit: int | None, cursor: str | None) -> tuple[list[dict], str | None]:
        records, next_cursor = self.store.page(project, limit, cursor)
        return [connector_view(r) for r in records], next_cursor

    def get(self, project: str, connector_id: str | int) -> dict[str, Any]:
        return connector_view(self._require(project, ids.parse(KIND, connector_id)))

    def update(self, project: str, connector_id: str | int, body: ConnectorUpdate) -> dict[str, Any]:
        number = ids.parse(KIND, connector_id)
        self._precheck(project, number, body)
        with self.store.lease(project, number):
            current = self._require(project, number)
            if body.name is not None and _other_owner(self.store.find_by_name(project, body.name), number):
                raise NameTaken(f"Connector name '{body.name}' is already taken in this project.")
            changes: dict[str, Any] = {}
            if body.name is not None:
                changes["name"] = body.name
            if body.type is not None:
                changes["type"] = body.type
            secret_name = self.vault.name_for(project, SECRETS_COLLECTION, number)
            written = None
            drop_secret = False
            if body.config is not None or body.secret_fields is not None:
                fields = body.secret_fields
                if fields is None:
                    fields = list(current.get("secret_fields") or [])
                stored_secrets = self._secrets_of(project, current)
                # Without a new config, the current one is re-split: its secrets stay secret (their
                # mask keeps them) and values newly named in secretFields move to the secret store.
                config = body.config if body.config is not None else mask(current.get("config") or {})
                split = split_secrets(config, SecretFields.of(fields), kept=stored_secrets)
                changes["config"] = split.stored
                changes["secret_fields"] = list(fields)
                if split.secrets != stored_secrets:
                    written, drop_secret = self._store_secrets(secret_name, split, current)
                    changes["secret_version"] = written.version_id if written else None
            try:
                record = self.store.change(project, current, changes)
            except BaseException:
                if written is not None and written.created:
                    self._forget_secret(secret_name)
                raise
            if drop_secret:
                self._forget_secret(secret_name)
            return connector_view(record)

    def delete(self, project: str, connector_id: str | int) -> None:
        number = ids.parse(KIND, connector_id)
        with self.store.lease(project, number):
            current = self._require(project, number)
            self.store.remove(project, current)  # InUse while a pipeline refers to it
            if current.get("secret_version"):
                self._forget_secret(self.vault.name_for(project, SECRETS_COLLECTION, number))

    def resolve_config(self, project: str, connector_id: str | int) -> dict[str, Any]:
        """The connector's config with its real secret values: for the run engine, never a response."""
        number = ids.parse(KIND, connector_id)
        current = self._require(project, number)
        try:
            return reveal(current.get("config") or {}, self._secrets_of(project, current))
        except SecretMissing as exc:
            raise InvalidRequest(
                f"The secret values of {ids.render(KIND, number)} are missing from the secret store; "
                "PUT its config again."
            ) from exc

    # -- internals ---------------------------------------------------------------------------------
    def _require(self, project: str, number: int) -> dict[str, Any]:
        record = self.store.record(project, number)
        if record is None:
            raise NotFound(f"Connector {ids.render(KIND, number)} not found.")
        return record

    def _precheck(self, project: str, number: int, body: ConnectorUpdate) -> None:
        """Refuse what can be refused before taking the lease and reading the secret: an unknown
        connector, a taken name, a mask where no secret is stored."""
        current = self._require(project, number)
        if body.name is not None and _other_owner(self.store.find_by_name(project, body.name), number):
            raise NameTaken(f"Connector name '{body.name}' is already taken in this project.")
        if body.config is not None:
            stored = dict.fromkeys(references(current.get("config") or {}), MASK)
            fields = body.secret_fields if body.secret_fields is not None else current.get("secret_fields")
            split_secrets(body.config, SecretFields.of(fields), kept=stored)

    def _secrets_of(self, project: str, record: dict[str, Any]) -> dict[str, Any]:
        version = record.get("secret_version")
        if not version:
            return {}
        name = self.vault.name_for(project, SECRETS_COLLECTION, int(record["id"]))
        return self.vault.read(name, version)

    def _store_secrets(self, name: str, split: SplitConfig, current: dict[str, Any]) -> tuple[Any, bool]:
        """(the write, whether to delete the secret once the item no longer refers to it)."""
        if split.secrets:
            return self.vault.write(name, split.secrets), False
        return None, bool(current.get("secret_version"))

    def _forget_secret(self, name: str) -> None:
        # Cleanup after the item is settled: a failure here leaves an unreferenced secret, which is
        # logged (by name only) rather than failing a request whose effect is already complete.
        try:
            self.vault.delete(name)
        except SluiceError:
            logger.warning("could not delete an unreferenced secret", extra={"secret_name": name})


def _other_owner(found: dict[str, Any] | None, number: int) -> bool:
    return found is not None and int(found["id"]) != number
