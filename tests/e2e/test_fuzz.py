"""Fuzzing from the document: schemathesis generates valid and invalid bodies, parameters and
headers for every operation of the served OpenAPI (GET /openapi.json of `sluice dev`) and checks
each answer: no 5xx, every status documented, every body (the `{"detail": ...}` of every 4xx
included) matching its declared schema. Bounded for `make test` (SLUICE_FUZZ_EXAMPLES, default 2
per operation); `make fuzz` runs more examples and more phases."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"


def test_every_operation_of_the_served_document_under_generated_input(stack, project_admin, tmp_path):
    _project, key = project_admin
    examples = os.environ.get("SLUICE_FUZZ_EXAMPLES", "2")
    phases = os.environ.get("SLUICE_FUZZ_PHASES", "fuzzing")
    report = tmp_path / "schemathesis.json"
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "run",
        f"{stack.base_url}/openapi.json",
        "--header",
        f"Authorization: Bearer {key}",
        "--max-examples",
        examples,
        "--phases",
        phases,
        "--checks",
        CHECKS,
        "--workers",
        "1",
        "--seed",
        os.environ.get("SLUICE_FUZZ_SEED", "15"),
        "--generation-database",
        "none",
        "--request-timeout",
        "60",
        "--no-color",
        "--report",
        "json",
        "--report-json-path",
        str(report),
    ]
    # In tmp_path: schemathesis keeps a cache folder (.schemathesis) where it runs.
    ran = subprocess.run(command, capture_output=True, text=True, timeout=1800, cwd=tmp_path)
    summary = json.loads(report.read_text())
    cases = summary["test_cases"]
    print(
        f"\nschemathesis: {summary['operations']['tested']} operations, {cases['generated']} cases, "
        f"{cases['with_failures']} with failures"
    )
    assert summary["operations"]["tested"] == summary["operations"]["total"]
    assert summary["errors"] == [], summary["errors"]
    assert summary["failures"] == [], ran.stdout[-6000:]
    assert ran.returncode == 0, ran.stdout[-3000:]
