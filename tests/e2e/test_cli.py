"""The `sluice` CLI end to end against `sluice dev`, as a script would call it: real processes,
stdout for results (JSON with --output json), stderr for sentences, and the documented exit codes."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from sluice.cli import (
    EXIT_AUTH,
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    EXIT_NOT_FOUND,
    EXIT_OK,
    EXIT_UNREACHABLE,
)
from tests.e2e.conftest import free_port
from tests.e2e.test_sdk import BROKEN_YAML, PIPELINE_YAML

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def cli(stack, project_admin, tmp_path):
    """Run `sluice ...` with the project's key in the environment and a private config file."""
    _project, key = project_admin

    def run(*args: str, env: dict[str, str] | None = None, stdin: str | None = None):
        environment = {k: v for k, v in os.environ.items() if not k.startswith("SLUICE_")}
        environment.update(
            SLUICE_URL=stack.base_url, SLUICE_API_KEY=key, SLUICE_CONFIG=str(tmp_path / "config.json")
        )
        environment.update(env or {})
        return subprocess.run(
            [sys.executable, "-m", "sluice.local.cli", *args],
            cwd=ROOT,
            env=environment,
            capture_output=True,
            text=True,
            input=stdin,
            timeout=120,
        )

    run.key = key  # type: ignore[attr-defined]
    return run


def pipeline_file(tmp_path: Path, text: str, suffix: str = ".yaml") -> Path:
    path = tmp_path / f"pipeline-{uuid.uuid4().hex[:6]}{suffix}"
    path.write_text(text)
    return path


def test_apply_run_wait_list_and_logs(cli, tmp_path):
    name = f"cli-{uuid.uuid4().hex[:6]}"
    applied = cli("pipelines", "apply", "-f", str(pipeline_file(tmp_path, PIPELINE_YAML.format(name=name))))
    assert applied.returncode == EXIT_OK, applied.stderr
    assert applied.stdout.strip() == f"pipeline {name} created"

    listed = cli("pipelines", "list", "-o", "json")
    assert [p["name"] for p in json.loads(listed.stdout)] == [name]

    ran = cli("run", name, "--wait", "--var", "region=eu", "--full-refresh", "-o", "json")
    assert ran.returncode == EXIT_OK, ran.stderr
    result = json.loads(ran.stdout)
    assert result["status"] == "success" and result["rows_loaded"] == 2
    assert {n["node_id"]: n["row_count"] for n in result["node_runs"]}[f"{name}_big"] == 2

    table = cli("run", name, "--wait")
    assert table.returncode == EXIT_OK
    assert "success" in table.stdout and "2 rows loaded" in table.stdout

    runs = json.loads(cli("runs", "list", name, "-o", "json").stdout)
    assert len(runs) == 2 and {r["status"] for r in runs} == {"success"}

    logs = cli("runs", "logs", result["id"], "--follow", "-o", "json")
    assert logs.returncode == EXIT_OK
    lines = [json.loads(line) for line in logs.stdout.splitlines()]
    assert lines and {line["run_id"] for line in lines} == {result["id"]}

    got = cli("runs", "get", result["id"], "-o", "json")
    assert json.loads(got.stdout)["id"] == result["id"]


def test_a_failing_run_exits_1_and_resume_makes_a_new_run(cli, tmp_path):
    name = f"cli-broken-{uuid.uuid4().hex[:6]}"
    cli("pipelines", "apply", "-f", str(pipeline_file(tmp_path, BROKEN_YAML.format(name=name))))
    failed = cli("run", name, "--wait")
    assert failed.returncode == EXIT_FAILED
    assert "ended failed" in failed.stderr and "broken" in failed.stderr
    run_id = json.loads(cli("runs", "list", name, "-o", "json").stdout)[0]["id"]
    resumed = cli("runs", "resume", run_id, "-o", "json")
    assert resumed.returncode == EXIT_OK, resumed.stderr
    assert json.loads(resumed.stdout)["resumed_from"] == run_id


def test_cancel_of_a_finished_run_is_a_conflict_exit_7(cli, tmp_path):
    name = f"cli-cancel-{uuid.uuid4().hex[:6]}"
    cli("pipelines", "apply", "-f", str(pipeline_file(tmp_path, PIPELINE_YAML.format(name=name))))
    run_id = json.loads(cli("run", name, "--wait", "-o", "json").stdout)["id"]
    refused = cli("runs", "cancel", run_id)
    assert refused.returncode == 7
    assert refused.stderr.startswith("sluice: ")


def test_a_file_that_is_neither_yaml_nor_json_is_a_sentence_and_exit_2(cli, tmp_path):
    broken = pipeline_file(tmp_path, "name: [unclosed\n  sources: {")
    answer = cli("pipelines", "apply", "-f", str(broken))
    assert answer.returncode == EXIT_BAD_INPUT
    assert "is neither YAML nor JSON" in answer.stderr and "line" in answer.stderr
    scalar = cli("pipelines", "apply", "-f", str(pipeline_file(tmp_path, "just a sentence")))
    assert scalar.returncode == EXIT_BAD_INPUT and "mapping" in scalar.stderr
    bad_json = cli("pipelines", "apply", "-f", str(pipeline_file(tmp_path, "{'a': 1}", ".json")))
    assert bad_json.returncode == EXIT_BAD_INPUT and "not valid JSON" in bad_json.stderr
    invalid = cli("pipelines", "apply", "-f", "-", stdin="name: x\nstatus: sleeping\n")
    assert invalid.returncode == EXIT_BAD_INPUT and "status" in invalid.stderr
    assert cli("run").returncode == 2  # argparse: missing NAME


def test_exit_codes_for_missing_wrong_key_and_unreachable(cli):
    missing = cli("pipelines", "get", "no-such-pipeline")
    assert missing.returncode == EXIT_NOT_FOUND and "not found" in missing.stderr.lower()
    wrong_key = cli("pipelines", "list", env={"SLUICE_API_KEY": "df_key_" + "z" * 40})
    assert wrong_key.returncode == EXIT_AUTH
    nowhere = cli("pipelines", "list", env={"SLUICE_URL": f"http://127.0.0.1:{free_port()}"})
    assert nowhere.returncode == EXIT_UNREACHABLE and "No Sluice answered" in nowhere.stderr
    refused = cli("pipelines", "delete", "anything")
    assert refused.returncode == EXIT_BAD_INPUT and "--yes" in refused.stderr


def test_login_stores_url_and_key_readable_by_its_owner_only(cli, stack, tmp_path):
    env = {"SLUICE_URL": "", "SLUICE_API_KEY": ""}
    logged = cli("login", "--url", stack.base_url, "--api-key", cli.key, env=env)
    assert logged.returncode == EXIT_OK, logged.stderr
    config = tmp_path / "config.json"
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert json.loads(config.read_text()) == {"url": stack.base_url, "api_key": cli.key}
    # Later commands find the URL and key in the file.
    assert cli("pipelines", "list", "-o", "json", env=env).returncode == EXIT_OK
    wrong = cli("login", "--url", stack.base_url, "--api-key", "df_key_" + "q" * 40, env=env)
    assert wrong.returncode == EXIT_AUTH
    assert json.loads(config.read_text())["api_key"] == cli.key, "a refused key is not stored"


def test_backfill_and_alerts_answer_or_say_the_endpoint_is_missing(cli, tmp_path):
    name = f"cli-backfill-{uuid.uuid4().hex[:6]}"
    cli("pipelines", "apply", "-f", str(pipeline_file(tmp_path, PIPELINE_YAML.format(name=name))))
    backfill = cli("backfill", name, "--from", "2026-01-01", "--to", "2026-01-03", "--dry-run", "-o", "json")
    if backfill.returncode == EXIT_OK:  # the server has issue 12's backfill
        assert json.loads(backfill.stdout)
    else:
        assert backfill.returncode == EXIT_NOT_FOUND
        assert "no backfill endpoint" in backfill.stderr
    missing = cli("backfill", "no-such-pipeline", "--from", "2026-01-01", "--to", "2026-01-02")
    assert missing.returncode == EXIT_NOT_FOUND and "backfill endpoint" not in missing.stderr
    alerts = cli("alerts", "list", "-o", "json")
    if alerts.returncode == EXIT_OK:
        assert isinstance(json.loads(alerts.stdout), list)
    else:
        assert alerts.returncode == EXIT_NOT_FOUND and "no alerts endpoint" in alerts.stderr


def test_openapi_command_prints_the_committed_document():
    printed = subprocess.run(
        [sys.executable, "-m", "sluice.local.cli", "openapi"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert printed.returncode == 0, printed.stderr
    assert printed.stdout == (ROOT / "openapi.json").read_text()
    check = subprocess.run(
        [sys.executable, "-m", "sluice.local.cli", "openapi", "--check"],
        cwd=ROOT,
        capture_output=True,
        timeout=120,
    )
    assert check.returncode == 0
