"""Catalog rules without AWS: which config values are secret, masking, revealing, ids, schema
columns, variable values and `${var.KEY}` substitution."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from sluice.domain import ids
from sluice.domain.connectors import ConnectorCreate, ConnectorUpdate
from sluice.domain.schemas import SchemaCreate
from sluice.domain.secrets import (
    MASK,
    SecretFields,
    SecretMissing,
    carries_credentials,
    is_secret_key,
    mask,
    references,
    reveal,
    split_secrets,
)
from sluice.domain.variables import VariableWrite, check_key, substitute_variables
from sluice.domain.views.catalog import connector_view
from sluice.errors import ValidationFailed


# -- which keys are secret ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "key",
    [
        "password",
        "PASSWORD",
        "db_password",
        "passwd",
        "pwd",
        "pass",
        "secret",
        "client_secret",
        "clientSecret",
        "aws_secret_access_key",
        "token",
        "access_token",
        "refreshToken",
        "api_key",
        "apiKey",
        "APIKey",
        "x-api-key",
        "X-API-Key",
        "access_key",
        "accessKeyId",
        "secret_key",
        "private_key",
        "privateKey",
        "ssh_key",
        "credentials",
        "service_account_credentials",
        "auth",
        "basic_auth",
        "Authorization",
        "connection_string",
        "connectionString",
        "dsn",
        "passphrase",
        "sas_token",
        "account_key",
        "cookie",
    ],
)
def test_secret_key_names(key):
    assert is_secret_key(key)


@pytest.mark.parametrize(
    "key",
    [
        "host",
        "port",
        "user",
        "username",
        "database",
        "key",
        "bucket_key",
        "token_url",
        "tokenEndpoint",
        "auth_type",
        "auth_method",
        "secret_name",
        "private_key_path",
        "credentials_file",
        "passthrough",
        "bypass",
        "oauth",
        "",
    ],
)
def test_not_secret_key_names(key):
    assert not is_secret_key(key)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("postgresql://loader:s3cr3t@db.internal:5432/sales", True),
        ("mysql+pymysql://root:pw@localhost/db?charset=utf8", True),
        ("Driver={ODBC};Server=x;Uid=me;Pwd=hunter2;", True),
        ("host=db user=me password=hunter2 dbname=x", True),
        ("https://api.example.com/v1?api=1&password=x", True),
        ("postgresql://loader@db.internal/sales", False),
        ("https://example.com/path:with@colon", False),
        ("password=", False),
        ("plain text", False),
    ],
)
def test_strings_that_carry_credentials(text, expected):
    assert carries_credentials(text) is expected


# -- splitting, masking, revealing ---------------------------------------------------------------------
CONFIG = {
    "host": "db.internal",
    "port": 5432,
    "password": "hunter2",
    "auth": {"type": "oauth", "client_id": "abc", "clientSecret": "shh", "token_url": "https://x/token"},
    "replicas": [{"host": "r1", "password": "p1"}, {"host": "r2", "password": ""}],
    "dsn": "postgresql://u:pw@h/db",
    "mirror": "postgresql://u:pw2@h2/db",
    "credentials": {"u": "me", "p": "pw3"},
    "gcp_credentials": {"type": "service_account", "private_key": "-----BEGIN..."},
    "tokens": ["t1", "t2"],
    "token_ttl": 3600,
    "use_token": True,
    "api_key": None,
}


def test_split_moves_every_secret_value_out_and_leaves_references():
    split = split_secrets(CONFIG)
    assert split.secrets == {
        "/password": "hunter2",
        "/auth/clientSecret": "shh",
        "/replicas/0/password": "p1",
        "/dsn": "postgresql://u:pw@h/db",
        "/mirror": "postgresql://u:pw2@h2/db",
        "/credentials": {"u": "me", "p": "pw3"},
        "/gcp_credentials/private_key": "-----BEGIN...",
        "/tokens": ["t1", "t2"],
    }
    stored = split.stored
    assert stored["password"] == {"$secret": "/password"}
    assert stored["auth"]["token_url"] == "https://x/token" and stored["auth"]["client_id"] == "abc"
    assert stored["replicas"][1]["password"] == ""  # nothing to hide
    assert (stored["token_ttl"], stored["use_token"], stored["api_key"]) == (3600, True, None)
    assert stored["gcp_credentials"]["type"] == "service_account"  # its secret was found inside
    for value in split.secrets.values():
        assert str(value) not in str(stored) or value == ""
    assert references(stored) == set(split.secrets)


def test_mask_shows_stars_where_secrets_were_and_reveal_puts_them_back():
    split = split_secrets(CONFIG)
    masked = mask(split.stored)
    assert masked["password"] == MASK and masked["credentials"] == MASK and masked["tokens"] == MASK
    assert masked["gcp_credentials"] == {"type": "service_account", "private_key": MASK}
    assert masked["replicas"][0] == {"host": "r1", "password": MASK}
    assert "hunter2" not in str(masked) and "pw2" not in str(masked)
    assert reveal(split.stored, split.secrets) == CONFIG


def test_reveal_of_a_reference_without_its_value_fails():
    with pytest.raises(SecretMissing):
        reveal({"password": {"$secret": "/password"}}, {})


def test_explicit_secret_fields_by_key_anywhere_and_by_path():
    config = {
        "pin": 1234,
        "nested": {"pin": "77", "region": "eu"},
        "account": {"id": "A1"},
        "list": ["a", "b"],
    }
    split = split_secrets(config, SecretFields.of(["PIN", "account.id", "list.1"]))
    assert split.secrets == {"/pin": 1234, "/nested/pin": "77", "/account/id": "A1", "/list/1": "b"}
    assert split.stored["nested"]["region"] == "eu" and split.stored["list"][0] == "a"


def test_mask_given_back_keeps_the_stored_secret():
    first = split_secrets({"password": "hunter2", "host": "a"})
    again = split_secrets({"password": MASK, "host": "b"}, kept=first.secrets)
    assert again.secrets == {"/password": "hunter2"} and again.stored["host"] == "b"


def test_mask_given_back_keeps_a_secret_even_when_its_key_no_longer_looks_secret():
    first = split_secrets({"pin": "1"}, SecretFields.of(["pin"]))
    again = split_secrets({"pin": MASK}, SecretFields.of([]), kept=first.secrets)
    assert again.secrets == {"/pin": "1"}


def test_mask_where_no_secret_is_stored_is_refused():
    with pytest.raises(ValidationFailed, match=r"config\.auth\.token is '\*{8}'"):
        split_secrets({"auth": {"token": MASK}})


def test_mask_inside_a_value_that_is_secret_as_a_whole_is_refused():
    with pytest.raises(ValidationFailed, match="secret as a whole"):
        split_secrets({"login": {"user": "x", "pin": MASK}}, SecretFields.of(["login"]))
    with pytest.raises(ValidationFailed, match=r"config\.credentials\.p is '\*{8}'"):
        split_secrets({"credentials": {"u": "x", "p": MASK}})


@pytest.mark.parametrize(
    "config, sentence",
    [
        ({"$secret": "/x"}, "reserved key"),
        ({"a": {"b": [{"$secret": "/a"}]}}, r"config\.a\.b\[0\] uses the reserved key"),
        ({"x": "y" * 70_000}, "at most 65536 bytes"),
    ],
)
def test_config_shapes_refused(config, sentence):
    with pytest.raises(ValidationFailed, match=sentence):
        split_secrets(config)


def test_config_nested_too_deep_is_refused():
    deep: dict = {}
    cursor = deep
    for _ in range(40):
        cursor["a"] = {}
        cursor = cursor["a"]
    with pytest.raises(ValidationFailed, match="deeper than 32"):
        split_secrets(deep)


def test_connector_view_never_shows_the_secret_version_or_a_value():
    record = {
        "id": 3,
        "name": "pg",
        "type": "postgres",
        "config": {"password": {"$secret": "/password"}},
        "secret_version": "0d3f-version",
        "ref_count": 2,
    }
    view = connector_view(record)
    assert view["id"] == "connector-3" and view["config"] == {"password": MASK}
    assert view["pipelineCount"] == 2 and "secret_version" not in str(view)


@pytest.mark.parametrize(
    "body",
    [
        {"type": "postgres"},
        {"name": "a/b", "type": "postgres"},
        {"name": "bad\u0007name", "type": "postgres"},
        {"name": " ", "type": "postgres"},
        {"name": "x" * 151, "type": "postgres"},
        {"name": "pg", "type": "has space"},
        {"name": "pg", "type": 5},
        {"name": "pg", "type": "postgres", "config": "not an object"},
        {"name": "pg", "type": "postgres", "config": {}, "secretFields": "password"},
        {"name": "pg", "type": "postgres", "config": {}, "secretFields": ["a..b"]},
    ],
)
def test_connector_bodies_refused(body):
    with pytest.raises((ValidationError, ValidationFailed)):
        ConnectorCreate.model_validate(body)


def test_connector_body_accepts_both_spellings_of_secret_fields_and_trims_the_name():
    body = ConnectorCreate.model_validate({"name": " pg main ", "type": "postgres", "secret_fields": ["pin"]})
    assert (body.name, body.secret_fields, body.config) == ("pg main", ["pin"], {})
    assert ConnectorUpdate.model_validate({}).config is None


# -- ids ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("text, number", [("connector-3", 3), ("3", 3), (" Connector-12 ", 12), (7, 7)])
def test_ids_accept_the_rendered_and_the_plain_form(text, number):
    assert ids.parse("connector", text) == number
    assert ids.render("connector", number) == f"connector-{number}"


@pytest.mark.parametrize(
    "text", ["schema-3", "connector-", "connector-0", "0", "-1", "abc", "1e3", "1" * 13, True]
)
def test_ids_refuse_anything_else(text):
    with pytest.raises(ValidationFailed, match="is not a connector id"):
        ids.parse("connector", text)


# -- schemas ------------------------------------------------------------------------------------------
def test_schema_columns_take_documented_and_duckdb_types():
    body = SchemaCreate.model_validate(
        {
            "name": "orders",
            "columns": [
                {"name": "id", "type": "BIGINT", "nullable": False},
                {"name": "amount", "type": "DECIMAL(18,2)"},
                {"name": "tags", "type": "VARCHAR[]"},
                {"name": "meta", "type": "STRUCT(a INTEGER, b VARCHAR)"},
                {"name": "at", "type": "timestamptz", "description": "when"},
            ],
        }
    )
    assert [c.type for c in body.columns] == [
        "bigint",
        "DECIMAL(18,2)",
        "VARCHAR[]",
        "STRUCT(a INTEGER, b VARCHAR)",
        "timestamptz",
    ]
    assert body.display_name is None and body.columns[1].nullable is True


@pytest.mark.parametrize(
    "columns",
    [
        [],
        [{"name": "a", "type": "nonsense"}],
        [{"name": "a", "type": "VARCHAR)--"}],
        [{"name": "a", "type": "int; drop table x"}],
        [{"name": "a", "type": "DECIMAL(18,2"}],
        [{"name": "a", "type": "int"}, {"name": "A", "type": "int"}],
        [{"name": "", "type": "int"}],
        [{"name": "a", "type": "int", "nullable": "yes"}],
        [{"type": "int"}],
    ],
)
def test_schema_columns_refused(columns):
    with pytest.raises(ValidationError):
        SchemaCreate.model_validate({"name": "s", "columns": columns})


# -- variables ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "value, stored", [("text", "text"), (42, "42"), (1.5, "1.5"), (True, "true"), (False, "false"), ("", "")]
)
def test_variable_values_are_strings(value, stored):
    assert VariableWrite.model_validate({"value": value}).value == stored


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"value": None},
        {"value": [1]},
        {"value": {"a": 1}},
        {"value": "x" * 40_000},
        {"value": "a", "secret": "yes"},
    ],
)
def test_variable_bodies_refused(body):
    with pytest.raises(ValidationError):
        VariableWrite.model_validate(body)


@pytest.mark.parametrize("key", ["A", "_x", "DB_HOST", "a1", "x" * 128])
def test_variable_keys_accepted(key):
    assert check_key(key) == key


@pytest.mark.parametrize("key", ["", "1A", "a-b", "a.b", "a b", "é", "x" * 129, "a\n"])
def test_variable_keys_refused(key):
    with pytest.raises(ValidationFailed, match="not valid"):
        check_key(key)


def test_substitution_in_every_string_at_any_depth():
    config = {
        "url": "https://${var.HOST}:${var.PORT}/v1",
        "nested": [{"sql": "select * from t where d = '${var.DAY}'"}, 3, None, True],
        "${var.HOST}": "keys are left alone",
    }
    result = substitute_variables(config, {"HOST": "api.example.com", "PORT": "443", "DAY": "2024-01-01"})
    assert result == {
        "url": "https://api.example.com:443/v1",
        "nested": [{"sql": "select * from t where d = '2024-01-01'"}, 3, None, True],
        "${var.HOST}": "keys are left alone",
    }
    assert config["url"] == "https://${var.HOST}:${var.PORT}/v1"  # the input is not changed


def test_run_overrides_win_and_are_rendered_as_strings():
    result = substitute_variables("${var.A}-${var.B}-${var.C}", {"A": "1", "B": "2"}, {"B": 20, "C": True})
    assert result == "1-20-true"


def test_escaped_reference_stays_literal_and_replaced_text_is_not_scanned_again():
    variables = {"A": "${var.B}", "B": "no"}
    assert substitute_variables("$${var.A} ${var.A}", variables) == "${var.A} ${var.B}"
    assert substitute_variables("$${var.UNKNOWN}", {}) == "${var.UNKNOWN}"


def test_unknown_keys_are_named_with_where_they_are_used():
    with pytest.raises(ValidationFailed) as caught:
        substitute_variables({"a": ["${var.MISSING}"], "b": "${var.OTHER} ${var.KNOWN}"}, {"KNOWN": "k"})
    assert "'MISSING' (in config.a[0])" in caught.value.detail
    assert "'OTHER' (in config.b)" in caught.value.detail


def test_malformed_reference_is_refused():
    with pytest.raises(ValidationFailed, match="malformed variable reference"):
        substitute_variables({"a": "${var.bad-key}"}, {}, where="node src")


def test_text_that_only_looks_like_a_reference_is_left_alone():
    assert substitute_variables("${env.X} ${var.X", {}) == "${env.X} ${var.X"
