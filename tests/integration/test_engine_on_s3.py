"""The node execution core on moto S3, chained as the run state machine will chain it: the issue's
3-node pipeline and a second pipeline reading its dataset back, S3 CSV/JSON/JSONL sources and a
Parquet target, incremental reads, merges, failures, and dry runs that leave the bucket untouched."""

from __future__ import annotations

import io
import json

import boto3
import duckdb
import pytest

from sluice.engine import Datasets, NodeFailed, Storage, read_logs, read_preview, read_profile
from tests.engine_runs import NodeRunner, rows_of

BUCKET = "sluice-data-test"
SALES = [
    {"id": 1, "region": "north", "amount": 10, "sold_at": "2024-01-01T09:00:00"},
    {"id": 2, "region": "south", "amount": 20, "sold_at": "2024-01-01T10:00:00"},
    {"id": 3, "region": "north", "amount": 30, "sold_at": "2024-01-02T09:00:00"},
    {"id": 4, "region": "east", "amount": 40, "sold_at": "2024-01-02T10:00:00"},
    {"id": 5, "region": "north", "amount": 50, "sold_at": "2024-01-03T09:00:00"},
]


@pytest.fixture
def s3(aws, monkeypatch):
    client = boto3.client("s3")
    client.create_bucket(Bucket=BUCKET)
    client.create_bucket(Bucket="landing-zone")
    monkeypatch.setenv("DATA_BUCKET", BUCKET)
    return client


@pytest.fixture
def storage(s3) -> Storage:
    return Storage.s3()


@pytest.fixture
def runner(storage) -> NodeRunner:
    return NodeRunner(storage, project="acme", run_id="run-1")


def keys(s3, bucket: str = BUCKET) -> set[str]:
    return {item["Key"] for item in s3.list_objects_v2(Bucket=bucket).get("Contents", [])}


def test_three_node_pipeline_writes_a_dataset_that_a_second_pipeline_reads(runner, storage, s3):
    # Given the pipeline: inline source -> SQL transform -> dataset target
    source = runner.run("sales", "source", {"kind": "inline", "rows": SALES})
    totals = runner.run(
        "totals",
        "transform",
        {
            "sql": "SELECT region, sum(amount) AS total, count(*) AS n FROM {{ ref('sales') }} GROUP BY region ORDER BY region"
        },
        {"sales": source},
    )
    target = runner.run(
        "region_totals",
        "target",
        {"kind": "dataset", "name": "region_totals", "mode": "overwrite"},
        {"totals": totals},
    )

    # Then the row counts are right at every node
    assert (source.row_count, totals.row_count, target.row_count) == (5, 3, 3)
    assert target.written.rows_written == 3 and target.written.dataset == "region_totals"

    # When a second pipeline (another run) reads the dataset back
    second = NodeRunner(storage, project="acme", run_id="run-2")
    read_back = second.run("totals_in", "source", {"kind": "dataset", "name": "region_totals"})
    doubled = second.run(
        "doubled",
        "transform",
        {"sql": "SELECT region, total * 2 AS twice FROM totals_in"},
        {"totals_in": read_back},
    )

    assert rows_of(read_back) == [
        {"region": "east", "total": 40, "n": 1},
        {"region": "north", "total": 90, "n": 3},
        {"region": "south", "total": 20, "n": 1},
    ]
    assert [row["twice"] for row in rows_of(doubled)] == [80, 180, 40]
    assert read_back.datasets_read == ["region_totals"]

    # And every node's artifacts sit in the data bucket where the layout says
    stored = keys(s3)
    for node_id in ("sales", "totals", "region_totals"):
        for artifact in ("output.parquet", "preview.json", "profile.json", "logs.jsonl"):
            assert f"projects/acme/runs/run-1/nodes/{node_id}/{artifact}" in stored
    assert "projects/acme/datasets/region_totals/manifest.json" in stored
    assert read_preview(storage, "acme", "run-1", "totals") == totals.preview
    assert read_profile(storage, "acme", "run-1", "totals")["row_count"] == 3
    assert read_logs(storage, "acme", "run-1", "totals")[-1]["message"].startswith("Node completed: 3 rows")


def test_the_output_artifact_is_parquet_with_the_nodes_rows(runner, s3):
    source = runner.run("sales", "source", {"kind": "inline", "rows": SALES})
    body = s3.get_object(Bucket=BUCKET, Key=source.output.key)["Body"].read()
    assert body[:4] == b"PAR1"


def test_s3_csv_source_and_parquet_target(runner, s3):
    csv = "id,region,amount\n1,north,10\n2,south,20\n3,north,30\n"
    s3.put_object(Bucket="landing-zone", Key="sales/2024-01-01.csv", Body=csv.encode())

    source = runner.run(
        "raw", "source", {"kind": "s3", "uri": "s3://landing-zone/sales/2024-01-01.csv", "format": "csv"}
    )
    north = runner.run("north", "filter", {"condition": "region = 'north'"}, {"raw": source})
    target = runner.run(
        "export",
        "target",
        {"kind": "s3", "uri": "s3://landing-zone/exports/north.parquet", "format": "parquet"},
        {"north": north},
    )

    assert (source.row_count, north.row_count, target.written.rows_written) == (3, 2, 2)
    body = s3.get_object(Bucket="landing-zone", Key="exports/north.parquet")["Body"].read()
    path = "/tmp/sluice-test-north.parquet"
    with open(path, "wb") as handle:
        handle.write(body)
    assert duckdb.sql(f"SELECT id, amount FROM read_parquet('{path}') ORDER BY id").fetchall() == [
        (1, 10),
        (3, 30),
    ]


def test_a_single_parquet_object_is_kept_as_the_output_unchanged(runner, s3, tmp_path):
    path = tmp_path / "sales.parquet"
    duckdb.sql(f"COPY (SELECT range AS id, range % 7 AS k FROM range(5000)) TO '{path}' (FORMAT parquet)")
    s3.upload_file(str(path), "landing-zone", "sales.parquet")

    source = runner.run(
        "raw", "source", {"kind": "s3", "uri": "s3://landing-zone/sales.parquet", "format": "parquet"}
    )
    limited = runner.run(
        "raw",
        "source",
        {"kind": "s3", "uri": "s3://landing-zone/sales.parquet", "format": "parquet"},
        row_limit=5,
        run_id="r2",
    )

    stored = s3.get_object(Bucket=BUCKET, Key=source.output.key)["Body"].read()
    assert stored == path.read_bytes() and source.row_count == 5000
    assert any("copied inside S3" in line.message for line in source.logs)
    assert limited.row_count == 5 and not any("copied inside S3" in line.message for line in limited.logs)


def test_s3_json_and_jsonl_sources_and_a_prefix_of_several_objects(runner, s3):
    s3.put_object(
        Bucket="landing-zone", Key="api/users.json", Body=json.dumps({"id": 1, "name": "ada"}).encode()
    )
    s3.put_object(Bucket="landing-zone", Key="events/part-1.jsonl", Body=b'{"id": 1, "kind": "click"}\n')
    s3.put_object(
        Bucket="landing-zone",
        Key="events/part-2.jsonl",
        Body=b'{"id": 2, "kind": "view"}\n{"id": 3, "kind": "click"}\n',
    )
    s3.put_object(Bucket="landing-zone", Key="events/_SUCCESS", Body=b"")

    users = runner.run(
        "users", "source", {"kind": "s3", "uri": "s3://landing-zone/api/users.json", "format": "json"}
    )
    events = runner.run(
        "events", "source", {"kind": "s3", "uri": "s3://landing-zone/events/", "format": "jsonl"}
    )

    assert rows_of(users) == [{"id": 1, "name": "ada"}]
    assert sorted(row["id"] for row in rows_of(events)) == [1, 2, 3]


def test_a_source_file_that_is_not_the_declared_format_fails_the_node(runner, s3):
    s3.put_object(Bucket="landing-zone", Key="sales.parquet", Body=b"id,amount\n1,2\n")
    with pytest.raises(
        NodeFailed, match=r"s3://landing-zone/sales.parquet is not a parquet file: it looks like CSV"
    ):
        runner.run(
            "raw", "source", {"kind": "s3", "uri": "s3://landing-zone/sales.parquet", "format": "parquet"}
        )


def test_a_missing_bucket_or_object_fails_with_that_reason(runner):
    with pytest.raises(NodeFailed, match="bucket 'no-such-bucket' does not exist"):
        runner.run("raw", "source", {"kind": "s3", "uri": "s3://no-such-bucket/x.csv", "format": "csv"})
    with pytest.raises(NodeFailed, match="s3://landing-zone/nothing.csv names no object"):
        runner.run("raw", "source", {"kind": "s3", "uri": "s3://landing-zone/nothing.csv", "format": "csv"})


def test_incremental_source_reads_only_new_rows_on_the_second_run(runner, s3):
    def land(rows):
        body = "\n".join(json.dumps(row) for row in rows).encode()
        s3.put_object(Bucket="landing-zone", Key="sales.jsonl", Body=body)

    config = {
        "kind": "s3",
        "uri": "s3://landing-zone/sales.jsonl",
        "format": "jsonl",
        "watermark_column": "sold_at",
    }
    land(SALES[:3])
    first = runner.run("sales", "source", config, run_id="run-1")
    land(SALES)  # two rows arrive later
    second = runner.run("sales", "source", config, run_id="run-2", watermark=first.watermark)

    assert (first.row_count, first.watermark) == (3, "2024-01-02T09:00:00")
    assert [row["id"] for row in rows_of(second)] == [4, 5]
    assert second.watermark == "2024-01-03T09:00:00"


def test_merge_target_upserts_and_reports_counts(runner, storage):
    first = runner.run("sales", "source", {"kind": "inline", "rows": SALES[:3]})
    runner.run(
        "out", "target", {"kind": "dataset", "name": "sales", "mode": "merge", "key": "id"}, {"sales": first}
    )
    changes = runner.run(
        "changes",
        "source",
        {"kind": "inline", "rows": [{**SALES[0], "amount": 11}, *SALES[3:]]},
        run_id="run-2",
    )
    merged = runner.run(
        "out",
        "target",
        {"kind": "dataset", "name": "sales", "mode": "merge", "key": "id"},
        {"changes": changes},
        run_id="run-2",
    )

    assert (merged.written.inserts, merged.written.updates, merged.written.rows_written) == (2, 1, 3)
    version, _ = Datasets(storage, "acme").current("sales")
    assert (version.version, version.row_count) == (2, 5)
    rows = runner.run("check", "source", {"kind": "dataset", "name": "sales"}, run_id="run-3")
    assert {row["id"]: row["amount"] for row in rows_of(rows)} == {1: 11, 2: 20, 3: 30, 4: 40, 5: 50}


def test_a_lost_manifest_race_is_retried_on_the_newer_version(runner, storage, monkeypatch):
    """Two appends at once: the loser's conditional write fails and it appends to the winner's version."""
    rows = runner.run("rows", "source", {"kind": "inline", "rows": SALES[:2]})
    runner.run("out", "target", {"kind": "dataset", "name": "log", "mode": "append"}, {"rows": rows})
    datasets = Datasets(storage, "acme")
    real_current = Datasets.current
    raced = []

    def current_then_race(self, name):
        found = real_current(self, name)
        if not raced:
            raced.append(True)
            # another writer swaps the manifest between this read and the conditional write
            runner.run(
                "other",
                "target",
                {"kind": "dataset", "name": "log", "mode": "append"},
                {"rows": rows},
                run_id="run-x",
            )
        return found

    monkeypatch.setattr(Datasets, "current", current_then_race)
    result = runner.run(
        "out", "target", {"kind": "dataset", "name": "log", "mode": "append"}, {"rows": rows}, run_id="run-2"
    )
    monkeypatch.setattr(Datasets, "current", real_current)

    assert raced and result.written.version == 3  # v1, the racer's v2, then this write on top
    version, _ = datasets.current("log")
    assert (version.version, version.row_count, len(version.files)) == (3, 6, 3)


def test_a_failing_transform_gives_duckdbs_message_and_stores_its_logs(runner, storage, s3):
    source = runner.run("sales", "source", {"kind": "inline", "rows": SALES})
    with pytest.raises(NodeFailed) as failure:
        runner.run("bad", "transform", {"sql": "SELECT region, sum(amount) FROM sales"}, {"sales": source})

    assert failure.value.detail.startswith('Binder Error: column "region" must appear in the GROUP BY clause')
    assert "projects/acme/runs/run-1/nodes/bad/output.parquet" not in keys(s3)
    logs = read_logs(storage, "acme", "run-1", "bad")
    assert logs[-1]["level"] == "error" and "GROUP BY" in logs[-1]["message"]


def test_dry_run_of_every_node_writes_nothing(runner, storage, s3, tmp_path):
    s3.put_object(
        Bucket="landing-zone",
        Key="sales.csv",
        Body=b"id,amount\n" + b"".join(b"%d,%d\n" % (n, n) for n in range(40)),
    )
    before, landing_before = keys(s3), keys(s3, "landing-zone")
    scratch = storage.scratch(tmp_path / "dry-run")
    options = {"storage": scratch, "dry_run": True, "run_id": "dry-1"}

    source = runner.run(
        "raw", "source", {"kind": "s3", "uri": "s3://landing-zone/sales.csv", "format": "csv"}, **options
    )
    big = runner.run("big", "filter", {"condition": "amount >= 5"}, {"raw": source}, **options)
    to_dataset = runner.run(
        "out", "target", {"kind": "dataset", "name": "big_sales"}, {"big": big}, **options
    )
    to_s3 = runner.run(
        "export",
        "target",
        {"kind": "s3", "uri": "s3://landing-zone/out.csv", "format": "csv"},
        {"big": big},
        **options,
    )

    assert [row["id"] for row in rows_of(big)] == [5, 6, 7, 8, 9]  # filter over the first 10 rows only
    assert source.row_count == 10 and len(source.preview["rows"]) == 10
    assert to_dataset.written.persisted is False and to_s3.written.persisted is False
    assert keys(s3) == before and keys(s3, "landing-zone") == landing_before


def test_transform_reading_a_dataset_through_ref(runner):
    source = runner.run("sales", "source", {"kind": "inline", "rows": SALES})
    runner.run(
        "out", "target", {"kind": "dataset", "name": "regions", "mode": "overwrite"}, {"sales": source}
    )
    joined = runner.run(
        "j",
        "transform",
        {"sql": "SELECT count(*) AS n FROM sales JOIN {{ ref('regions') }} r USING (id)"},
        {"sales": source},
        run_id="run-2",
    )
    assert rows_of(joined) == [{"n": 5}]
    assert joined.datasets_read == ["regions"]


def test_csv_target_is_readable_text(runner, s3):
    source = runner.run("sales", "source", {"kind": "inline", "rows": SALES[:2]})
    runner.run(
        "out",
        "target",
        {"kind": "s3", "uri": "s3://landing-zone/sales.csv", "format": "csv"},
        {"sales": source},
    )
    text = s3.get_object(Bucket="landing-zone", Key="sales.csv")["Body"].read().decode()
    assert list(io.StringIO(text))[0].strip() == "id,region,amount,sold_at"


@pytest.mark.parametrize("single_request_bytes", [64 * 1024 * 1024, 16])
def test_objects_move_whole_in_one_request_or_in_parts(
    storage, s3, monkeypatch, tmp_path, single_request_bytes
):
    # Given a threshold below or above the object's size (one Get/PutObject, or s3transfer's parts)
    from sluice.engine import artifacts

    monkeypatch.setattr(artifacts, "SINGLE_REQUEST_BYTES", single_request_bytes)
    body = b"sluice," * 1000
    original = tmp_path / "original.bin"
    original.write_bytes(body)

    # When a file goes up and comes back down
    storage.objects.upload(original, BUCKET, "moved/object.bin")
    back = tmp_path / "back.bin"
    storage.objects.download(BUCKET, "moved/object.bin", back)

    # Then it is the same bytes, either way
    assert back.read_bytes() == body
    assert s3.get_object(Bucket=BUCKET, Key="moved/object.bin")["Body"].read() == body


def test_downloading_a_missing_object_names_it(storage, tmp_path):
    from sluice.engine.artifacts import ObjectMissing

    with pytest.raises(ObjectMissing, match="moved/nothing.bin does not exist"):
        storage.objects.download(BUCKET, "moved/nothing.bin", tmp_path / "x")


def test_a_multipart_parquet_source_is_copied_and_read_downstream(runner, s3, tmp_path):
    # Given a Parquet object uploaded in parts (as `aws s3 cp` does past 8 MB; forced here at 5 MB)
    from boto3.s3.transfer import TransferConfig

    path = tmp_path / "big.parquet"
    duckdb.sql(
        f"COPY (SELECT i AS id, md5(i::VARCHAR) AS noise FROM range(300000) t(i)) TO '{path}' "
        "(FORMAT parquet, COMPRESSION uncompressed)"
    )
    assert path.stat().st_size > 5 * 1024 * 1024
    config = TransferConfig(multipart_threshold=5 * 1024 * 1024, multipart_chunksize=5 * 1024 * 1024)
    s3.upload_file(str(path), "landing-zone", "big/big.parquet", Config=config)
    assert "-" in s3.head_object(Bucket="landing-zone", Key="big/big.parquet")["ETag"]

    # When a source keeps it as its output (a copy inside S3) and a transform reads that output
    source = runner.run(
        "big", "source", {"kind": "s3", "uri": "s3://landing-zone/big/big.parquet", "format": "parquet"}
    )
    counted = runner.run("n", "transform", {"sql": "SELECT count(*) AS n FROM big"}, {"big": source})

    # Then the copy reads back whole: one GetObject, its checksum checked
    assert source.row_count == 300000
    assert counted.preview["rows"] == [{"n": 300000}]
