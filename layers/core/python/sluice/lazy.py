"""Modules imported on first use, so a Lambda that may never parse SQL does not pay for it at start."""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any


class LazyModule(ModuleType):
    """Stands in for a module until an attribute is read, then imports it (once) and delegates."""

    def __init__(self, name: str):
        super().__init__(name)
        self._target: ModuleType | None = None

    def _load(self) -> ModuleType:
        if self._target is None:
            self._target = importlib.import_module(self.__name__)
        return self._target

    def __getattr__(self, attribute: str) -> Any:
        return getattr(self._load(), attribute)
