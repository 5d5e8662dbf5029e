"""Runtime settings read from the environment that template.yaml (or the local stack) sets."""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Settings:
    table_name: str
    data_bucket: str
    event_bus_name: str
    run_queue_url: str
    check_queue_url: str
    jwt_secret: str
    stage: str
    secrets_prefix: str = ""  # names of Sluice's secrets start with it ("sluice/<stage>/")

    @classmethod
    def from_env(cls) -> Settings:
        env = os.environ
        return cls(
            table_name=env.get("TABLE_NAME", ""),
            data_bucket=env.get("DATA_BUCKET", ""),
            event_bus_name=env.get("EVENT_BUS_NAME", ""),
            run_queue_url=env.get("RUN_QUEUE_URL", ""),
            check_queue_url=env.get("CHECK_QUEUE_URL", ""),
            jwt_secret=env.get("SLUICE_JWT_SECRET", ""),
            stage=env.get("SLUICE_STAGE", "dev"),
            secrets_prefix=env.get("SECRETS_PREFIX") or f"sluice/{env.get('SLUICE_STAGE', 'dev')}/",
        )


def settings() -> Settings:
    # Read on each call: the local stack and tests set the environment after import.
    return Settings.from_env()
