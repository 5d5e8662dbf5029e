"""The authorizer's key lookup: one consistent read for a known key, revocation still immediate."""

from __future__ import annotations

from collections import Counter

import pytest

from sluice import aws as sluice_aws
from sluice.auth.tokens import generate_api_key, hash_api_key
from sluice.store.api_keys import ApiKeyRepository


@pytest.fixture
def calls(table):
    counted: Counter[str] = Counter()

    def count(model, **_kwargs) -> None:
        counted[model.name] += 1

    def hook(service: str, client) -> None:
        if service == "dynamodb":
            client.meta.events.register("before-call.dynamodb", count)

    sluice_aws.add_client_hook(hook)
    yield counted
    sluice_aws.remove_client_hook(hook)


def test_a_known_key_is_found_with_one_consistent_read(table, calls):
    keys = ApiKeyRepository(table)
    secret = generate_api_key()
    keys.create("acme", "key_a", "ci", "editor", hash_api_key(secret), "key:admin")
    assert keys.find_by_hash(hash_api_key(secret))["id"] == "key_a"  # first sight: GSI, then item
    calls.clear()

    found = keys.find_by_hash(hash_api_key(secret))

    assert found["id"] == "key_a" and found["project"] == "acme"
    assert calls == Counter({"GetItem": 1})


def test_a_revoked_key_is_refused_on_the_next_lookup(table, calls):
    keys = ApiKeyRepository(table)
    secret = generate_api_key()
    keys.create("acme", "key_b", "ci", "viewer", hash_api_key(secret), "key:admin")
    assert keys.find_by_hash(hash_api_key(secret)) is not None

    keys.revoke("acme", "key_b")

    assert keys.find_by_hash(hash_api_key(secret)) is None
    assert keys.find_by_hash(hash_api_key(secret)) is None  # and stays refused


def test_a_remembered_location_that_moved_is_looked_up_again(table):
    # Given a key found once, then its item gone and the same secret stored under another id
    keys = ApiKeyRepository(table)
    secret = generate_api_key()
    keys.create("acme", "key_c", "ci", "viewer", hash_api_key(secret), "key:admin")
    assert keys.find_by_hash(hash_api_key(secret))["id"] == "key_c"
    keys.revoke("acme", "key_c")
    keys.create("acme", "key_d", "ci", "admin", hash_api_key(secret), "key:admin")

    found = keys.find_by_hash(hash_api_key(secret))

    assert found["id"] == "key_d" and found["role"] == "admin"
