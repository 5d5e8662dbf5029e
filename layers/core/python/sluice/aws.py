"""boto3 clients, made once per process and shared; the only constructor of AWS clients in Sluice."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any

_CONFIG: Any = None
_lock = threading.Lock()
_clients: dict[tuple[str, str | None, str | None], Any] = {}
_client_hooks: list[Callable[[str, Any], None]] = []
_generation = 0


def client(service: str) -> Any:
    """A cached client; honours AWS_ENDPOINT_URL (and botocore's per-service AWS_ENDPOINT_URL_<SERVICE>,
    which the local stack sets for DynamoDB) so the same code talks to the local stack or AWS."""
    key = (
        service,
        os.environ.get("AWS_ENDPOINT_URL"),
        os.environ.get(f"AWS_ENDPOINT_URL_{service.upper().replace('-', '_')}"),
    )
    found = _clients.get(key)
    if found is not None:
        return found
    with _lock:
        found = _clients.get(key)
        if found is None:
            found = boto3_session().client(service, config=_client_config())
            for hook in _client_hooks:
                hook(service, found)
            _clients[key] = found
        return found


def boto3_session() -> Any:
    # Imported on first use: an area's module imports in ~100 ms less, and boto3 loads with the
    # first AWS call instead (docs/performance.md reports both figures).
    import boto3

    return boto3.session.Session()


def _client_config() -> Any:
    global _CONFIG
    if _CONFIG is None:
        from botocore.config import Config

        _CONFIG = Config(
            retries={"max_attempts": 4, "mode": "standard"},
            connect_timeout=3,
            read_timeout=20,
            max_pool_connections=50,
        )
    return _CONFIG


def reset_clients() -> None:
    """Forget cached clients (tests that point the process at a new endpoint or moto account)."""
    global _generation
    with _lock:
        _clients.clear()
        _generation += 1


def client_generation() -> int:
    """How many times the cached clients were dropped: what is cached about the data behind them
    (the composition root's revision graphs) is kept per generation."""
    return _generation


def add_client_hook(hook: Callable[[str, Any], None]) -> None:
    """Call `hook(service, client)` for every client made from now on and every cached one.

    The local stack uses it to notice writes (and save its state); benchmarks to count calls.
    """
    with _lock:
        _client_hooks.append(hook)
        cached = list(_clients.items())
    for (service, _endpoint, _service_endpoint), made in cached:
        hook(service, made)


def remove_client_hook(hook: Callable[[str, Any], None]) -> None:
    with _lock:
        if hook in _client_hooks:
            _client_hooks.remove(hook)
