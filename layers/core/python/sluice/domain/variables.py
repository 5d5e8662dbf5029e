"""Variables (SPEC 3, seed 001's run `variables`): project-wide strings that node configs reference
as `${var.KEY}`, substituted when a run starts; secret ones live in the secret store.

Values are strings: a number or boolean given is stored as its JSON text (`42`, `1.5`, `true`),
so `${var.KEY}` always inserts text. `$${var.KEY}` is the escape for a literal `${var.KEY}`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from contextlib import AbstractContextManager
from typing import Annotated, Any, Protocol

from aws_lambda_powertools import Logger
from pydantic import BaseModel, BeforeValidator, ConfigDict, StrictBool
from pydantic_core import PydanticCustomError

from sluice.domain.catalog import Description
from sluice.domain.secrets import MASK, SecretMissing, SecretVault, display
from sluice.domain.views.catalog import variable_view
from sluice.errors import InvalidRequest, NotFound, SluiceError, ValidationFailed

KEY_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
MAX_VALUE_CHARS = 32_768
SECRETS_COLLECTION = "variables"
_REFERENCE = re.compile(r"\$(\$)?\{var\.([^}]*)\}")

logger = Logger(service="sluice")


def variable_text(value: Any) -> str:
    """A variable's value as stored: strings as given; numbers and booleans as their JSON text."""
    if isinstance(value, str):
        return value
    if (
        isinstance(value, bool | int | float)
        and value == value
        and value not in (float("inf"), float("-inf"))
    ):
        return json.dumps(value)
    raise ValueError("a variable's value is a string, a number or a boolean")


def _value(value: Any) -> str:
    try:
        text = variable_text(value)
    except ValueError as exc:
        raise PydanticCustomError("variable_value", "value must be a string, a number or a boolean.") from exc
    if len(text) > MAX_VALUE_CHARS:
        raise PydanticCustomError("string_too_long", f"value must be at most {MAX_VALUE_CHARS} characters.")
    return text


def check_key(key: str) -> str:
    if not KEY_PATTERN.fullmatch(key or ""):
        raise ValidationFailed(
            f"Variable key '{key[:140]}' is not valid: 1-128 characters, letters, digits and '_', "
            "not starting with a digit."
        )
    return key


class VariableWrite(BaseModel):
    """PUT /api/v1/variables/{key} `{value, secret?, description?}`.

    `secret` omitted keeps the variable's current secrecy (a new variable is not secret).
    """

    model_config = ConfigDict(extra="ignore")

    value: Annotated[str, BeforeValidator(_value)]
    secret: StrictBool | None = None
    description: Description | None = None


# -- substitution -----------------------------------------------------------------------------------
def referenced_variables(config: Any) -> set[str]:
    """The keys `substitute_variables` would fill in `config`: well-formed `${var.KEY}` references
    at any depth, not the `$${var.KEY}` escapes."""
    text = json.dumps(config, ensure_ascii=False)
    return {
        found.group(2)
        for found in _REFERENCE.finditer(text)
        if not found.group(1) and KEY_PATTERN.fullmatch(found.group(2))
    }


def substitute_variables(
    config: Any,
    variables: Mapping[str, str],
    overrides: Mapping[str, Any] | None = None,
    *,
    where: str = "config",
) -> Any:
    """`config` with `${var.KEY}` replaced in every string, at any depth (keys are left alone).

    A run's `overrides` win over the project's variables. Replaced text is not scanned again.
    `$${var.KEY}` stands for a literal `${var.KEY}`. Unknown keys and malformed references raise
    ValidationFailed naming each key and where it was used.
    """
    values = {**variables, **{k: variable_text(v) for k, v in (overrides or {}).items()}}
    unknown: dict[str, str] = {}

    def substitute(text: str, path: tuple) -> str:
        def replace(found: re.Match[str]) -> str:
            key = found.group(2)
            if found.group(1):
                return "${var." + key + "}"
            if not KEY_PATTERN.fullmatch(key):
                raise ValidationFailed(
                    f"{display(path, where)} has a malformed variable reference '${{var.{key[:140]}}}'; "
                    "keys are letters, digits and '_', not starting with a digit."
                )
            if key not in values:
                unknown.setdefault(key, display(path, where))
                return found.group(0)
            return values[key]

        return _REFERENCE.sub(replace, text) if "{var." in text else text

    def walk(value: Any, path: tuple) -> Any:
        if isinstance(value, str):
            return substitute(value, path)
        if isinstance(value, dict):
            return {k: walk(v, (*path, k)) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [walk(v, (*path, i)) for i, v in enumerate(value)]
        return value

    result = walk(config, ())
    if unknown:
        named = ", ".join(f"'{key}' (in {place})" for key, place in unknown.items())
        noun = "variable" if len(unknown) == 1 else "variables"
        raise ValidationFailed(f"Unknown {noun} {named}; define it with PUT /api/v1/variables/{{key}}.")
    return result


# -- use cases --------------------------------------------------------------------------------------
class VariableStore(Protocol):
    def get(self, project: str, key: str) -> dict[str, Any] | None: ...
    def page(
        self, project: str, limit: int | None, cursor: str | None
    ) -> tuple[list[dict[str, Any]], str | None]: ...
    def put(self, project: str, key: str, attributes: dict[str, Any], current: dict | None) -> dict: ...
    def remove(self, project: str, current: dict[str, Any]) -> None: ...
    def lease(self, project: str, key: str) -> AbstractContextManager[None]: ...


class Variables:
    def __init__(self, store: VariableStore, vault: SecretVault):
        self.store = store
        self.vault = vault

    def put(self, project: str, key: str, body: VariableWrite) -> tuple[dict[str, Any], bool]:
        """Create (True) or replace (False) the variable; a secret value is written first."""
        check_key(key)
        if body.value == MASK:
            _check_mask(body, self.store.get(project, key))  # refuse before taking the lease
        with self.store.lease(project, key):
            current = self.store.get(project, key)
            was_secret = bool(current and current.get("secret"))
            secret = body.secret if body.secret is not None else was_secret
            keep_secret = body.value == MASK
            if keep_secret:
                _check_mask(body, current)
            attributes: dict[str, Any] = {"key": key, "secret": secret}
            if body.description is not None:
                attributes["description"] = body.description
            elif current is not None and current.get("description") is not None:
                attributes["description"] = current["description"]  # PUT without one keeps it
            name = self.vault.name_for(project, SECRETS_COLLECTION, key)
            written = None
            if keep_secret:
                attributes["secret_version"] = current["secret_version"]  # type: ignore[index]
            elif secret:
                written = self.vault.write(name, {"value": body.value})
                attributes["secret_version"] = written.version_id
            else:
                attributes["value"] = body.value
            try:
                record = self.store.put(project, key, attributes, current)
            except BaseException:
                if written is not None and written.created:
                    self._forget_secret(name)
                raise
            if was_secret and not secret:
                self._forget_secret(name)
            return variable_view(record), current is None

    def get(self, project: str, key: str) -> dict[str, Any]:
        return variable_view(self._require(project, check_key(key)))

    def list(self, project: str, limit: int | None, cursor: str | None) -> tuple[list[dict], str | None]:
        records, next_cursor = self.store.page(project, limit, cursor)
        return [variable_view(r) for r in records], next_cursor

    def delete(self, project: str, key: str) -> None:
        check_key(key)
        with self.store.lease(project, key):
            current = self._require(project, key)
            self.store.remove(project, current)
            if current.get("secret"):
                self._forget_secret(self.vault.name_for(project, SECRETS_COLLECTION, key))

    def resolve(self, project: str) -> dict[str, str]:
        """Every variable's real value (secret ones read from the secret store), for the run engine."""
        resolved: dict[str, str] = {}
        cursor = None
        while True:
            records, cursor = self.store.page(project, 100, cursor)
            for record in records:
                resolved[record["key"]] = self._value_of(project, record)
            if cursor is None:
                return resolved

    def _value_of(self, project: str, record: dict[str, Any]) -> str:
        if not record.get("secret"):
            return record.get("value", "")
        name = self.vault.name_for(project, SECRETS_COLLECTION, record["key"])
        try:
            return self.vault.read(name, record["secret_version"])["value"]
        except (SecretMissing, KeyError) as exc:
            raise InvalidRequest(
                f"The value of secret variable '{record['key']}' is missing from the secret store; PUT it again."
            ) from exc

    def _require(self, project: str, key: str) -> dict[str, Any]:
        record = self.store.get(project, key)
        if record is None:
            raise NotFound(f"Variable '{key}' not found.")
        return record

    def _forget_secret(self, name: str) -> None:
        try:
            self.vault.delete(name)
        except SluiceError:
            logger.warning("could not delete an unreferenced secret", extra={"secret_name": name})


def _check_mask(body: VariableWrite, current: dict[str, Any] | None) -> None:
    """`********` keeps a secret variable's value; anywhere else it is refused."""
    was_secret = bool(current and current.get("secret"))
    if not was_secret or body.secret is False:
        raise ValidationFailed(
            f"'{MASK}' is the mask of a secret value; send the value itself"
            + (" to make this variable plain." if was_secret else ".")
        )
