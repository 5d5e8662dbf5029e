"""A project's settings item: read with every default filled in, changed one attribute at a time."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from typing import Any

from sluice import timeutil
from sluice.domain.settings import ProjectSettings
from sluice.store import keys
from sluice.store.table import Table

SETTING_NAMES = frozenset(f.name for f in fields(ProjectSettings))


class SettingsRepository:
    """The run dispatcher and the settings API both read settings here, so they share defaults."""

    def __init__(self, table: Table):
        self.table = table

    def get(self, project: str, consistent: bool = True) -> ProjectSettings:
        return ProjectSettings.from_stored(
            self.table.get(*keys.project_settings(project), consistent=consistent) or {}
        )

    def change(self, project: str, changes: Mapping[str, Any], changed_by: str) -> ProjectSettings:
        """Set the named settings and nothing else, in one UpdateItem: a concurrent change of
        another setting, or any other attribute on the item, is kept. Returns the settings as
        this write left them."""
        unknown = set(changes) - SETTING_NAMES
        if unknown:
            raise ValueError(f"not settings: {sorted(unknown)}")
        updated = self.table.update(
            *keys.project_settings(project),
            set_={**changes, "updated_at": timeutil.iso(timeutil.now()), "updated_by": changed_by},
        )
        return ProjectSettings.from_stored(updated)
