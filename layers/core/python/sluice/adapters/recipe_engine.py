"""The node engine's sandboxed DuckDB and the data bucket as the flow area's RecipeEngine."""

from __future__ import annotations

from typing import Any

from sluice.errors import ValidationFailed


class EngineRecipes:
    def __init__(self, storage: Any = None):
        self._storage = storage

    @property
    def storage(self) -> Any:
        if self._storage is None:
            from sluice.engine import Storage

            self._storage = Storage.s3()
        return self._storage

    def columns(self, project: str, dataset: str) -> list[str] | None:
        from sluice.engine.recipe_preview import dataset_columns

        return dataset_columns(self.storage, project, dataset)

    def preview(self, project: str, sql: str, inputs: list[str], limit: int) -> dict[str, Any]:
        from sluice.engine.recipe_preview import PreviewFailed, preview_model

        try:
            return preview_model(self.storage, project, sql, inputs, limit=limit)
        except PreviewFailed as exc:
            raise ValidationFailed(f"The recipe fails on a sample of its inputs: {exc}") from exc
