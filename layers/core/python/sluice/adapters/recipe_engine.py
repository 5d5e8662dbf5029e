"""The node engine's sandboxed DuckDB and the data bucket as the flow area's RecipeEngine."""

from __future__ import annotations

from typing import Any

from sluice.adapters.node_engine import OnDataBucket
from sluice.errors import ValidationFailed


class EngineRecipes(OnDataBucket):
    def columns(self, project: str, dataset: str) -> list[str] | None:
        from sluice.engine.recipe_preview import dataset_columns

        return dataset_columns(self.storage, project, dataset)

    def preview(self, project: str, sql: str, inputs: list[str], limit: int) -> dict[str, Any]:
        from sluice.engine.recipe_preview import PreviewFailed, preview_model

        try:
            return preview_model(self.storage, project, sql, inputs, limit=limit)
        except PreviewFailed as exc:
            raise ValidationFailed(f"The recipe fails on a sample of its inputs: {exc}") from exc

    def preview_sql(self, project: str, sql: str, limit: int) -> dict[str, Any]:
        from sluice.engine.recipe_preview import PreviewFailed, preview_sql

        try:
            return preview_sql(self.storage, project, sql, limit=limit)
        except PreviewFailed as exc:
            raise ValidationFailed(f"The recipe fails on a sample of its inputs: {exc}") from exc


class S3ModelFiles(OnDataBucket):
    """A recipe's dbt model file and YAML sidecar, `projects/<p>/models/<name>.sql|.yml`, in the
    data bucket."""

    @staticmethod
    def key(project: str, model_name: str, suffix: str) -> str:
        from sluice.engine.artifacts import project_prefix, segment

        return f"{project_prefix(project)}models/{segment(model_name)}.{suffix}"

    def write(self, project: str, model_name: str, sql: str, sidecar: str) -> None:
        objects, bucket = self.storage.objects, self.storage.bucket
        objects.write(bucket, self.key(project, model_name, "sql"), sql.encode("utf-8"))
        objects.write(bucket, self.key(project, model_name, "yml"), sidecar.encode("utf-8"))
