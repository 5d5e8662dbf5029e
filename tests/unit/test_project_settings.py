"""Project settings without AWS: what a PATCH body may say, and defaults for what is not stored."""

from __future__ import annotations

from dataclasses import fields

import pytest
from pydantic import ValidationError

from sluice.domain.settings import MAX_CONCURRENT_RUNS_DEFAULT, ProjectSettings, SettingsChange


def refusal(body) -> tuple[list, str]:
    with pytest.raises(ValidationError) as refused:
        SettingsChange.model_validate(body)
    (error,) = refused.value.errors(include_url=False)
    return list(error["loc"]), error["msg"]


@pytest.mark.parametrize("limit", [1, 3, 100])
def test_a_whole_number_within_bounds_is_a_change(limit):
    assert SettingsChange.model_validate({"max_concurrent_runs": limit}).changes() == {
        "max_concurrent_runs": limit
    }


@pytest.mark.parametrize("value", [0, -1, 101, 10**40, 3.0, 2.5, "3", True, None, [3], {"n": 3}])
def test_a_limit_that_is_not_a_whole_number_from_1_to_100_is_refused(value):
    assert refusal({"max_concurrent_runs": value}) == (
        ["max_concurrent_runs"],
        "max_concurrent_runs must be a whole number from 1 to 100.",
    )


@pytest.mark.parametrize("body", [[], [{"max_concurrent_runs": 3}], "3", 3, None, True])
def test_a_body_that_is_not_an_object_is_refused(body):
    loc, message = refusal(body)
    assert loc == [] and message.startswith("The body must be a JSON object of the settings to change")


def test_an_unknown_setting_is_refused_by_name_even_beside_a_known_one():
    loc, message = refusal({"max_concurrent_run": 3, "max_concurrent_runs": 3})
    assert loc == []
    assert message == "There is no setting named 'max_concurrent_run'; the settings are: max_concurrent_runs."


def test_a_body_naming_no_setting_is_refused():
    assert refusal({}) == ([], "Name at least one setting to change; the settings are: max_concurrent_runs.")


def test_every_stored_setting_can_be_changed_and_no_other():
    assert set(SettingsChange.model_fields) == {f.name for f in fields(ProjectSettings)}


def test_settings_not_stored_have_their_defaults():
    assert ProjectSettings.from_stored({}).view() == {"max_concurrent_runs": MAX_CONCURRENT_RUNS_DEFAULT}
    assert MAX_CONCURRENT_RUNS_DEFAULT == 5  # SPEC 4


def test_stored_settings_are_read_and_other_attributes_ignored():
    stored = {"PK": "P#p", "SK": "SETTINGS", "max_concurrent_runs": 2, "updated_by": "key:k1"}
    assert ProjectSettings.from_stored(stored).view() == {"max_concurrent_runs": 2}
