"""Sluice's Python SDK (seed 001's "SDK usage"): `from sluice.client import Client`.

Needs only httpx, pydantic and PyYAML; it imports nothing of the server (no boto3, FastAPI, DuckDB).
"""

from sluice.client.aio import AsyncClient, AsyncRun
from sluice.client.client import Client, Run
from sluice.client.errors import (
    ApiError,
    AuthenticationFailed,
    BadRequest,
    Conflict,
    ConnectionFailed,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    RateLimited,
    RunFailed,
    RunTimeout,
    ServerError,
    SluiceClientError,
    ValidationFailed,
)
from sluice.client.models import Execution, LogLine, NodeRun, Pipeline, RunInfo

__all__ = [
    "ApiError",
    "AsyncClient",
    "AsyncRun",
    "AuthenticationFailed",
    "BadRequest",
    "Client",
    "Conflict",
    "ConnectionFailed",
    "Execution",
    "LogLine",
    "NodeRun",
    "NotFound",
    "PayloadTooLarge",
    "PermissionDenied",
    "Pipeline",
    "RateLimited",
    "Run",
    "RunFailed",
    "RunInfo",
    "RunTimeout",
    "ServerError",
    "SluiceClientError",
    "ValidationFailed",
]
