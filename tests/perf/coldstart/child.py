"""One cold start, in the fresh interpreter bench_cold_start starts: import a built function's
handler as Lambda's Python runtime does, optionally serve one event, and write what was measured.

It runs on the runtime's Python as `python3.12 -I -S -B child.py SPEC` (no PYTHONPATH, no
site-packages of that Python, no bytecode written: Lambda's /var/task and /opt are read-only).
sys.path is what Lambda gives the function: its built folder, then each built layer's
python/lib/python3.X/site-packages and python/, then the standard library. So what is loaded is
what `sam build` put in the packages: the layer's dependencies with the bytecode the build
compiled, Sluice's own modules from source (the layer ships no bytecode of them, so they compile
at every cold start, as on Lambda).

Only the standard library is imported before the clock starts.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import time

WATCHED = ("duckdb", "sqlglot", "boto3", "botocore", "aws_xray_sdk", "pendulum", "moto", "requests", "httpx")


class _Context:
    """The Lambda context attributes Powertools and Mangum read."""

    def __init__(self, name: str):
        self.function_name = name
        self.function_version = "$LATEST"
        self.memory_limit_in_mb = 1024
        self.invoked_function_arn = f"arn:aws:lambda:us-east-1:123456789012:function:{name}"
        self.aws_request_id = "c0ffee00-0000-4000-8000-000000000001"
        self.log_group_name = f"/aws/lambda/{name}"
        self.log_stream_name = "perf"

    def get_remaining_time_in_millis(self) -> int:
        return 29_000


def _present() -> dict[str, bool]:
    return {name: name in sys.modules for name in WATCHED}


def _compile_ms(source_roots: list[str]) -> float:
    """How long compiling the loaded modules that came as source only (Sluice's) takes."""
    roots = tuple(os.path.realpath(r) + os.sep for r in source_roots)
    files = {
        os.path.realpath(m.__file__)
        for m in list(sys.modules.values())
        if getattr(m, "__file__", None) and os.path.realpath(m.__file__).startswith(roots)
    }
    started = time.perf_counter()
    for path in files:
        with open(path, encoding="utf-8") as handle:
            compile(handle.read(), path, "exec")
    return (time.perf_counter() - started) * 1000


def _lambda_sys_path(code_dir: str, layer_dirs: list[str]) -> list[str]:
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    paths = [code_dir]
    for layer in layer_dirs:
        paths += [
            os.path.join(layer, "python", "lib", version, "site-packages"),
            os.path.join(layer, "python"),
        ]
    return paths + [p for p in sys.path if p]


def main() -> None:
    with open(sys.argv[1], encoding="utf-8") as handle:
        spec = json.load(handle)
    sys.path[:] = _lambda_sys_path(spec["code_dir"], spec["layer_dirs"])
    event = spec.get("event")
    result: dict = {"python": sys.version.split()[0]}

    started, cpu = time.perf_counter(), time.process_time()
    module = importlib.import_module(spec["module"])
    handler = getattr(module, spec["attribute"])
    result["import_ms"] = (time.perf_counter() - started) * 1000
    result["import_cpu_ms"] = (time.process_time() - cpu) * 1000
    result["after_import"] = _present()

    if event is not None:
        context = _Context(spec["function"])
        started, cpu = time.perf_counter(), time.process_time()
        response = handler(event, context)
        result["request_ms"] = (time.perf_counter() - started) * 1000
        result["request_cpu_ms"] = (time.process_time() - cpu) * 1000
        result["after_request"] = _present()
        if isinstance(response, dict):
            status = response.get("statusCode", "authorized" if response.get("isAuthorized") else "ok")
        else:
            status = "ok"
        result["status"] = status
        result["response"] = str(response)[:200]
    if spec.get("measure_compile"):
        result["compile_ms"] = _compile_ms(spec["source_roots"])
    with open(spec["out"], "w", encoding="utf-8") as handle:
        json.dump(result, handle)


if __name__ == "__main__":
    main()
