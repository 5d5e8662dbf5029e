"""Response models: what each route answers, so each area's OpenAPI (`app.openapi()`) documents
its responses as well as its requests. One module per surface family, named like the views that
fill them (sluice.domain.views).

Every model is an `Answer`: the route's view produces the body, the model validates and documents
it, and the route (sluice.edge.app.AnswerRoute) serializes only the keys the view set, so a key a
view leaves out stays out and a key a model does not name passes through (`extra="allow"`).
Numbers a view may give as either type are `Number`, so an int is never turned into a float.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

Number = int | float
Json = Any  # a value the caller sent or a config holds: any JSON


class Answer(BaseModel):
    model_config = ConfigDict(extra="allow", defer_build=True)


class OpenAnswer(Answer):
    """An answer whose other keys are content, not fields: a config's own keys (seed 001's graph
    items carry their node's config in themselves)."""
