"""Access: turning a bearer token into a Principal, and managing a project's API keys."""

from __future__ import annotations

import secrets
from typing import Protocol

from sluice.auth.principal import Principal, Role, valid_project
from sluice.auth.tokens import decode_jwt, generate_api_key, hash_api_key, is_api_key
from sluice.domain.views.access import api_key_view
from sluice.errors import Unauthorized, ValidationFailed

BOOTSTRAP_KEY_ID = "bootstrap-admin"


class ApiKeyStore(Protocol):
    def create(
        self, project: str, key_id: str, name: str, role: str, key_hash: str, created_by: str
    ) -> dict: ...
    def find_by_hash(self, key_hash: str) -> dict | None: ...
    def list(self, project: str) -> list[dict]: ...
    def revoke(self, project: str, key_id: str) -> None: ...
    def exists(self, project: str, key_id: str) -> bool: ...


def authenticate(token: str, keys: ApiKeyStore, jwt_secret: str) -> Principal:
    """Resolve a bearer token to a Principal, or raise Unauthorized with the reason."""
    if token.startswith("df_key_"):
        if not is_api_key(token):
            raise Unauthorized("API key is malformed; keys look like df_key_ followed by 32+ characters.")
        found = keys.find_by_hash(hash_api_key(token))
        if found is None:
            raise Unauthorized("API key is unknown or has been revoked.")
        return Principal(
            project=found["project"],
            role=Role[found["role"]],
            subject=f"key:{found['id']}",
            key_id=found["id"],
        )
    claims = decode_jwt(token, jwt_secret)
    project = str(claims["project"])
    if not valid_project(project):
        raise Unauthorized("JWT claim project must be 1-64 letters, digits, '.', '_' or '-'.")
    try:
        role = Role.parse(str(claims["role"]))
    except ValidationFailed as exc:
        raise Unauthorized(
            f"JWT claim role must be viewer, editor or admin, not '{claims['role']}'."
        ) from exc
    return Principal(project=project, role=role, subject=str(claims["sub"]))


def create_api_key(caller: Principal, name: str, role: str, keys: ApiKeyStore) -> dict:
    """A new key in the caller's project; the secret is returned here and never again."""
    caller.require(Role.admin)
    parsed = Role.parse(role)
    secret = generate_api_key()
    key_id = "key_" + secrets.token_hex(8)
    record = keys.create(caller.project, key_id, name, parsed.name, hash_api_key(secret), caller.subject)
    return {**api_key_view(record), "key": secret}


def list_api_keys(project: str, keys: ApiKeyStore) -> list[dict]:
    """The project's keys as listed: never a secret or a hash."""
    return [api_key_view(record) for record in keys.list(project)]


def bootstrap_admin_key(project: str, secret: str, keys: ApiKeyStore) -> bool:
    """Make `secret` an admin key of `project` (the local stack's SLUICE_ADMIN_KEY). True if new."""
    if not is_api_key(secret):
        raise ValidationFailed(
            "SLUICE_ADMIN_KEY must look like df_key_ followed by at least 32 URL-safe characters."
        )
    existing = keys.find_by_hash(hash_api_key(secret))
    if existing is not None:
        return False
    key_id = BOOTSTRAP_KEY_ID if not keys.exists(project, BOOTSTRAP_KEY_ID) else "key_" + secrets.token_hex(8)
    keys.create(project, key_id, "bootstrap admin", Role.admin.name, hash_api_key(secret), "sluice dev")
    return True
