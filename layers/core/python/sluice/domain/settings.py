"""Project settings (SPEC 4): what a project may tune, each setting's default and bounds, and the
change a `PATCH /api/system/settings` body asks for."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, model_validator
from pydantic_core import PydanticCustomError

MAX_CONCURRENT_RUNS_DEFAULT = 5
# At least 1: with no slot, pending runs would circle the run queue until its redrive policy moves
# them to the dead-letter queue. At most 100: a project should not be able to take the account's
# whole Lambda and Step Functions concurrency.
MAX_CONCURRENT_RUNS_MIN = 1
MAX_CONCURRENT_RUNS_MAX = 100


@dataclass(frozen=True)
class ProjectSettings:
    """A project's settings, each one either as the project set it or its default."""

    max_concurrent_runs: int = MAX_CONCURRENT_RUNS_DEFAULT

    @classmethod
    def from_stored(cls, stored: Mapping[str, Any]) -> ProjectSettings:
        """The settings a stored item holds; a setting the item lacks has its default."""
        return cls(max_concurrent_runs=int(stored.get("max_concurrent_runs", MAX_CONCURRENT_RUNS_DEFAULT)))

    def view(self) -> dict[str, Any]:
        return asdict(self)


def _concurrent_runs(value: Any) -> int:
    # JSON's true is not 1 and 3.0 or "3" is not a whole number here: a wrong type is 422.
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or not (MAX_CONCURRENT_RUNS_MIN <= value <= MAX_CONCURRENT_RUNS_MAX)
    ):
        raise PydanticCustomError(
            "max_concurrent_runs",
            "max_concurrent_runs must be a whole number from {min} to {max}.",
            {"min": MAX_CONCURRENT_RUNS_MIN, "max": MAX_CONCURRENT_RUNS_MAX},
        )
    return value


class SettingsChange(BaseModel):
    """The settings a PATCH changes; the ones it leaves out keep their value.

    Unlike other bodies, an unknown key is refused rather than ignored: a misspelt setting would
    otherwise answer 200 and change nothing.
    """

    model_config = ConfigDict(extra="forbid")

    max_concurrent_runs: Annotated[int | None, BeforeValidator(_concurrent_runs)] = None

    @model_validator(mode="before")
    @classmethod
    def _names_known_settings(cls, data: Any) -> Any:
        settable = ", ".join(cls.model_fields)
        if not isinstance(data, dict):
            raise PydanticCustomError(
                "settings_object",
                "The body must be a JSON object of the settings to change; the settings are: {settable}.",
                {"settable": settable},
            )
        unknown = sorted(str(key) for key in data if key not in cls.model_fields)
        if unknown:
            raise PydanticCustomError(
                "unknown_setting",
                "There is no setting named {unknown}; the settings are: {settable}.",
                {"unknown": ", ".join(f"'{name[:60]}'" for name in unknown[:5]), "settable": settable},
            )
        if not data:
            raise PydanticCustomError(
                "no_setting",
                "Name at least one setting to change; the settings are: {settable}.",
                {"settable": settable},
            )
        return data

    def changes(self) -> dict[str, Any]:
        """The settings the body named, with their new values."""
        return {name: getattr(self, name) for name in self.model_fields_set}
