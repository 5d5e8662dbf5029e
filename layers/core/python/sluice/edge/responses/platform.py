"""The platform area: liveness, API keys, project settings."""

from __future__ import annotations

from sluice.edge.responses import Answer


class Liveness(Answer):
    status: str
    version: str | None = None


class ApiKey(Answer):
    """An API key as listed: never its secret or hash."""

    id: str
    name: str
    role: str
    created_at: str | None = None
    created_by: str | None = None


class NewApiKey(ApiKey):
    key: str  # the secret, answered here once and never again


class ApiKeys(Answer):
    data: list[ApiKey]


class ProjectSettings(Answer):
    max_concurrent_runs: int
