"""The one OpenAPI document: assembled from the areas' apps, committed as openapi.json, complete."""

from __future__ import annotations

import json

import pytest

from sluice.local.openapi import COMMITTED_PATH, ERROR_RESPONSES, assemble, http_events, render
from sluice.local.template import load_template


@pytest.fixture(scope="module")
def document():
    return assemble()


def test_the_committed_openapi_json_is_the_assembled_document(document):
    committed = json.loads(COMMITTED_PATH.read_text())
    assert committed == document, (
        "openapi.json is stale: regenerate it with `.venv/bin/sluice openapi > openapi.json` and commit it"
    )
    assert COMMITTED_PATH.read_text() == render(document)


def test_every_template_route_is_an_operation_with_the_template_event_as_its_id(document):
    events = list(http_events(load_template()))
    operations = {
        (verb.upper(), path): operation
        for path, item in document["paths"].items()
        for verb, operation in item.items()
    }
    assert len(operations) == len(events)
    for name, _function, method, path, _authorized in events:
        assert operations[(method, path)]["operationId"] == name


def test_public_routes_have_no_security_and_the_others_bearer(document):
    assert document["security"] == [{"bearerAuth": []}]
    assert document["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "description": document["components"]["securitySchemes"]["bearerAuth"]["description"],
    }
    for _name, _function, method, path, authorized in http_events(load_template()):
        operation = document["paths"][path][method.lower()]
        if authorized:
            assert "security" not in operation and "401" in operation["responses"], path
        else:
            assert operation["security"] == [], path
            assert "401" not in operation["responses"], path


def test_every_error_answer_is_the_detail_shape(document):
    schemas = document["components"]["schemas"]
    assert schemas["Error"]["required"] == ["detail"]
    assert "HTTPValidationError" not in schemas
    for path, item in document["paths"].items():
        for verb, operation in item.items():
            for code, response in operation["responses"].items():
                if code.startswith(("4", "5")):
                    assert response == {"$ref": f"#/components/responses/{code}"}, (verb, path, code)
    for code in ERROR_RESPONSES:
        content = document["components"]["responses"][code]["content"]["application/json"]
        assert content["schema"] == {"$ref": "#/components/schemas/Error"}


def test_bodies_read_in_dependencies_are_documented_with_their_models(document):
    paths = document["paths"]
    create = paths["/api/v1/pipelines"]["post"]["requestBody"]
    assert set(create["content"]) == {"application/json", "application/yaml", "text/yaml"}
    assert create["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/DefinitionRequest"
    }
    start = paths["/start_pipeline_execution"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    started = document["components"]["schemas"][start["$ref"].rsplit("/", 1)[1]]
    assert started["required"] == ["pipeline_id"]
    assert started["properties"]["start_date"]["anyOf"][0] == {"type": "string", "format": "date-time"}
    lineage = paths["/api/v1/lineage"]["post"]
    assert lineage["requestBody"]["required"] is True
    assert "413" in lineage["responses"]
    # A trigger may post no body at all (seed 002's curl examples): documented as optional.
    assert paths["/api/pipelines/{pipeline_id}/run"]["post"]["requestBody"]["required"] is False


def test_every_reference_resolves(document):
    text = json.dumps(document)
    schemas = document["components"]["schemas"]
    responses = document["components"]["responses"]
    import re

    for ref in set(re.findall(r'"\$ref": "([^"]+)"', text)):
        kind, name = ref.split("/")[2:4]
        assert name in (schemas if kind == "schemas" else responses), ref


def test_the_sdk_models_name_only_fields_the_document_declares(document):
    """sluice.client's models are the document's schemas, typed: a field the API does not answer
    (a rename on either side) fails here, not in a user's script."""
    from sluice.client import models

    schemas = document["components"]["schemas"]

    def fields(*names: str) -> set[str]:
        return {field for name in names for field in schemas[name]["properties"]}

    expected = {
        models.Pipeline: fields("Definition"),
        models.LastRun: fields("LastRun"),
        models.Progress: fields("Progress"),
        models.RunInfo: fields("Run", "DefinitionRun"),  # a run as read, as triggered or listed by name
        models.NodeRun: fields("NodeRun"),
        models.LogLine: fields("LogLine"),
        models.Execution: fields("Execution"),
        models.Address: fields("Address"),
    }
    for model, declared in expected.items():
        assert set(model.model_fields) <= declared, (model.__name__, set(model.model_fields) - declared)
