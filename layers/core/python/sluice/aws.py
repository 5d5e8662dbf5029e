"""boto3 clients, made once per process and shared; the only constructor of AWS clients in Sluice."""

from __future__ import annotations

import os
import threading
from typing import Any

import boto3
from botocore.config import Config

_CONFIG = Config(
    retries={"max_attempts": 4, "mode": "standard"},
    connect_timeout=3,
    read_timeout=20,
    max_pool_connections=50,
)
_lock = threading.Lock()
_clients: dict[tuple[str, str | None], Any] = {}


def client(service: str) -> Any:
    """A cached client; honours AWS_ENDPOINT_URL so the same code talks to moto or AWS."""
    key = (service, os.environ.get("AWS_ENDPOINT_URL"))
    found = _clients.get(key)
    if found is not None:
        return found
    with _lock:
        found = _clients.get(key)
        if found is None:
            found = boto3.session.Session().client(service, config=_CONFIG)
            _clients[key] = found
        return found


def reset_clients() -> None:
    """Forget cached clients (tests that point the process at a new endpoint)."""
    with _lock:
        _clients.clear()
