"""The node execution core on a local-folder storage: every node type, previews and profiles, the
failures a pipeline author must be able to read, incremental reads, merges and dry runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sluice.engine import NodeFailed, Storage, read_logs, read_preview, read_profile
from sluice.engine.artifacts import node_artifact_key
from sluice.errors import NotFound
from tests.engine_runs import NodeRunner, Stopwatch, free_port, json_server, rows_of

ORDERS = [
    {"id": 1, "customer": "ada", "amount": 120.5, "status": "paid", "day": "2024-01-01"},
    {"id": 2, "customer": "bob", "amount": 80, "status": "open", "day": "2024-01-01"},
    {"id": 3, "customer": "ada", "amount": 300, "status": "paid", "day": "2024-01-02"},
    {"id": 4, "customer": "cy", "amount": None, "status": "void", "day": "2024-01-03"},
]


@pytest.fixture
def storage(tmp_path) -> Storage:
    return Storage.local(tmp_path / "store")


@pytest.fixture
def runner(storage) -> NodeRunner:
    return NodeRunner(storage)


@pytest.fixture
def orders(runner):
    return runner.run("orders", "source", {"kind": "inline", "rows": ORDERS})


def put_file(storage: Storage, key: str, body: bytes | str) -> str:
    data = body.encode() if isinstance(body, str) else body
    storage.objects.write(storage.bucket, key, data)
    return f"s3://{storage.bucket}/{key}"


# -- sources --------------------------------------------------------------------------------------
def test_inline_source_infers_types_and_keeps_row_order(orders):
    assert orders.row_count == 4
    assert [(c.name, c.type) for c in orders.columns] == [
        ("id", "BIGINT"),
        ("customer", "VARCHAR"),
        ("amount", "DOUBLE"),
        ("status", "VARCHAR"),
        ("day", "DATE"),
    ]
    assert [row["id"] for row in rows_of(orders)] == [1, 2, 3, 4]
    assert orders.output.key == "projects/acme/runs/run-1/nodes/orders/output.parquet"


def test_inline_source_without_rows_fails_saying_why(runner):
    with pytest.raises(NodeFailed, match="needs at least one row"):
        runner.run("src", "source", {"kind": "inline", "rows": []})
    with pytest.raises(NodeFailed, match="row 1 is int"):
        runner.run("src", "source", {"kind": "inline", "rows": [{"a": 1}, 2]})


def test_source_config_errors_name_the_node_and_the_key(runner):
    with pytest.raises(
        NodeFailed, match=r"source node 'src': config needs 'kind' \(inline, s3, http, dataset\)"
    ):
        runner.run("src", "source", {})
    with pytest.raises(
        NodeFailed, match="config 'format' must be one of csv, json, jsonl, parquet, not 'xml'"
    ):
        runner.run("src", "source", {"kind": "s3", "uri": "s3://b/k", "format": "xml"})


def test_s3_source_reads_csv_json_and_jsonl(runner, storage):
    csv_uri = put_file(storage, "projects/acme/files/a.csv", "id,name\n1,x\n2,y\n")
    json_uri = put_file(storage, "projects/acme/files/b.json", json.dumps([{"id": 1, "tags": ["a", "b"]}]))
    jsonl_uri = put_file(storage, "projects/acme/files/c.jsonl", '{"id": 1}\n{"id": 2, "extra": true}\n')

    csv = runner.run("csv", "source", {"kind": "s3", "uri": csv_uri, "format": "csv"})
    as_json = runner.run("json", "source", {"kind": "s3", "uri": json_uri, "format": "json"})
    jsonl = runner.run("jsonl", "source", {"kind": "s3", "uri": jsonl_uri, "format": "jsonl"})

    assert rows_of(csv) == [{"id": 1, "name": "x"}, {"id": 2, "name": "y"}]
    assert rows_of(as_json) == [{"id": 1, "tags": ["a", "b"]}]
    assert rows_of(jsonl) == [{"id": 1, "extra": None}, {"id": 2, "extra": True}]


def test_gzipped_csv_and_jsonl_are_read_compressed(runner, storage):
    import gzip

    csv_uri = put_file(storage, "projects/acme/files/a.csv.gz", gzip.compress(b"id,name\n1,x\n"))
    jsonl_uri = put_file(storage, "projects/acme/files/b.jsonl.gz", gzip.compress(b'{"id": 7}\n'))

    assert rows_of(runner.run("a", "source", {"kind": "s3", "uri": csv_uri, "format": "csv"})) == [
        {"id": 1, "name": "x"}
    ]
    assert rows_of(runner.run("b", "source", {"kind": "s3", "uri": jsonl_uri, "format": "jsonl"})) == [
        {"id": 7}
    ]


def test_s3_prefix_reads_every_data_object_and_skips_markers(runner, storage):
    put_file(storage, "projects/acme/files/daily/2024-01-01.csv", "id\n1\n2\n")
    put_file(storage, "projects/acme/files/daily/2024-01-02.csv", "id\n3\n")
    put_file(storage, "projects/acme/files/daily/_SUCCESS", "")
    put_file(storage, "projects/acme/files/daily.csv.bak", "not,this\n")

    result = runner.run(
        "src",
        "source",
        {"kind": "s3", "uri": f"s3://{storage.bucket}/projects/acme/files/daily", "format": "csv"},
    )

    assert sorted(row["id"] for row in rows_of(result)) == [1, 2, 3]


@pytest.mark.parametrize(
    "body, declared, message",
    [
        ('{"a": 1}', "parquet", "is not a parquet file: it looks like JSON"),
        ("a,b\n1,2\n", "json", "is not a json file: it looks like CSV or other text"),
        ('[{"a": 1}]', "jsonl", "is a JSON array document, not JSON lines"),
        (b"PAR1\x00\x01garbagePAR1", "csv", "is not a csv file: it looks like a parquet file"),
        (b"\x00\x01\x02\x03binary", "csv", "is not a csv file: it looks like binary data"),
    ],
)
def test_a_file_that_is_not_the_declared_format_fails_naming_it(runner, storage, body, declared, message):
    uri = put_file(storage, "projects/acme/files/thing", body)
    with pytest.raises(NodeFailed, match=message) as failure:
        runner.run("src", "source", {"kind": "s3", "uri": uri, "format": declared})
    assert uri in failure.value.detail


def test_malformed_json_fails_with_duckdbs_reason_and_the_uri(runner, storage):
    uri = put_file(storage, "projects/acme/files/broken.json", '[{"a": 1}, {"a": ')
    with pytest.raises(NodeFailed) as failure:
        runner.run("src", "source", {"kind": "s3", "uri": uri, "format": "json"})
    assert uri in failure.value.detail
    assert "/tmp/" not in failure.value.detail


def test_s3_source_may_not_read_another_projects_part_of_the_data_bucket(runner, storage):
    put_file(storage, "projects/globex/files/secret.csv", "a\n1\n")
    with pytest.raises(NodeFailed, match="outside this project's folder"):
        runner.run(
            "src",
            "source",
            {"kind": "s3", "uri": f"s3://{storage.bucket}/projects/globex/files/secret.csv", "format": "csv"},
        )


def test_http_source_takes_the_records_at_the_path(runner):
    answer = {"data": {"items": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]}, "next": None}
    with json_server({"/users": answer}) as base:
        result = runner.run(
            "api", "source", {"kind": "http", "url": f"{base}/users", "records_path": "data.items"}
        )
    assert rows_of(result) == [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]


def test_http_source_errors_say_what_the_server_did(runner):
    with json_server({"/html": "<html>", "/users": {"data": []}}) as base:
        with pytest.raises(NodeFailed, match="answered 404 Not Found"):
            runner.run("api", "source", {"kind": "http", "url": f"{base}/missing"})
        with pytest.raises(NodeFailed, match="did not answer JSON"):
            runner.run("api", "source", {"kind": "http", "url": f"{base}/html"})
        with pytest.raises(NodeFailed, match=r"has no 'data.items' \(at data: list\)"):
            runner.run(
                "api", "source", {"kind": "http", "url": f"{base}/users", "records_path": "data.items"}
            )


def test_http_source_keeps_tokens_out_of_messages_and_logs(runner):
    with json_server({}) as base, pytest.raises(NodeFailed) as failure:
        runner.run("api", "source", {"kind": "http", "url": f"{base}/missing?token=s3cr3t&page=2"})
    assert "s3cr3t" not in failure.value.detail and "token=***&page=***" in failure.value.detail
    assert all("s3cr3t" not in line.message for line in failure.value.logs)


def test_http_source_on_an_unreachable_port_fails_fast(runner):
    with Stopwatch() as clock, pytest.raises(NodeFailed, match="failed: .*refused"):
        runner.run("api", "source", {"kind": "http", "url": f"http://127.0.0.1:{free_port()}/x"})
    assert clock.seconds < 3


def test_http_source_that_never_answers_times_out(runner):
    with (
        json_server({}, stall_path="/slow") as base,
        Stopwatch() as clock,
        pytest.raises(NodeFailed, match="did not answer within 0.5 s"),
    ):
        runner.run("api", "source", {"kind": "http", "url": f"{base}/slow", "timeout_seconds": 0.5})
    assert clock.seconds < 3


def test_http_source_refuses_other_schemes(runner):
    with pytest.raises(NodeFailed, match="must be http:// or https://"):
        runner.run("api", "source", {"kind": "http", "url": "file:///etc/passwd"})


def test_dataset_source_of_a_dataset_never_written_fails(runner):
    with pytest.raises(NodeFailed, match="dataset 'nothing' does not exist in project 'acme'"):
        runner.run("src", "source", {"kind": "dataset", "name": "nothing"})


# -- incremental reads ----------------------------------------------------------------------------
EVENTS = [
    {"id": 1, "at": "2024-01-01T10:00:00"},
    {"id": 2, "at": "2024-01-02T10:00:00"},
    {"id": 3, "at": "2024-01-03T10:00:00"},
]


def test_incremental_source_reads_only_rows_past_the_watermark(runner):
    config = {"kind": "inline", "rows": EVENTS, "watermark_column": "at"}

    first = runner.run("src", "source", config)
    second = runner.run("src", "source", config, watermark=first.watermark)
    later = runner.run("src", "source", config, watermark="2024-01-01T12:00:00")
    full = runner.run("src", "source", config, watermark="2024-01-01T12:00:00", full_refresh=True)

    assert (first.row_count, first.watermark) == (3, "2024-01-03T10:00:00")
    assert (second.row_count, second.watermark) == (0, "2024-01-03T10:00:00")
    assert [row["id"] for row in rows_of(later)] == [2, 3]
    assert full.row_count == 3


def test_incremental_source_on_a_numeric_column(runner):
    result = runner.run(
        "src", "source", {"kind": "inline", "rows": EVENTS, "watermark_column": "id"}, watermark=2
    )
    assert [row["id"] for row in rows_of(result)] == [3]
    assert result.watermark == 3


def test_a_watermark_that_is_not_of_the_columns_type_fails(runner):
    with pytest.raises(NodeFailed, match="the watermark 'soon' cannot be read as TIMESTAMP"):
        runner.run(
            "src", "source", {"kind": "inline", "rows": EVENTS, "watermark_column": "at"}, watermark="soon"
        )
    with pytest.raises(
        NodeFailed, match=r"watermark_column 'nope' is not a column of the source \(columns: id, at\)"
    ):
        runner.run("src", "source", {"kind": "inline", "rows": EVENTS, "watermark_column": "nope"})


# -- transforms and filters -----------------------------------------------------------------------
def test_sql_transform_reads_upstream_nodes_by_id_and_by_ref(runner, orders):
    customers = runner.run(
        "customers", "source", {"kind": "inline", "rows": [{"name": "ada", "tier": "gold"}]}
    )
    sql = (
        "SELECT o.customer, c.tier, sum(o.amount) AS total FROM orders o "
        "JOIN {{ ref('customers') }} c ON c.name = o.customer GROUP BY ALL"
    )
    result = runner.run("t", "transform", {"sql": sql}, {"orders": orders, "customers": customers})
    assert rows_of(result) == [{"customer": "ada", "tier": "gold", "total": 420.5}]
    assert '"customers"' in result.compiled_sql


def test_sql_in_another_dialect_is_transpiled_to_duckdb(runner, orders):
    sql = "SELECT id, IFF(amount > 100, 'big', 'small') AS size FROM orders WHERE amount IS NOT NULL"
    result = runner.run("t", "transform", {"sql": sql, "dialect": "snowflake"}, {"orders": orders})
    assert [row["size"] for row in rows_of(result)] == ["big", "small", "big"]
    assert "CASE WHEN" in result.compiled_sql


def test_failing_sql_fails_the_node_with_duckdbs_message(runner, orders, storage):
    with pytest.raises(NodeFailed) as failure:
        runner.run("t", "transform", {"sql": "SELECT nope FROM orders"}, {"orders": orders})
    error = failure.value
    assert error.detail.startswith('Binder Error: Referenced column "nope" not found')
    assert "Traceback" not in error.detail
    assert error.node_id == "t" and error.duration_ms >= 0 and error.compiled_sql == "SELECT nope FROM orders"
    assert error.logs[-1].level == "error"
    stored = read_logs(storage, "acme", "run-1", "t")
    assert stored[-1]["message"].startswith("Node failed: Binder Error")


def test_unparseable_sql_in_another_dialect_fails_with_sqlglots_message(runner, orders):
    with pytest.raises(NodeFailed, match=r"sqlglot could not parse the postgres SQL: .*Line 1, Col"):
        runner.run(
            "t", "transform", {"sql": "SELECT FROM WHERE (", "dialect": "postgres"}, {"orders": orders}
        )


def test_a_transform_reading_a_relation_that_is_not_upstream_fails(runner, orders):
    with pytest.raises(
        NodeFailed, match=r"reads 'payments', which is not an input of node 't' \(inputs: orders\)"
    ):
        runner.run("t", "transform", {"sql": "SELECT * FROM payments"}, {"orders": orders})
    with pytest.raises(NodeFailed, match="ref\\('payments'\\) names neither an input"):
        runner.run("t", "transform", {"sql": "SELECT * FROM {{ ref('payments') }}"}, {"orders": orders})


def test_sql_cannot_reach_files_on_the_machine(runner, orders):
    with pytest.raises(NodeFailed, match="disabled by configuration"):
        runner.run(
            "t", "transform", {"sql": "SELECT * FROM read_text('/proc/self/environ')"}, {"orders": orders}
        )


def test_sql_that_is_not_one_query_is_refused(runner, orders):
    with pytest.raises(NodeFailed, match="not a DROP statement"):
        runner.run("t", "transform", {"sql": "DROP TABLE orders"}, {"orders": orders})
    with pytest.raises(NodeFailed, match="holds 2 statements"):
        runner.run("t", "transform", {"sql": "SELECT 1; SELECT 2"}, {"orders": orders})


def test_params_are_bound_as_literals(runner, orders):
    sql = "SELECT id FROM orders WHERE day = ${params.day} AND status <> '${params.skip}'"
    result = runner.run(
        "t", "transform", {"sql": sql}, {"orders": orders}, params={"day": "2024-01-01", "skip": "o'pen"}
    )
    assert [row["id"] for row in rows_of(result)] == [1, 2]
    assert "'o''pen'" in result.compiled_sql
    with pytest.raises(NodeFailed, match=r"\$\{params.day\} is used but the run has no param 'day'"):
        runner.run("t", "transform", {"sql": sql}, {"orders": orders})


def test_filter_keeps_matching_rows(runner, orders):
    result = runner.run("f", "filter", {"condition": "amount > 100 AND status = 'paid'"}, {"orders": orders})
    assert [row["id"] for row in rows_of(result)] == [1, 3]
    assert result.compiled_sql == "SELECT * FROM \"orders\" WHERE amount > 100 AND status = 'paid'"


def test_filter_validates_its_condition_and_its_single_input(runner, orders):
    with pytest.raises(NodeFailed, match="the condition does not parse"):
        runner.run("f", "filter", {"condition": "amount >"}, {"orders": orders})
    with pytest.raises(NodeFailed, match="must be a boolean expression"):
        runner.run("f", "filter", {"condition": "SELECT 1"}, {"orders": orders})
    with pytest.raises(NodeFailed, match="takes exactly one input, not 2"):
        runner.run("f", "filter", {"condition": "true"}, {"orders": orders, "other": orders})
    with pytest.raises(NodeFailed, match="a filter reads only its input"):
        runner.run("f", "filter", {"condition": "id IN (SELECT id FROM secrets)"}, {"orders": orders})


def test_recipe_transform_compiles_and_runs(runner, orders):
    recipe = {
        "recipe_type": "group_by",
        "inputs": ["orders"],
        "keys": ["customer"],
        "aggregations": [{"column": "amount", "function": "sum", "alias": "total"}],
    }
    result = runner.run("g", "transform", {"recipe": recipe}, {"orders": orders})
    assert sorted((row["customer"], row["total"]) for row in rows_of(result)) == [
        ("ada", 420.5),
        ("bob", 80.0),
        ("cy", None),
    ]
    assert "GROUP BY" in result.compiled_sql and "ref(" not in result.compiled_sql


def test_recipe_prepare_derives_in_place_when_the_column_exists(runner, orders):
    recipe = {
        "recipe_type": "prepare",
        "inputs": ["orders"],
        "steps": [
            {"type": "filter", "condition": "amount IS NOT NULL"},
            {"type": "derive", "column": "amount", "expression": "amount * 2"},
            {"type": "rename", "column": "customer", "to": "who"},
            {"type": "select", "columns": ["id", "who", "amount"]},
        ],
    }
    result = runner.run("p", "transform", {"recipe": recipe}, {"orders": orders})
    assert rows_of(result)[0] == {"id": 1, "who": "ada", "amount": 241.0}


def test_recipe_errors_name_the_bad_part(runner, orders):
    recipe = {
        "recipe_type": "prepare",
        "inputs": ["orders"],
        "steps": [{"type": "select", "columns": ["nope"]}],
    }
    with pytest.raises(NodeFailed, match=r"recipe: steps\[0\] \(select\): nope not among the columns"):
        runner.run("p", "transform", {"recipe": recipe}, {"orders": orders})


def test_transform_needs_exactly_one_of_sql_and_recipe(runner, orders):
    with pytest.raises(NodeFailed, match="exactly one of 'sql' and 'recipe'"):
        runner.run("t", "transform", {}, {"orders": orders})


# -- targets --------------------------------------------------------------------------------------
def test_dataset_target_writes_and_a_later_source_reads_it_back(runner, orders):
    target = runner.run("out", "target", {"kind": "dataset", "name": "orders_copy"}, {"orders": orders})
    again = runner.run("src", "source", {"kind": "dataset", "name": "orders_copy"}, run_id="run-2")

    assert target.written.to_dict() == {
        "kind": "dataset",
        "rows_written": 4,
        "inserts": 4,
        "updates": 0,
        "persisted": True,
        "dataset": "orders_copy",
        "mode": "overwrite",
        "version": 1,
    }
    assert target.row_count == 4
    assert rows_of(again) == rows_of(orders)
    assert again.datasets_read == ["orders_copy"]


def test_append_adds_rows_and_refuses_other_columns(runner, orders):
    runner.run("out", "target", {"kind": "dataset", "name": "log", "mode": "append"}, {"orders": orders})
    second = runner.run(
        "out", "target", {"kind": "dataset", "name": "log", "mode": "append"}, {"orders": orders}
    )
    other = runner.run("other", "source", {"kind": "inline", "rows": [{"x": 1}]})

    assert (second.written.version, second.written.rows_written) == (2, 4)
    assert runner.run("src", "source", {"kind": "dataset", "name": "log"}).row_count == 8
    with pytest.raises(
        NodeFailed, match=r"missing: amount, customer, day, id, status; not in the dataset: x"
    ):
        runner.run("out", "target", {"kind": "dataset", "name": "log", "mode": "append"}, {"other": other})


def test_appends_compact_the_file_list_once_it_grows(runner, storage, orders, monkeypatch):
    from sluice.engine import Datasets
    from sluice.engine import datasets as datasets_module

    monkeypatch.setattr(datasets_module, "COMPACT_AT", 3)
    for run in range(4):
        runner.run(
            "out",
            "target",
            {"kind": "dataset", "name": "log", "mode": "append"},
            {"orders": orders},
            run_id=f"r{run}",
        )

    version, _ = Datasets(storage, "acme").current("log")
    assert (version.version, version.row_count, len(version.files)) == (4, 16, 2)
    assert runner.run("src", "source", {"kind": "dataset", "name": "log"}).row_count == 16


def test_merge_upserts_by_key_and_counts_inserts_and_updates(runner, orders):
    runner.run(
        "out",
        "target",
        {"kind": "dataset", "name": "orders", "mode": "merge", "key": "id"},
        {"orders": orders},
    )
    changes = runner.run(
        "changes",
        "source",
        {
            "kind": "inline",
            "rows": [
                {"id": 2, "customer": "bob", "amount": 99, "status": "paid", "day": "2024-01-05"},
                {"id": 9, "customer": "dee", "amount": 5, "status": "open", "day": "2024-01-05"},
            ],
        },
    )
    merged = runner.run(
        "out",
        "target",
        {"kind": "dataset", "name": "orders", "mode": "merge", "key": ["id"]},
        {"changes": changes},
    )
    current = runner.run("src", "source", {"kind": "dataset", "name": "orders"})

    assert (merged.written.inserts, merged.written.updates, merged.written.version) == (1, 1, 2)
    by_id = {row["id"]: row for row in rows_of(current)}
    assert sorted(by_id) == [1, 2, 3, 4, 9]
    assert by_id[2]["amount"] == 99.0 and by_id[2]["status"] == "paid"


def test_merge_refuses_a_key_that_does_not_identify_rows(runner):
    twice = runner.run("d", "source", {"kind": "inline", "rows": [{"id": 1}, {"id": 1}, {"id": None}]})
    with pytest.raises(NodeFailed, match=r"merge key \(id\) is null in 1 row"):
        runner.run(
            "out", "target", {"kind": "dataset", "name": "x", "mode": "merge", "key": "id"}, {"d": twice}
        )
    with pytest.raises(NodeFailed, match="mode 'merge' needs 'key'|must be a column name"):
        runner.run("out", "target", {"kind": "dataset", "name": "x", "mode": "merge"}, {"d": twice})
    dupes = runner.run("d", "source", {"kind": "inline", "rows": [{"id": 1}, {"id": 1}]})
    with pytest.raises(NodeFailed, match=r"merge key \(id\) is not unique in the rows: 1 \(2 rows\)"):
        runner.run(
            "out", "target", {"kind": "dataset", "name": "x", "mode": "merge", "key": "id"}, {"d": dupes}
        )


def test_dataset_names_do_not_depend_on_case(runner, orders):
    runner.run("out", "target", {"kind": "dataset", "name": "Sales"}, {"orders": orders})
    assert runner.run("src", "source", {"kind": "dataset", "name": "sales"}).row_count == 4


@pytest.mark.parametrize("declared", ["csv", "json", "jsonl", "parquet"])
def test_s3_target_writes_the_object_in_its_format_and_a_source_reads_it_back(
    runner, storage, orders, declared
):
    uri = f"s3://{storage.bucket}/projects/acme/exports/orders.{declared}"
    written = runner.run("out", "target", {"kind": "s3", "uri": uri, "format": declared}, {"orders": orders})
    back = runner.run("back", "source", {"kind": "s3", "uri": uri, "format": declared})

    assert written.written.uri == uri and written.written.rows_written == 4
    assert [row["id"] for row in rows_of(back)] == [1, 2, 3, 4]


def test_s3_target_may_not_write_over_sluices_own_folders(runner, storage, orders):
    uri = f"s3://{storage.bucket}/projects/acme/datasets/orders/manifest.json"
    with pytest.raises(NodeFailed, match="inside Sluice's managed run and dataset folders"):
        runner.run("out", "target", {"kind": "s3", "uri": uri, "format": "json"}, {"orders": orders})


# -- results, artifacts, dry runs -----------------------------------------------------------------
def test_preview_holds_the_first_50_rows_rendered_for_json(runner):
    rows = [{"n": n, "price": "1.50", "ts": "2024-01-01T10:00:00Z"} for n in range(60)]
    source = runner.run("src", "source", {"kind": "inline", "rows": rows})
    typed = runner.run(
        "t",
        "transform",
        {"sql": "SELECT n, price::DECIMAL(10,2) AS price, ts, 'ab'::BLOB AS raw, [n, n] AS pair FROM src"},
        {"src": source},
    )

    assert len(typed.preview["rows"]) == 50
    assert typed.preview["columns"] == ["n", "price", "ts", "raw", "pair"]
    assert typed.preview["rows"][1] == {
        "n": 1,
        "price": "1.50",
        "ts": "2024-01-01T10:00:00Z",
        "raw": "YWI=",
        "pair": [1, 1],
    }
    json.dumps(typed.to_dict())  # everything in a result is JSON-safe


def test_profile_describes_every_column(runner, orders):
    profile = {column["name"]: column for column in orders.profile["columns"]}
    assert orders.profile["row_count"] == 4
    assert profile["amount"] == {
        "name": "amount",
        "type": "DOUBLE",
        "count": 3,
        "nulls": 1,
        "distinct": 3,
        "min": 80.0,
        "max": 300.0,
        "mean": pytest.approx(166.8333, rel=1e-4),
        "top_values": [
            {"value": 80.0, "count": 1},
            {"value": 120.5, "count": 1},
            {"value": 300.0, "count": 1},
        ],
    }
    assert profile["customer"]["top_values"][0] == {"value": "ada", "count": 2}
    assert profile["customer"]["mean"] is None
    assert (profile["day"]["min"], profile["day"]["max"]) == ("2024-01-01", "2024-01-03")


def test_profile_of_a_large_output_estimates_distinct_and_samples_top_values(runner, monkeypatch):
    from sluice.engine import profile as profiling

    monkeypatch.setattr(profiling, "EXACT_PROFILE_ROWS", 100)
    monkeypatch.setattr(profiling, "SAMPLE_ROWS", 200)
    source = runner.run("src", "source", {"kind": "inline", "rows": [{"n": 1}]})
    many = runner.run(
        "many", "transform", {"sql": "SELECT i, i % 3 AS k FROM range(1000) t(i)"}, {"src": source}
    )

    columns = {column["name"]: column for column in many.profile["columns"]}
    assert many.profile["approximate"] == {
        "distinct": "HyperLogLog estimate",
        "top_values": "counts in 8 evenly spaced blocks of rows, about 200 rows",
    }
    assert (columns["i"]["count"], columns["i"]["min"], columns["i"]["max"]) == (1000, 0, 999)  # exact
    assert columns["i"]["mean"] == 499.5
    assert 900 <= columns["i"]["distinct"] <= 1000 and columns["k"]["distinct"] == 3
    assert {top["value"] for top in columns["k"]["top_values"]} == {0, 1, 2}
    assert sum(top["count"] for top in columns["k"]["top_values"]) == 200  # 8 blocks of 25 rows
    assert source.profile["approximate"] is None


def test_a_large_output_with_a_file_row_number_column_is_still_profiled(runner, monkeypatch):
    # Given an output whose own column is called file_row_number (the blocks' row numbers' name)
    from sluice.engine import profile as profiling

    monkeypatch.setattr(profiling, "EXACT_PROFILE_ROWS", 100)
    monkeypatch.setattr(profiling, "SAMPLE_ROWS", 200)
    source = runner.run("src", "source", {"kind": "inline", "rows": [{"n": 1}]})
    many = runner.run(
        "many",
        "transform",
        {"sql": "SELECT i AS file_row_number, i % 2 AS k FROM range(1000) t(i)"},
        {"src": source},
    )

    # Then its columns are profiled from a sample all the same, and the output keeps the column
    columns = {column["name"]: column for column in many.profile["columns"]}
    assert columns["file_row_number"]["max"] == 999 and columns["file_row_number"]["count"] == 1000
    assert {top["value"] for top in columns["k"]["top_values"]} == {0, 1}
    assert many.preview["columns"] == ["file_row_number", "k"]


def test_artifacts_are_stored_beside_the_output(runner, storage, orders):
    assert read_preview(storage, "acme", "run-1", "orders") == orders.preview
    assert read_profile(storage, "acme", "run-1", "orders") == orders.profile
    logs = read_logs(storage, "acme", "run-1", "orders")
    assert logs[0]["message"] == "Starting node: orders (source inline)"
    assert logs[-1]["message"].startswith("Node completed: 4 rows in")
    assert {line["level"] for line in logs} == {"info"}
    with pytest.raises(NotFound, match="Node 'ghost' of run run-1 has no preview: it did not run."):
        read_preview(storage, "acme", "run-1", "ghost")


def test_result_summary_is_small_and_json_safe(runner, orders):
    summary = orders.summary()
    assert set(summary) == {
        "node_id", "node_type", "status", "output", "row_count", "duration_ms", "started_at",
        "finished_at", "columns", "compiled_sql", "watermark", "datasets_read", "written",
    }  # fmt: skip
    assert summary["started_at"].endswith("Z") and summary["duration_ms"] >= 0
    assert json.loads(json.dumps(summary)) == summary


def files_under(root: Path) -> set[str]:
    return {path.relative_to(root).as_posix() for path in root.rglob("*") if path.is_file()}


def test_dry_run_takes_10_rows_and_writes_nothing(runner, storage, tmp_path):
    rows = [{"id": n} for n in range(25)]
    before = files_under(tmp_path / "store") if (tmp_path / "store").exists() else set()
    scratch = storage.scratch(tmp_path / "scratch")

    source = runner.run("src", "source", {"kind": "inline", "rows": rows}, storage=scratch, dry_run=True)
    target = runner.run(
        "out", "target", {"kind": "dataset", "name": "ids"}, {"src": source}, storage=scratch, dry_run=True
    )
    alone = runner.run("src", "source", {"kind": "inline", "rows": rows}, dry_run=True)

    assert source.row_count == 10 and len(source.preview["rows"]) == 10
    assert target.written.persisted is False and target.written.rows_written == 10
    assert alone.row_count == 10
    after = files_under(tmp_path / "store") if (tmp_path / "store").exists() else set()
    assert after == before
    with pytest.raises(NodeFailed, match="dataset 'ids' does not exist"):
        runner.run("src", "source", {"kind": "dataset", "name": "ids"})


def test_resumed_run_reads_an_earlier_runs_output(runner, orders):
    """A resume passes the old run's refs: the new run's node reads them from the old run's folder."""
    result = runner.run("f", "filter", {"condition": "id = 3"}, {"orders": orders.output}, run_id="run-2")
    assert [row["id"] for row in rows_of(result)] == [3]
    assert result.output.key == node_artifact_key("acme", "run-2", "f", "output.parquet")


def test_a_missing_upstream_output_fails_naming_the_node(runner, orders):
    from sluice.engine import ArtifactRef

    with pytest.raises(NodeFailed, match="the output of upstream node 'orders' .* is missing"):
        runner.run(
            "f", "filter", {"condition": "true"}, {"orders": ArtifactRef("projects/acme/runs/x/nope.parquet")}
        )


def test_nodes_run_concurrently_on_threads_of_one_process(runner, orders):
    """The local stack runs a Map state's nodes on threads: each has its own DuckDB and folder."""
    from concurrent.futures import ThreadPoolExecutor

    def filtered(n: int):
        return runner.run(f"f{n}", "filter", {"condition": f"id > {n}"}, {"orders": orders})

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(filtered, range(4)))
    assert [result.row_count for result in results] == [4, 3, 2, 1]


def test_ids_with_slashes_stay_inside_their_folder(runner):
    result = runner.run("../../evil/x", "source", {"kind": "inline", "rows": [{"a": 1}]})
    assert result.output.key == "projects/acme/runs/run-1/nodes/..%2F..%2Fevil%2Fx/output.parquet"
