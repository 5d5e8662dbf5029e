"""What the run triggers of the runs area read: the trigger body (one model, two seeds' spellings),
its translation into the run engine's RunRequest, and the Idempotency-Key header."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from sluice.domain.run_engine import RunRequest
from sluice.edge.app import json_body
from sluice.errors import ValidationFailed

MAX_IDEMPOTENCY_KEY = 255


class TriggerBody(BaseModel):
    """Seed 002's trigger; seed 001's fields are accepted too (one trigger, two spellings)."""

    model_config = ConfigDict(extra="ignore")
    params: dict[str, Any] = Field(default_factory=dict)
    variables: dict[str, Any] = Field(default_factory=dict)
    full_refresh: bool = False
    dry_run: bool = False
    # Sluice's addition (SPEC 4, scopes inside one pipeline): run `node` and its ancestors,
    # descendants, both, or only it; `full` without a node is the whole pipeline.
    scope: Literal["single", "upstream", "downstream", "full"] = "full"
    node: str | None = None

    def run_request(self, trigger: str = "api") -> RunRequest:
        return RunRequest(
            params=self.params,
            variables=self.variables,
            full_refresh=self.full_refresh,
            scope=self.scope,
            target_node=self.node,
            trigger=trigger,
        )


# Seed 002's curl examples post no body to some triggers: an empty one means the defaults.
trigger_body = json_body(TriggerBody, empty_is_object=True)


def checked_key(header: str | None) -> str | None:
    """The Idempotency-Key header, 1 to 255 characters once trimmed (422 otherwise)."""
    if header is None:
        return None
    key = header.strip()
    if not key or len(key) > MAX_IDEMPOTENCY_KEY:
        raise ValidationFailed(f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} characters.")
    return key
