"""The local stack's scheduler and snapshots against a real moto server (no template needed)."""

from __future__ import annotations

import json

import boto3
import pendulum
import pytest
import requests

from sluice.local import moto_adapter
from sluice.local.scheduler import Scheduler
from sluice.local.snapshot import Snapshot

TARGET = "arn:aws:lambda:us-east-1:123456789012:function:target"
ROLE = "arn:aws:iam::123456789012:role/scheduler"


def reset(endpoint: str) -> None:
    """moto's state is per process, not per server: wipe it (as a restart of the stack would)."""
    requests.post(f"{endpoint}/moto-api/reset", timeout=10).raise_for_status()


@pytest.fixture
def moto_endpoint():
    server, port = moto_adapter.start_server()
    endpoint = f"http://127.0.0.1:{port}"
    reset(endpoint)
    yield endpoint
    reset(endpoint)
    server.stop()


def client(endpoint: str, service: str):
    return boto3.client(service, endpoint_url=endpoint, region_name="us-east-1")


def test_scheduler_fires_eventbridge_scheduler_schedules_on_time(moto_endpoint):
    scheduler = client(moto_endpoint, "scheduler")
    scheduler.create_schedule(
        Name="sluice-p-1",
        ScheduleExpression="cron(0 */6 * * ? *)",
        FlexibleTimeWindow={"Mode": "OFF"},
        Target={"Arn": TARGET, "RoleArn": ROLE, "Input": json.dumps({"project": "p", "pipeline_id": 1})},
    )
    scheduler.create_schedule(
        Name="sluice-p-2",
        ScheduleExpression="cron(0 */6 * * ? *)",
        FlexibleTimeWindow={"Mode": "OFF"},
        Target={"Arn": TARGET, "RoleArn": ROLE, "Input": "{}"},
        State="DISABLED",
    )
    fired = []
    local = Scheduler(moto_endpoint, lambda arn, event: fired.append((arn, event)))
    start = pendulum.datetime(2026, 1, 1, 5, 59, tz="UTC")
    assert local.tick(start) == 0  # learns the next firing: 06:00
    assert local.tick(start.add(seconds=30)) == 0
    assert local.tick(start.add(minutes=1)) == 1
    assert fired == [(TARGET, {"project": "p", "pipeline_id": 1})]
    assert local.tick(start.add(minutes=2)) == 0  # not twice for one slot
    assert local.tick(start.add(hours=6, minutes=1)) == 1  # 12:00 next

    # A changed schedule is re-read
    scheduler.update_schedule(
        Name="sluice-p-1",
        ScheduleExpression="cron(30 * * * ? *)",
        FlexibleTimeWindow={"Mode": "OFF"},
        Target={"Arn": TARGET, "RoleArn": ROLE, "Input": "{}"},
    )
    later = start.add(hours=7)
    local.tick(later)
    assert local.tick(later.add(minutes=31)) == 1


def test_one_time_schedules_fire_once(moto_endpoint):
    client(moto_endpoint, "scheduler").create_schedule(
        Name="once",
        ScheduleExpression="at(2026-01-01T00:00:00)",
        FlexibleTimeWindow={"Mode": "OFF"},
        Target={"Arn": TARGET, "RoleArn": ROLE},
    )
    fired = []
    local = Scheduler(moto_endpoint, lambda arn, event: fired.append(arn))
    assert local.tick(pendulum.datetime(2025, 12, 31, tz="UTC")) == 0
    assert local.tick(pendulum.datetime(2026, 1, 1, 0, 0, 1, tz="UTC")) == 1
    assert local.tick(pendulum.datetime(2026, 1, 2, tz="UTC")) == 0
    assert fired == [TARGET]


def test_snapshot_keeps_secrets_and_schedules_across_servers(tmp_path, moto_endpoint):
    secrets = client(moto_endpoint, "secretsmanager")
    secrets.create_secret(Name="sluice/local/p/connectors/1", SecretString='{"password": "hunter2"}')
    client(moto_endpoint, "scheduler").create_schedule(
        Name="sluice-p-9",
        ScheduleExpression="cron(15 3 * * ? *)",
        FlexibleTimeWindow={"Mode": "OFF"},
        Target={"Arn": TARGET, "RoleArn": ROLE, "Input": '{"pipeline_id": 9}'},
    )
    Snapshot(tmp_path, tables={}, buckets={}, clients=lambda service: client(moto_endpoint, service)).save()
    assert (tmp_path / "runtime.json").stat().st_mode & 0o077 == 0  # owner only

    reset(moto_endpoint)
    assert client(moto_endpoint, "secretsmanager").list_secrets()["SecretList"] == []
    restored = Snapshot(
        tmp_path, tables={}, buckets={}, clients=lambda service: client(moto_endpoint, service)
    ).restore()
    assert restored["runtime"] == 2
    value = client(moto_endpoint, "secretsmanager").get_secret_value(SecretId="sluice/local/p/connectors/1")
    assert json.loads(value["SecretString"]) == {"password": "hunter2"}
    schedule = client(moto_endpoint, "scheduler").get_schedule(Name="sluice-p-9")
    assert schedule["ScheduleExpression"] == "cron(15 3 * * ? *)"
    assert json.loads(schedule["Target"]["Input"]) == {"pipeline_id": 9}


def test_s3_writes_are_journaled_as_they_happen_and_restored_without_a_listing(tmp_path, moto_endpoint):
    """Every put and delete reaches the journal before the caller sees moto's answer; a restart
    (after a kill: no compaction) puts back exactly what was there, content types included."""
    s3 = client(moto_endpoint, "s3")
    s3.create_bucket(Bucket="physical-data")
    s3.create_bucket(Bucket="not-ours")

    def clients(service):
        return client(moto_endpoint, service)

    snapshot = Snapshot(
        tmp_path,
        tables={},
        buckets={"DataBucket": "physical-data"},
        clients=clients,
        read_object=moto_adapter.s3_object,
    )
    snapshot.restore()
    moto_adapter.install(lambda name, event: None, lambda arn, event: None)
    moto_adapter.observe_s3_writes(snapshot.record_s3_writes, snapshot.watches)
    try:
        s3.put_object(
            Bucket="physical-data",
            Key="runs/1/out.parquet",
            Body=b"PAR1",
            ContentType="application/x-parquet",
        )
        s3.put_object(Bucket="physical-data", Key="runs/1/gone", Body=b"x")
        s3.put_object(Bucket="physical-data", Key="odd key/é?", Body=b"y", Metadata={"origin": "test"})
        s3.copy_object(
            Bucket="physical-data",
            Key="runs/2/copy",
            CopySource={"Bucket": "physical-data", "Key": "runs/1/out.parquet"},
        )
        s3.delete_object(Bucket="physical-data", Key="runs/1/gone")
        s3.put_object(Bucket="not-ours", Key="k", Body=b"z")
        journal = (tmp_path / "s3" / "DataBucket" / "journal.jsonl").read_text().splitlines()
        assert len(journal) == 5  # written before each call returned; nothing of the other bucket
    finally:
        moto_adapter.observe_s3_writes(None)
        moto_adapter.uninstall()

    reset(moto_endpoint)  # the process died: moto's memory is gone, the journal was never compacted
    s3.create_bucket(Bucket="physical-again")
    restored = Snapshot(
        tmp_path,
        tables={},
        buckets={"DataBucket": "physical-again"},
        clients=clients,
        read_object=moto_adapter.s3_object,
    ).restore()
    assert restored["objects"] == 3
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket="physical-again")["Contents"])
    assert keys == ["odd key/é?", "runs/1/out.parquet", "runs/2/copy"]
    copied = s3.get_object(Bucket="physical-again", Key="runs/2/copy")
    assert (copied["Body"].read(), copied["ContentType"]) == (b"PAR1", "application/x-parquet")
    assert s3.head_object(Bucket="physical-again", Key="odd key/é?")["Metadata"] == {"origin": "test"}
    assert not (tmp_path / "s3" / "DataBucket" / "journal.jsonl").exists()  # folded into the manifest
