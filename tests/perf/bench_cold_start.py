"""Cold start of every function of template.yaml from its built package (issue 16, after issue 3):
import of the handler module, and import + first event, on the runtime's Python, tracing off and on,
against a bare FastAPI + Mangum floor built the same way.

What is measured is `sam build`'s output, not the source tree: each function's built folder and the
built CoreLayer, in a fresh interpreter of the Lambda runtime's Python (tests/perf/coldstart/child.py)
with only those on sys.path. The floors are built by `sam build` too, from
tests/perf/coldstart/template.yaml (the same runtime and a layer made the same way). Runs are
interleaved across functions and modes so that drift of the machine hits all of them alike, and
the median is reported. The first event goes to moto's server on localhost (in this process,
outside the measured interpreter).

    make build && .venv/bin/python -m tests.perf.bench_cold_start [--quick]
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import tempfile
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.perf.common import (
    OFFLINE_AWS,
    PROJECT,
    ROOT,
    Report,
    api_event,
    bench_main,
    fmt,
    markdown_table,
    principal,
    summary,
)

CHILD = ROOT / "tests" / "perf" / "coldstart" / "child.py"
FLOOR_TEMPLATE = ROOT / "tests" / "perf" / "coldstart" / "template.yaml"
BUILD_DIR = Path(os.environ.get("SLUICE_BUILD_DIR") or ROOT / ".aws-sam" / "build")
FLOOR_BUILD_DIR = ROOT / "tests" / "perf" / "results" / "floor-build"
SAM = ROOT / ".venv-sam" / "bin" / "sam"
TABLE = "sluice-perf-coldstart"
PERF_KEY = "df_key_" + "perfColdStartKey0123456789abcdefghijkl"
TRACE_HEADER = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
TARGET_RATIO = 1.5
MODES = (("import", False), ("import", True), ("request", False), ("request", True))
FLOOR = "floor: FastAPI+Mangum"
FLOOR_DDB = "floor + boto3 GetItem"


@dataclass(frozen=True)
class Target:
    name: str  # logical id, or a floor's label
    code_dir: Path  # the function's built folder
    layer_dirs: tuple[Path, ...]  # its built layers
    module: str
    attribute: str
    event: dict[str, Any] | None  # None: measured at import only (a state machine task)
    floor: bool = False
    api: bool = False


def runtime_python() -> str:
    """The Lambda runtime's Python, as the Makefile finds it (RUNTIME_PYTHON overrides)."""
    if os.environ.get("RUNTIME_PYTHON"):
        return os.environ["RUNTIME_PYTHON"]
    found = sorted(Path.home().glob(".pyenv/versions/3.12.*/bin/python3.12")) or [shutil.which("python3.12")]
    if not found[-1]:
        raise SystemExit("bench_cold_start: Python 3.12 (the Lambda runtime's) not found; set RUNTIME_PYTHON")
    return str(found[-1])


def _authorizer_event() -> dict[str, Any]:
    from sluice.local.gateway import authorizer_event

    event = api_event("GET", "/pipeline/1", route="GET /pipeline/{pipeline_id}", params={"pipeline_id": "1"})
    event["headers"]["authorization"] = f"Bearer {PERF_KEY}"
    return authorizer_event(event)


def _cheap_request(function: str, routes: list[Any]) -> dict[str, Any]:
    """A GET of an unknown id where the function has one, else its first authorized GET."""
    gets = [r for r in routes if r.function == function and r.method == "GET" and r.authorized]
    with_id = [r for r in gets if "{" in r.path]
    route = (with_id or gets)[0]
    params = {name: "999999" for name in re.findall(r"\{(\w+)\}", route.path)}
    path = re.sub(r"\{\w+\}", "999999", route.path)
    return api_event("GET", path, caller=principal("admin"), route=f"GET {route.path}", params=params)


def _first_event(
    template: dict[str, Any], name: str, routes: list[Any]
) -> tuple[dict[str, Any] | None, bool]:
    """(the first event of a cold start, whether it is an API function); None for a function
    without a trigger of its own (a state machine task: its input needs a run in flight)."""
    from tools.package_check import default_event, physical_ids

    if name == "AuthorizerFunction":
        return _authorizer_event(), False
    if any(r.function == name for r in routes):
        return _cheap_request(name, routes), True
    if not (template["Resources"][name]["Properties"].get("Events") or {}):
        return None, False
    event = default_event(template, name, physical_ids(template, {"Stage": "perf"}))
    # Consumers whose minimal event would be dropped unread get one that reads the table.
    body = {
        "RunDispatcherFunction": {"project": PROJECT, "run_id": 999999},
        "CheckWorkerFunction": {"check": "freshness", "project": PROJECT},
    }.get(name)
    if body is not None:
        event["Records"][0]["body"] = json.dumps(body)
    if name == "AnomalyDetectionFunction":
        event["detail"] = {"project": PROJECT, "execution_id": 999999}
    return event, False


def targets() -> list[Target]:
    from sluice.local.template import http_routes, load_template

    template = load_template()
    routes = http_routes(template)
    floor_layer = (FLOOR_BUILD_DIR / "FloorLayer",)
    found = [
        Target(
            FLOOR,
            FLOOR_BUILD_DIR / "FloorFunction",
            floor_layer,
            "app",
            "handler",
            api_event("GET", "/ping"),
            True,
            True,
        ),
        Target(
            FLOOR_DDB,
            FLOOR_BUILD_DIR / "FloorDynamoDBFunction",
            floor_layer,
            "app",
            "handler",
            api_event("GET", "/item/unknown", route="GET /item/{item_id}", params={"item_id": "unknown"}),
            True,
            True,
        ),
    ]
    layers = [r["Ref"] for r in (template.get("Globals") or {}).get("Function", {}).get("Layers") or []]
    functions = sorted(
        k for k, r in template["Resources"].items() if r["Type"] == "AWS::Serverless::Function"
    )
    api = sorted({r.function for r in routes})
    ordered = [
        *api,
        "AuthorizerFunction",
        *[f for f in functions if f not in api and f != "AuthorizerFunction"],
    ]
    for name in ordered:
        module, _, attribute = template["Resources"][name]["Properties"]["Handler"].rpartition(".")
        event, is_api = _first_event(template, name, routes)
        found.append(
            Target(
                name,
                BUILD_DIR / name,
                tuple(BUILD_DIR / layer for layer in layers),
                module,
                attribute,
                event,
                api=is_api,
            )
        )
    return found


def build_floors() -> None:
    """`sam build` of the floors' template (the functions' build is `make build`'s)."""
    if not (BUILD_DIR / "template.yaml").is_file():
        raise SystemExit(f"bench_cold_start: no build at {BUILD_DIR}; run `make build` first")
    if not SAM.exists():
        raise SystemExit("bench_cold_start: no SAM CLI at .venv-sam; run `make build` first")
    python = runtime_python()
    env = {
        **os.environ,
        "PATH": f"{Path(python).parent}:{os.environ['PATH']}",
        "RUNTIME_PYTHON": python,
        "SAM_CLI_TELEMETRY": "0",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    done = subprocess.run(
        [str(SAM), "build", "--template", str(FLOOR_TEMPLATE), "--build-dir", str(FLOOR_BUILD_DIR)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(
            f"bench_cold_start: sam build of the floors failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}"
        )


def package_sizes(found: list[Target]) -> dict[str, dict[str, int]]:
    def size(folder: Path) -> int:
        return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())

    sizes = {}
    for target in found:
        own = size(target.code_dir)
        sizes[target.name] = {"package": own, "with_layers": own + sum(size(d) for d in target.layer_dirs)}
    return sizes


@contextmanager
def moto_server() -> Iterator[str]:
    """moto's server on localhost with the table from template.yaml and one API key of `perf`."""
    import boto3
    from moto.server import ThreadedMotoServer

    from sluice.auth.tokens import hash_api_key
    from sluice.local.template import load_template, table_definition
    from sluice.store.api_keys import ApiKeyRepository
    from sluice.store.table import Table

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        endpoint = f"http://127.0.0.1:{server.get_host_and_port()[1]}"
        client = boto3.client(
            "dynamodb",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        client.create_table(TableName=TABLE, **table_definition(load_template()))
        ApiKeyRepository(Table(TABLE, client=client)).create(
            PROJECT, "key_perf", "perf", "admin", hash_api_key(PERF_KEY), "perf"
        )
        yield endpoint
    finally:
        server.stop()


def child_environment(target: Target, tracing: bool, endpoint: str) -> dict[str, str]:
    """A Lambda-like environment: the template's Globals, the runtime's variables, nothing inherited."""
    env = {k: os.environ[k] for k in ("PATH", "LANG", "LC_ALL", "TMPDIR") if k in os.environ}
    env.update(OFFLINE_AWS)
    env.update(
        AWS_REGION="us-east-1",
        AWS_ENDPOINT_URL=endpoint,
        TABLE_NAME=TABLE,
        SLUICE_STAGE="perf",
        AWS_LAMBDA_FUNCTION_NAME=target.name,
        AWS_LAMBDA_FUNCTION_MEMORY_SIZE="1024",
        AWS_LAMBDA_FUNCTION_VERSION="$LATEST",
        AWS_EXECUTION_ENV="AWS_Lambda_python3.12",
        LAMBDA_TASK_ROOT=str(target.code_dir),
        _X_AMZN_TRACE_ID=TRACE_HEADER,
        AWS_XRAY_CONTEXT_MISSING="LOG_ERROR",
        AWS_XRAY_DAEMON_ADDRESS="127.0.0.1:2000",
        POWERTOOLS_SERVICE_NAME="sluice",
        POWERTOOLS_METRICS_NAMESPACE="Sluice",
        POWERTOOLS_LOG_LEVEL="INFO",
        POWERTOOLS_TRACE_DISABLED="false" if tracing else "true",
    )
    return env


def run_child(
    target: Target, mode: str, tracing: bool, endpoint: str, workdir: Path, importtime: bool = False
) -> dict[str, Any]:
    spec_path = workdir / "spec.json"
    out_path = workdir / "out.json"
    out_path.unlink(missing_ok=True)
    layer_sources = [str(d / "python" / "sluice") for d in target.layer_dirs]
    spec = {
        "function": target.name,
        "code_dir": str(target.code_dir),
        "layer_dirs": [str(d) for d in target.layer_dirs],
        "module": target.module,
        "attribute": target.attribute,
        "source_roots": [str(target.code_dir), *layer_sources],
        "event": target.event if mode == "request" else None,
        "measure_compile": mode == "import" and not tracing and not importtime,
        "out": str(out_path),
    }
    spec_path.write_text(json.dumps(spec))
    command = [
        runtime_python(),
        "-I",
        "-S",
        "-B",
        *(["-X", "importtime"] if importtime else []),
        str(CHILD),
        str(spec_path),
    ]
    done = subprocess.run(
        command,
        cwd=target.code_dir,
        env=child_environment(target, tracing, endpoint),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        timeout=120,
        check=False,
    )
    if done.returncode != 0 or not out_path.exists():
        raise RuntimeError(f"{target.name} ({mode}) failed:\n{done.stderr[-2000:]}")
    result = json.loads(out_path.read_text())
    if importtime:
        result["importtime"] = parse_importtime(done.stderr)
    return result


def parse_importtime(stderr: str) -> dict[str, int]:
    """Module -> self time in microseconds, from `python -X importtime` output."""
    modules: dict[str, int] = {}
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        _, self_us, _cumulative, name = (part.strip() for part in re.split(r"[:|]", line, maxsplit=3))
        modules[name] = modules.get(name, 0) + int(self_us)
    return modules


def extra_packages(target: dict[str, int], floor: dict[str, int], top: int = 6) -> list[tuple[str, float]]:
    """What a function imports that the floor does not, as (top-level package, ms of self time)."""
    grouped: dict[str, int] = defaultdict(int)
    for module, micros in target.items():
        if module not in floor:
            grouped[module.partition(".")[0]] += micros
    ranked = sorted(grouped.items(), key=lambda pair: pair[1], reverse=True)
    return [(name, micros / 1000) for name, micros in ranked[:top]]


def modes_of(target: Target) -> tuple[tuple[str, bool], ...]:
    return MODES if target.event is not None else MODES[:2]


def measure(quick: bool) -> dict[str, Any]:
    runs = 3 if quick else 7  # medians of fresh interpreters per function and mode; --quick: no attribution
    build_floors()
    found = targets()
    stale = [t.name for t in found if next(t.code_dir.rglob("__pycache__"), None) is not None]
    if stale or any(next((d / "python" / "sluice").rglob("__pycache__"), None) for d in found[-1].layer_dirs):
        raise SystemExit(
            f"bench_cold_start: bytecode was written into the build ({stale}); run `make build` again"
        )
    samples: dict[tuple[str, str, bool], list[dict[str, Any]]] = defaultdict(list)
    failures: dict[str, str] = {}
    importtimes: dict[tuple[str, bool], dict[str, int]] = {}
    with moto_server() as endpoint, tempfile.TemporaryDirectory(prefix="sluice-perf-") as tmp:
        workdir = Path(tmp)
        for target in [] if quick else found:  # one -X importtime run each, for attribution
            for tracing in (False, True):
                try:
                    result = run_child(target, "import", tracing, endpoint, workdir, importtime=True)
                    importtimes[(target.name, tracing)] = result["importtime"]
                except RuntimeError as exc:
                    failures[target.name] = str(exc)
        for _run in range(runs):
            for target in found:
                if target.name in failures:
                    continue
                for mode, tracing in modes_of(target):
                    try:
                        samples[(target.name, mode, tracing)].append(
                            run_child(target, mode, tracing, endpoint, workdir)
                        )
                    except RuntimeError as exc:
                        failures[target.name] = str(exc)
                        break
    results: dict[str, Any] = {
        "runs": runs,
        "failures": failures,
        "functions": {},
        "sizes": package_sizes(found),
        "python": samples[(FLOOR, "import", False)][-1].get("python")
        if samples[(FLOOR, "import", False)]
        else None,
    }
    for target in found:
        if target.name in failures:
            continue
        entry: dict[str, Any] = {"floor": target.floor, "api": target.api}
        for mode, tracing in modes_of(target):
            key = f"{mode}_{'traced' if tracing else 'untraced'}"
            got = samples[(target.name, mode, tracing)]
            entry[key] = {
                "import_ms": summary([g["import_ms"] for g in got]),
                "import_cpu_ms": summary([g["import_cpu_ms"] for g in got]),
                "after_import": got[-1]["after_import"],
            }
            if mode == "request":
                entry[key]["request_ms"] = summary([g["request_ms"] for g in got])
                entry[key]["total_ms"] = summary([g["import_ms"] + g["request_ms"] for g in got])
                entry[key]["total_cpu_ms"] = summary([g["import_cpu_ms"] + g["request_cpu_ms"] for g in got])
                entry[key]["status"] = got[-1]["status"]
                entry[key]["after_request"] = got[-1]["after_request"]
            if "compile_ms" in got[-1]:
                entry["compile_ms"] = summary([g["compile_ms"] for g in got])
        for tracing in (False, True):
            floor_modules = importtimes.get((FLOOR, tracing), {})
            mine = importtimes.get((target.name, tracing), {})
            entry[f"extra_over_floor_{'traced' if tracing else 'untraced'}"] = extra_packages(
                mine, floor_modules
            )
        results["functions"][target.name] = entry
    return results


def render(results: dict[str, Any], report: Report) -> None:
    functions = results["functions"]
    floor = functions.get(FLOOR)
    floor_ddb = functions.get(FLOOR_DDB)
    if floor is None:
        report.add("The floor failed to run:\n\n```\n" + results["failures"].get(FLOOR, "") + "\n```")
        return

    def med(name: str, key: str, figure: str) -> float:
        return functions[name][key][figure]["median"]

    rows = []
    for name, entry in functions.items():
        cells: list[Any] = [name]
        for key in ("import_untraced", "import_traced"):
            for figure in ("import_ms", "import_cpu_ms"):
                value = med(name, key, figure)
                ratio = value / med(FLOOR, key, figure)
                met = "" if entry["floor"] or not entry["api"] else (" ✓" if ratio <= TARGET_RATIO else " ✗")
                cells += [fmt(value), f"{ratio:.2f}x{met}"]
        cells.append(fmt(entry["compile_ms"]["median"]) if "compile_ms" in entry else "-")
        rows.append(cells)
    report.add(
        f"**Import of the handler module, from the built package** (ms, medians of {results['runs']} fresh "
        f"interpreters of Python {results.get('python')}, wall clock and the process's CPU time; target for "
        f"the API functions: within {TARGET_RATIO}x of the floor). The layer's dependencies load the "
        "bytecode the build compiled; Sluice's own modules ship as source and compile at each start, "
        "as on Lambda; the last column is that compile's share.\n\n"
        + markdown_table(
            [
                "function",
                "off: wall",
                "x floor",
                "off: CPU",
                "x floor",
                "on (X-Ray): wall",
                "x floor",
                "on: CPU",
                "x floor",
                "of which compiling Sluice source",
            ],
            rows,
        )
    )

    rows = []
    for name, entry in functions.items():
        if "request_untraced" not in entry:
            continue
        cells = [name, str(entry["request_untraced"]["status"])]
        for key in ("request_untraced", "request_traced"):
            total = med(name, key, "total_ms")
            cells += [
                fmt(med(name, key, "import_ms")),
                fmt(med(name, key, "request_ms")),
                fmt(total),
                f"{total / med(FLOOR, key, 'total_ms'):.2f}x",
                f"{total / med(FLOOR_DDB, key, 'total_ms'):.2f}x" if floor_ddb else "-",
                f"{med(name, key, 'total_cpu_ms') / med(FLOOR, key, 'total_cpu_ms'):.2f}x",
            ]
        rows.append(cells)
    report.add(
        "**Import + first event** (ms, medians; an API function's is a cheap GET of an unknown id, the "
        "authorizer's a valid API key, a job's its trigger's minimal event; DynamoDB is moto's server on localhost, so a call costs a few ms "
        "where AWS costs about 5-10 ms with TLS set-up). Sluice imports boto3 on the first client, so "
        "its first request carries boto3's import and the client's creation; the second floor pays "
        "them at import instead.\n\n"
        + markdown_table(
            [
                "function",
                "status",
                "off: import",
                "first request",
                "total",
                "x floor",
                "x floor+boto3",
                "CPU x floor",
                "on: import",
                "first request",
                "total",
                "x floor",
                "x floor+boto3",
                "CPU x floor",
            ],
            rows,
        )
    )

    rows = []
    for name, entry in functions.items():
        if entry["floor"]:
            continue
        imported = entry["import_untraced"]["after_import"]
        requested = entry.get("request_traced", {}).get("after_request") or imported
        traced = entry["import_traced"]["after_import"]
        rows.append(
            [
                name,
                "yes" if imported["duckdb"] or requested["duckdb"] else "no",
                "yes" if imported["sqlglot"] or requested["sqlglot"] else "no",
                "yes" if imported["boto3"] else "no",
                "yes" if imported["botocore"] else "no",
                "yes" if traced["aws_xray_sdk"] else "no",
            ]
        )
    report.add(
        "**What is loaded** (after import, and after the first request for duckdb/sqlglot):\n\n"
        + markdown_table(
            [
                "function",
                "duckdb",
                "sqlglot",
                "boto3 at import",
                "botocore at import",
                "aws_xray_sdk at import (tracing on)",
            ],
            rows,
        )
    )

    rows = []
    for name, entry in functions.items():
        if entry["floor"] or not entry["extra_over_floor_untraced"]:
            continue
        for key, label in (("extra_over_floor_untraced", "off"), ("extra_over_floor_traced", "on")):
            listed = ", ".join(f"{package} {value:.0f}" for package, value in entry[key])
            rows.append([name, label, listed or "-"])
    if rows:
        report.add(
            "**Imported beyond the floor**, by top-level package (ms of self time under `-X importtime`, "
            "one run, which inflates times; for attribution only):\n\n"
            + markdown_table(["function", "tracing", "largest additions (ms)"], rows)
        )
    sizes = results.get("sizes") or {}
    if sizes:
        report.add(
            "**Package sizes, unzipped** (what Lambda's 250 MB limit counts: the function's folder plus "
            "its layers):\n\n"
            + markdown_table(
                ["function", "its package", "with its layers"],
                [
                    [name, f"{size['package'] / 1024:.1f} KB", f"{size['with_layers'] / 2**20:.1f} MB"]
                    for name, size in sizes.items()
                ],
            )
        )
    if results["failures"]:
        report.add(
            "**Failed to measure:**\n\n"
            + "\n".join(
                f"- {name}: `{message.strip().splitlines()[-1] if message.strip() else 'no output'}`"
                for name, message in results["failures"].items()
            )
        )


def run(quick: bool) -> Report:
    report = Report("cold_start", "Cold start of every function, from its built package")
    results = measure(quick)
    report.data.update(results)
    render(results, report)
    return report


if __name__ == "__main__":
    bench_main(__doc__.splitlines()[0], run)
