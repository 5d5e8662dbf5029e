"""The flow area's codegen (seed 000 "Visual <-> SQL round-trip", SPEC 6): compile a visual recipe
config to its SQL model, parse a model back to a config, its column lineage, and a preview on a
sample of the inputs. Pure but for one port, the engine, which knows the datasets' columns and runs
a preview in its sandbox.

Where the inputs are datasets Sluice has written, their columns are used: output columns are exact,
a derive of an existing column replaces it in place, and a reference to a column that does not exist
is a 422 naming it. Inputs never written fall back to the columns the config names.
"""

from __future__ import annotations

import re
from typing import Any, Protocol

from sluice.domain.recipe_lineage import recipe_lineage
from sluice.domain.recipe_parse import parse_recipe
from sluice.domain.recipes import compile_recipe
from sluice.errors import ValidationFailed

PREVIEW_LIMIT = 100
MAX_SQL_CHARS = 200_000
MODEL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")


class RecipeEngine(Protocol):
    def columns(self, project: str, dataset: str) -> list[str] | None:
        """The dataset's columns, None if it was never written."""

    def preview(self, project: str, sql: str, inputs: list[str], limit: int) -> dict[str, Any]:
        """`{columns, rows}` of the model over samples of its inputs; ValidationFailed with DuckDB's
        message when it fails on them."""

    def preview_sql(self, project: str, sql: str, limit: int) -> dict[str, Any]:
        """The same for a SQL model (one SELECT reading datasets by ref())."""


def check_model_name(name: Any) -> str:
    """A model name is a safe identifier: it names an S3 object and a dbt model."""
    if not isinstance(name, str) or MODEL_NAME.fullmatch(name) is None:
        raise ValidationFailed(
            f"model_name {name!r} is not a safe identifier: a letter or underscore, then letters, digits or "
            "underscores, at most 128 characters."
        )
    return name


class FlowCodegen:
    def __init__(self, engine: RecipeEngine):
        self.engine = engine

    def known_columns(self, project: str, config: Any) -> dict[str, list[str]]:
        inputs = compile_recipe(config).inputs  # validates the config first
        known = {}
        for name in dict.fromkeys(inputs):
            columns = self.engine.columns(project, name)
            if columns is not None:
                known[name] = columns
        return known

    def generate(self, project: str, config: Any) -> dict[str, Any]:
        return compile_recipe(config, self.known_columns(project, config)).to_dict()

    @staticmethod
    def parse(sql: Any) -> dict[str, Any] | None:
        return parse_recipe(sql)

    def lineage(self, project: str, model_name: Any, config: Any) -> dict[str, Any]:
        name = check_model_name(model_name)
        return recipe_lineage(name, config, self.known_columns(project, config))

    def preview(self, project: str, config: Any, limit: int = PREVIEW_LIMIT) -> dict[str, Any]:
        """A visual config's preview, or a SQL recipe's (`{sql}`, no recipe_type)."""
        if isinstance(config, dict) and "recipe_type" not in config and config.get("sql") is not None:
            sql = config["sql"]
            if not isinstance(sql, str) or not sql.strip() or len(sql) > MAX_SQL_CHARS:
                raise ValidationFailed(
                    f"sql must be a non-empty string of at most {MAX_SQL_CHARS} characters."
                )
            return {"sql": sql, **self.engine.preview_sql(project, sql, limit)}
        known = self.known_columns(project, config)
        compiled = compile_recipe(config, known)
        missing = [name for name in compiled.inputs if name not in known]
        if missing:
            raise ValidationFailed(
                f"Input {', '.join(repr(m) for m in missing)} is not a dataset of this project; a preview "
                "samples rows of datasets a pipeline has written."
            )
        return {"sql": compiled.sql, **self.engine.preview(project, compiled.sql, compiled.inputs, limit)}
