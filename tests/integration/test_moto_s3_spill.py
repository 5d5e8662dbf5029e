"""The template buckets' objects kept in files by `moto_adapter.SpilledKeyStore`: S3 answers as moto
does (bodies, metadata, conditions, copies, multipart, listings, deletes), the objects leave the
interpreter's heap once their request is answered, and a listing reads only the keys it lists."""

from __future__ import annotations

import gc
import logging
import os
import sys
import threading

import boto3
import pytest
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError

from sluice.engine.workspace import remove_abandoned_folders
from sluice.local import moto_adapter
from tests.integration.test_local_scheduler_and_snapshot import client, moto_endpoint, reset  # noqa: F401

BUCKET = "spilled-data"


@pytest.fixture
def spilled(moto_endpoint, tmp_path):  # noqa: F811
    s3 = client(moto_endpoint, "s3")
    s3.create_bucket(Bucket=BUCKET)
    s3.put_object(Bucket=BUCKET, Key="before/spill", Body=b"made before the store")
    moto_adapter.install(lambda name, event: None, lambda arn, event: None)
    store = moto_adapter.spill_bucket(BUCKET, tmp_path / "spill")
    try:
        yield s3, store
    finally:
        moto_adapter.unspill_buckets()
        moto_adapter.uninstall()


def test_objects_answer_as_in_moto_and_leave_memory_once_answered(spilled, tmp_path):
    s3, store = spilled
    assert dict.get(store, "before/spill") is moto_adapter.ON_DISK  # moved when the store took over
    assert s3.get_object(Bucket=BUCKET, Key="before/spill")["Body"].read() == b"made before the store"

    put = s3.put_object(
        Bucket=BUCKET,
        Key="runs/1/out.json",
        Body=b"[1, 2]",
        ContentType="application/json",
        Metadata={"rows": "2"},
    )
    assert dict.get(store, "runs/1/out.json") is moto_adapter.ON_DISK
    got = s3.get_object(Bucket=BUCKET, Key="runs/1/out.json")
    assert (got["Body"].read(), got["ContentType"], got["Metadata"], got["ETag"]) == (
        b"[1, 2]",
        "application/json",
        {"rows": "2"},
        put["ETag"],
    )
    assert s3.head_object(Bucket=BUCKET, Key="runs/1/out.json")["ContentLength"] == 6

    # Conditional writes compare with the version in the file
    with pytest.raises(ClientError) as refused:
        s3.put_object(Bucket=BUCKET, Key="runs/1/out.json", Body=b"[]", IfNoneMatch="*")
    assert refused.value.response["Error"]["Code"] == "PreconditionFailed"
    with pytest.raises(ClientError):
        s3.put_object(Bucket=BUCKET, Key="runs/1/out.json", Body=b"[]", IfMatch='"not-its-etag"')
    s3.put_object(Bucket=BUCKET, Key="runs/1/out.json", Body=b"[3]", IfMatch=put["ETag"])
    assert s3.get_object(Bucket=BUCKET, Key="runs/1/out.json")["Body"].read() == b"[3]"

    # A copy with a checksum of its own, and a multipart upload
    s3.copy_object(
        Bucket=BUCKET,
        Key="runs/2/copy.json",
        CopySource={"Bucket": BUCKET, "Key": "runs/1/out.json"},
        ChecksumAlgorithm="CRC32",
    )
    copied = s3.get_object(Bucket=BUCKET, Key="runs/2/copy.json", ChecksumMode="ENABLED")
    assert copied["Body"].read() == b"[3]" and copied["ChecksumCRC32"]
    big = os.urandom(6 * 2**20)
    (tmp_path / "big").write_bytes(big)
    s3.upload_file(
        str(tmp_path / "big"), BUCKET, "runs/3/big", Config=TransferConfig(multipart_threshold=5 * 2**20)
    )
    assert s3.get_object(Bucket=BUCKET, Key="runs/3/big")["Body"].read() == big
    assert store.in_memory() == 0

    # Tags stay with a tagged object; untagged objects leave no entry in moto's tag service
    s3.put_object(Bucket=BUCKET, Key="runs/4/tagged", Body=b"t", Tagging="owner=etl")
    assert s3.get_object_tagging(Bucket=BUCKET, Key="runs/4/tagged")["TagSet"] == [
        {"Key": "owner", "Value": "etl"}
    ]
    tags = moto_adapter.s3_backends[moto_adapter.ACCOUNT_ID]["aws"].tagger.tags
    assert [arn for arn in tags if f"{BUCKET}/" in arn] == [f"arn:aws:s3:::{BUCKET}/runs/4/tagged/null"]
    s3.delete_object(Bucket=BUCKET, Key="runs/4/tagged")
    assert not [arn for arn in tags if f"{BUCKET}/" in arn]  # the object's tags went with it

    # Deletes remove the files; a missing key is NoSuchKey
    files = len(os.listdir(store.directory))
    s3.delete_object(Bucket=BUCKET, Key="runs/2/copy.json")
    s3.delete_objects(Bucket=BUCKET, Delete={"Objects": [{"Key": "runs/3/big"}, {"Key": "before/spill"}]})
    assert len(os.listdir(store.directory)) == files - 3
    with pytest.raises(ClientError) as missing:
        s3.get_object(Bucket=BUCKET, Key="runs/2/copy.json")
    assert missing.value.response["Error"]["Code"] == "NoSuchKey"
    assert sorted(o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"]) == ["runs/1/out.json"]


def test_a_listing_reads_only_the_keys_under_its_prefix(spilled, monkeypatch):
    s3, store = spilled
    for i in range(30):
        s3.put_object(Bucket=BUCKET, Key=f"other/{i:02d}", Body=b"o")
    for i in range(5):
        s3.put_object(Bucket=BUCKET, Key=f"wanted/{i}", Body=b"w" * i)
    reads = []
    real_load = moto_adapter.pickle.load
    monkeypatch.setattr(moto_adapter.pickle, "load", lambda handle: reads.append(1) or real_load(handle))

    pages = s3.get_paginator("list_objects_v2").paginate(
        Bucket=BUCKET, Prefix="wanted/", PaginationConfig={"PageSize": 2}
    )
    listed = [(o["Key"], o["Size"]) for page in pages for o in page.get("Contents", [])]
    assert listed == [(f"wanted/{i}", i) for i in range(5)]
    assert 0 < len(reads) <= 3 * 5  # each page reads the prefix's keys, never the 31 others
    everything = s3.list_objects_v2(Bucket=BUCKET, MaxKeys=1000)["Contents"]
    assert len(everything) == 36  # without a prefix, every key (the one made before the store too)


def test_a_key_being_written_stays_in_memory_until_its_last_writer_is_answered(spilled):
    s3, store = spilled
    s3.put_object(Bucket=BUCKET, Key="k", Body=b"v1")
    store.begin_write("k")  # as if another request had put it and not been answered yet
    s3.put_object(Bucket=BUCKET, Key="k", Body=b"v2")
    assert dict.get(store, "k") is not moto_adapter.ON_DISK  # the other writer may still set metadata
    store.end_write("k")
    assert dict.get(store, "k") is moto_adapter.ON_DISK
    assert s3.get_object(Bucket=BUCKET, Key="k")["Body"].read() == b"v2"


def test_concurrent_writers_and_readers_lose_no_version_and_see_no_error(spilled, moto_endpoint):  # noqa: F811
    s3, store = spilled
    errors: list[Exception] = []
    last: dict[str, bytes] = {}

    def work(worker: int) -> None:
        own = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")
        try:
            for round_ in range(15):
                key = f"shared/{round_ % 3}"
                body = f"{worker}-{round_}".encode()
                own.put_object(Bucket=BUCKET, Key=key, Body=body, Metadata={"writer": str(worker)})
                got = own.get_object(Bucket=BUCKET, Key=key)
                assert got["Body"].read().decode().count("-") == 1 and "writer" in got["Metadata"]
                own.put_object(Bucket=BUCKET, Key=f"own/{worker}", Body=body)
                last[f"own/{worker}"] = body
        except Exception as exc:  # noqa: BLE001 (reported below)
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    for key, body in last.items():
        assert s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() == body
    assert store.in_memory() == 0  # every writer was answered: everything is in its file


def test_spilled_objects_hold_a_fraction_of_moto_s_memory(spilled, moto_endpoint, caplog):  # noqa: F811
    s3, _ = spilled
    # moto's server logs each request at INFO, and pytest keeps every record it captures: counted
    # here, they were ~17 blocks an object whenever no earlier test had quietened werkzeug
    caplog.set_level(logging.WARNING, logger="werkzeug")
    s3.create_bucket(Bucket="kept-by-moto")
    body = os.urandom(300)

    def live_blocks_per_object(bucket: str, count: int = 300) -> float:
        moto_adapter.forget_tracked_instances()
        gc.collect()
        before = sys.getallocatedblocks()
        for i in range(count):
            s3.put_object(
                Bucket=bucket, Key=f"runs/{i:06d}/output.json", Body=body, ContentType="application/json"
            )
        moto_adapter.forget_tracked_instances()  # the maintenance pass does this every 30 s
        gc.collect()
        return (sys.getallocatedblocks() - before) / count

    in_moto = live_blocks_per_object("kept-by-moto")
    in_files = live_blocks_per_object(BUCKET)
    assert in_moto > 20, in_moto  # moto's FakeKey: its dicts, ACL, buffer, lock
    assert in_files < in_moto / 5, (in_files, in_moto)


def test_the_folder_of_a_killed_stack_is_removed_at_the_next_start(tmp_path, monkeypatch):
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    dead = tmp_path / f"{moto_adapter.SPILL_PREFIX}999999999-abc"
    (dead / "DataBucket").mkdir(parents=True)
    alive = tmp_path / f"{moto_adapter.SPILL_PREFIX}{os.getpid()}-def"
    alive.mkdir()
    assert remove_abandoned_folders(moto_adapter.SPILL_PREFIX) == 1
    assert not dead.exists() and alive.exists()


class _Version:
    """A stand-in for moto's FakeKey: what the store pickles and hands back."""

    def __init__(self, body: bytes):
        self.body = body

    def dispose(self) -> None:
        self.body = b""


def test_a_listing_skips_a_key_deleted_while_it_lists(tmp_path, monkeypatch):
    # Given two keys in their files, and a listing that took its copy of the keys before a delete
    store = moto_adapter.SpilledKeyStore(tmp_path / "store")
    for key in ("a", "b"):
        store[key] = _Version(key.encode())
    assert store.spill_all() == 2
    listed = store._self_iterable()
    monkeypatch.setattr(store, "_self_iterable", lambda: listed)
    store.pop("a")
    # Then every way moto walks the keys leaves the deleted one out (a KeyError was a 500)
    assert [(k, v.body) for k, v in store.items()] == [("b", b"b")]
    assert [(k, [v.body for v in vs]) for k, vs in store.lists()] == [("b", [b"b"])]
    assert [v.body for v in store.values()] == [b"b"]
