"""An API key as the platform area answers it: never its hash (and its secret only once, on create)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

PUBLIC_FIELDS = ("id", "name", "role", "created_at", "created_by")


def api_key_view(record: Mapping[str, Any]) -> dict[str, Any]:
    return {name: record[name] for name in PUBLIC_FIELDS if name in record}
