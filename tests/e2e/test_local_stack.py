"""The local stack as a developer runs it: restarts keep data, Ctrl-C and SIGTERM shut down
cleanly, and no DynamoDB Local outlives its stack."""

from __future__ import annotations

import json
import signal
from pathlib import Path

from sluice.local.dynamodb_local import PID_DIR
from tests.e2e.conftest import start_stack


def dynamodb_local_of(stack) -> list[int]:
    """PIDs of the DynamoDB Local processes this stack started and that still run."""
    found = []
    for path in PID_DIR.glob("*.json"):
        record = json.loads(path.read_text())
        if record["parent"] == stack.process.pid:
            try:
                cmdline = Path(f"/proc/{record['pid']}/cmdline").read_bytes()
            except OSError:
                continue
            if b"DynamoDBLocal.jar" in cmdline:
                found.append(record["pid"])
    return found


def test_restart_keeps_data_and_ctrl_c_exits_cleanly(tmp_path):
    data_dir = tmp_path / "state"
    first = start_stack("--data-dir", str(data_dir))
    try:
        with first.admin as admin:
            created = admin.post("/api/v1/api-keys", json={"name": "survivor", "role": "editor"})
            assert created.status_code == 201
            pipeline = admin.post(
                "/pipeline", json={"name": "Nightly Load", "pipeline_type_name": "extraction"}
            )
            assert pipeline.status_code == 201, pipeline.text
        assert len(dynamodb_local_of(first)) == 1
    finally:
        assert first.stop() == 0
    assert any("state saved" in line for line in first.output)
    assert (data_dir / "state" / "dynamodb-local" / "shared-local-instance.db").exists()
    assert dynamodb_local_of(first) == []

    second = start_stack("--data-dir", str(data_dir))
    try:
        with second.client(created.json()["key"]) as editor:
            listed = editor.get("/pipeline")
            assert listed.status_code == 200
            assert [p["name"] for p in listed.json()] == ["nightly load"]
        with second.admin as admin:
            assert "survivor" in {k["name"] for k in admin.get("/api/v1/api-keys").json()["data"]}
    finally:
        assert second.stop(sig=signal.SIGTERM) == 0  # a service manager's stop is as clean as Ctrl-C
    assert any("state saved" in line for line in second.output)
    assert dynamodb_local_of(second) == []


def test_ephemeral_stack_writes_nothing_to_disk(tmp_path):
    data_dir = tmp_path / "never"
    stack = start_stack("--ephemeral", "--data-dir", str(data_dir))
    try:
        with stack.admin as admin:
            assert admin.post("/api/v1/api-keys", json={"name": "x", "role": "viewer"}).status_code == 201
    finally:
        assert stack.stop() == 0
    assert not data_dir.exists()


def test_a_generated_admin_key_is_printed_once(tmp_path):
    data_dir = tmp_path / "fresh"
    first = start_stack("--data-dir", str(data_dir), env={"SLUICE_ADMIN_KEY": ""})
    try:
        printed = [line for line in first.output if "Admin API key" in line]
        assert len(printed) == 1
        key = printed[0].rsplit(" ", 1)[-1].strip()
        with first.client(key) as admin:
            assert admin.get("/api/v1/api-keys").status_code == 200
    finally:
        first.stop()
    second = start_stack("--data-dir", str(data_dir), env={"SLUICE_ADMIN_KEY": ""})
    try:
        assert not [line for line in second.output if "Admin API key" in line]
        with second.client(key) as admin:
            assert admin.get("/api/v1/api-keys").status_code == 200
    finally:
        second.stop()
