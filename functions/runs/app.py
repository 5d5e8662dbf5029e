"""Runs area: one Lambda, its routes in one router module per concern beside this file:
Watcher's execution reports (runs_executions), the Runs API of seed 002 (runs_api), runs of a
pipeline definition by name or id (runs_definitions, seeds 001 and 003), flow runs (runs_flows,
seed 000). Their shared trigger body and Idempotency-Key are runs_triggers'.
"""

from __future__ import annotations

import sys
from pathlib import Path

from sluice.edge.app import create_app, lambda_handler

# Lambda puts this directory on sys.path; the local stack and the tests load this file by its path,
# so it is put there here. The modules beside it are named runs_* to be unique across the areas.
_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.append(_HERE)

import runs_api  # noqa: E402
import runs_backfill  # noqa: E402
import runs_definitions  # noqa: E402
import runs_executions  # noqa: E402
import runs_flows  # noqa: E402

app = create_app(
    "runs",
    [
        runs_executions.router,
        runs_api.router,
        runs_definitions.router,
        runs_flows.router,
        runs_backfill.router,
    ],
)
handler = lambda_handler(app, "runs")
