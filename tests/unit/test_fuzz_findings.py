"""Defects schemathesis found over the served OpenAPI (tests/e2e/test_fuzz.py), each kept as the
smallest request body that showed it, so it cannot come back unnoticed."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from sluice.domain.definition_requests import DefinitionRequest


def test_a_null_version_clears_it_instead_of_failing_the_length_check():
    # Was: TypeError "Unable to apply constraint 'max_length' to supplied value None" -> 500 on
    # PUT /api/v1/pipelines/{name} with `version: null`.
    request = DefinitionRequest.model_validate({"name": "p", "version": None})
    assert request.version is None and "version" in request.model_fields_set
    assert DefinitionRequest.model_validate({"version": 1.0}).version == "1.0"
    with pytest.raises(ValidationError, match="at most 50 characters"):
        DefinitionRequest.model_validate({"version": "x" * 51})


def test_a_retention_beyond_a_century_is_refused_not_a_date_overflow():
    # Was: OverflowError computing the cutoff -> 500 on POST /log_cleanup {"retention_days": 7.3e23}.
    from sluice.domain.log_cleanup import MAX_RETENTION_DAYS, CleanupRequest

    assert CleanupRequest.model_validate({"retention_days": MAX_RETENTION_DAYS}).retention_days == 36_500
    with pytest.raises(ValidationError, match="less than or equal to 36500"):
        CleanupRequest.model_validate({"retention_days": 731259099017628998434816})
    with pytest.raises(ValidationError, match="less than or equal to 1000000"):
        CleanupRequest.model_validate({"retention_days": 90, "batch_size": 10**30})
