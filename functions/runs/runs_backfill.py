"""Backfills of the Runs API (seed 002, SPEC 4 and 8): a parent run and one child per date, started
by the Backfill state machine with bounded concurrency; a dry run answers the dates only."""

from __future__ import annotations

import datetime as _dt
from typing import Literal

from fastapi import Depends, Response
from pydantic import BaseModel, ConfigDict

from sluice import composition
from sluice.auth.principal import Principal
from sluice.domain.run_engine import RunEngine
from sluice.edge.app import area_router, editor, json_body
from sluice.edge.responses.runs import Backfill

router = area_router()


class BackfillBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    start_date: _dt.date
    end_date: _dt.date
    dry_run: bool = False
    reprocess: Literal["all", "failed", "missing"] = "all"


@router.post("/api/pipelines/{pipeline_id}/backfill", status_code=202, response_model=Backfill)
def post_backfill(
    pipeline_id: str,
    response: Response,
    caller: Principal = Depends(editor),
    body: BackfillBody = Depends(json_body(BackfillBody)),
    engine: RunEngine = Depends(composition.run_engine),
) -> dict:
    record = engine.pipeline_by_id(caller.project, pipeline_id)
    answer, created = engine.backfill(
        caller.project, record, body.start_date, body.end_date, body.reprocess, body.dry_run
    )
    response.status_code = 202 if created else 200
    return answer
