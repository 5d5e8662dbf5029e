"""Shared fixtures: AWS credentials that can never reach a real account, and moto tables built
from template.yaml's own definition (so tests and cloud cannot disagree)."""

from __future__ import annotations

import os

import pytest

# Set before any boto3 client exists: no test ever talks to a real AWS account.
os.environ.update(
    AWS_ACCESS_KEY_ID="testing",
    AWS_SECRET_ACCESS_KEY="testing",
    AWS_SECURITY_TOKEN="testing",
    AWS_SESSION_TOKEN="testing",
    AWS_DEFAULT_REGION="us-east-1",
    POWERTOOLS_TRACE_DISABLED="true",
    POWERTOOLS_METRICS_DISABLED="true",
    POWERTOOLS_LOG_LEVEL="WARNING",
)
os.environ.pop("AWS_ENDPOINT_URL", None)


@pytest.fixture
def aws():
    """An in-memory AWS (moto) for one test; clients made inside it are mocked."""
    from moto import mock_aws

    from sluice import aws as sluice_aws

    sluice_aws.reset_clients()
    with mock_aws():
        yield
    sluice_aws.reset_clients()


@pytest.fixture
def table(aws, monkeypatch):
    """The Sluice table on moto, created from template.yaml's KeySchema and GSIs."""
    import boto3

    from sluice.local.template import load_template, table_definition
    from sluice.store.table import Table

    name = "sluice-test-table"
    boto3.client("dynamodb").create_table(TableName=name, **table_definition(load_template()))
    monkeypatch.setenv("TABLE_NAME", name)
    return Table(name)


@pytest.fixture
def atomic_writes(table, monkeypatch):
    """moto checks a transaction's conditions and applies it without a lock, so two threads can
    both pass; DynamoDB serialises writes to an item. Give moto that guarantee, nothing more."""
    import threading

    from sluice import aws as sluice_aws

    client = sluice_aws.client("dynamodb")
    lock = threading.Lock()
    for name in ("transact_write_items", "update_item", "put_item", "delete_item"):
        original = getattr(client, name)

        def serialised(*args, _original=original, **kwargs):
            with lock:
                return _original(*args, **kwargs)

        monkeypatch.setattr(client, name, serialised)


DYNAMODB_WRITES = {"PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems", "BatchWriteItem"}


@pytest.fixture
def writes(table):
    """DynamoDB write calls made from now on, by operation (a refused request must make none)."""
    from collections import Counter

    from sluice import aws as sluice_aws

    counted: Counter[str] = Counter()

    def count(model, **_kwargs) -> None:
        if model.name in DYNAMODB_WRITES:
            counted[model.name] += 1

    def hook(service: str, client) -> None:
        if service == "dynamodb":
            client.meta.events.register("before-call.dynamodb", count)

    sluice_aws.add_client_hook(hook)
    yield counted
    sluice_aws.remove_client_hook(hook)
