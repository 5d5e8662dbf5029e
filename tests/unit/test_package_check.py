"""The package check (tools/package_check.py) on small builds made here: what breaks packaging is
found and named (function and module), not left for deploy time. The real build is checked by
`make package-check`."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from tools.package_check import Resolver, check

RUNTIME = f"python{sys.version_info.major}.{sys.version_info.minor}"
NOWHERE = "http://127.0.0.1:9"  # these handlers call no AWS; nothing listens there


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))


def built_template(functions: dict[str, str]) -> str:
    resources = "".join(
        f"""
  {name}:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: {name}
      Handler: {handler}
"""
        for name, handler in functions.items()
    )
    return f"""
Globals:
  Function:
    Runtime: {RUNTIME}
    Layers:
      - Ref: CoreLayer
    Environment:
      Variables:
        GREETING: !Sub "hello from ${{AWS::Region}}"
Resources:
  CoreLayer:
    Type: AWS::Serverless::LayerVersion
    Properties:
      ContentUri: CoreLayer
{resources}"""


@pytest.fixture
def build(tmp_path: Path) -> Path:
    """A build where the layer holds python/sluice/greeting.py and three functions use it."""
    write(tmp_path / "CoreLayer/python/sluice/__init__.py", "")
    write(
        tmp_path / "CoreLayer/python/sluice/greeting.py",
        """
        import os

        def greet():
            return os.environ["GREETING"]
        """,
    )
    handler = """
        from sluice.greeting import greet

        def handler(event, context):
            return {"said": greet(), "by": context.function_name}
        """
    write(tmp_path / "GoodFunction/app.py", handler)
    write(tmp_path / "MissingPathFunction/app.py", handler)
    write(
        tmp_path / "MissingModuleFunction/app.py",
        """
        from sluice.greeting import greet
        from sluice.engine.sql import run_sql  # the layer has no sluice.engine

        def handler(event, context):
            return run_sql(greet())
        """,
    )
    write(
        tmp_path / "template.yaml",
        built_template(
            {
                "GoodFunction": "app.handler",
                "MissingPathFunction": "handlers.app.handler",
                "MissingModuleFunction": "app.handler",
            }
        ),
    )
    return tmp_path


def test_a_working_function_passes_and_broken_ones_are_named_with_their_module(build: Path):
    failures = check(build, sys.executable, endpoint=NOWHERE, out=lambda _: None)
    text = "\n".join(failures)

    assert "GoodFunction" not in text
    # The handler path names a module the package does not have: found before running, and at import.
    assert any(
        f.startswith("MissingPathFunction:") and "module 'handlers.app' is not in its package" in f
        for f in failures
    ), text
    assert any(
        f.startswith("MissingPathFunction (handler handlers.app.handler, tracing off): import failed")
        and "module 'handlers' is missing" in f
        for f in failures
    ), text
    # A module the layer lacks: the function and the module, in both tracing modes.
    for mode in ("off", "on"):
        assert any(
            f.startswith(f"MissingModuleFunction (handler app.handler, tracing {mode}): import failed")
            and "module 'sluice.engine' is missing" in f
            for f in failures
        ), text


def test_a_module_missing_behind_a_caught_error_is_named_from_the_logs(build: Path):
    # An HTTP function whose route imports lazily and whose app turns the error into a 500.
    write(
        build / "LazyFunction/app.py",
        """
        import json

        def handler(event, context):
            try:
                import sluice.reports  # not in the layer
            except ImportError as exc:
                print(json.dumps({"level": "ERROR", "message": "unhandled error", "exception": repr(exc)}))
                return {"statusCode": 500, "body": '{"detail": "Internal error; it has been logged."}'}
            return {"statusCode": 200, "body": "{}"}
        """,
    )
    text = (
        (build / "template.yaml").read_text()
        + """
  LazyFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: LazyFunction
      Handler: app.handler
      Events:
        Report: {Type: HttpApi, Properties: {Path: "/reports/{report_id}", Method: GET}}
"""
    )
    (build / "template.yaml").write_text(text)

    failures = check(build, sys.executable, endpoint=NOWHERE, out=lambda _: None)

    assert any(
        f.startswith(
            "LazyFunction (handler app.handler, tracing off): invoke failed: module 'sluice.reports' is missing"
        )
        and "it answered 500" in f
        for f in failures
    ), failures


def test_the_template_environment_reaches_the_handler(build: Path):
    lines: list[str] = []
    check(build, sys.executable, endpoint=NOWHERE, out=lines.append)
    good = [line for line in lines if line.startswith("| GoodFunction | off |")]
    assert good and "ok" in good[0] and "hello from us-east-1" in good[0], lines


def test_a_layer_nested_as_sam_builds_contenturi_layers_core_fails_every_function(build: Path):
    # What `ContentUri: layers/core/` with BuildMethod python3.x built: python/python/sluice.
    (build / "CoreLayer/python").rename(build / "inner")
    (build / "CoreLayer/python").mkdir()
    (build / "inner").rename(build / "CoreLayer/python/python")

    failures = check(build, sys.executable, endpoint=NOWHERE, out=lambda _: None)

    assert any("CoreLayer: the layer nests python/python/" in f for f in failures), failures
    assert any(
        f.startswith("GoodFunction (handler app.handler, tracing off)") and "module 'sluice' is missing" in f
        for f in failures
    ), failures


def test_junk_in_packages_is_refused(build: Path):
    write(build / "CoreLayer/python/sluice/local/stack.py", "import moto\n")
    write(build / "CoreLayer/python/sluice/__pycache__/greeting.cpython-312.pyc", "")
    write(build / "GoodFunction/tests/test_app.txt", "")

    failures = check(build, sys.executable, endpoint=NOWHERE, out=lambda _: None)

    assert any("CoreLayer: the layer holds sluice/local" in f for f in failures), failures
    assert any("CoreLayer: the layer holds __pycache__" in f for f in failures), failures
    assert any(f.startswith("GoodFunction: its package holds more than handler modules") for f in failures)


def test_a_runtime_the_checking_python_is_not_is_refused(build: Path):
    text = (build / "template.yaml").read_text().replace(f"Runtime: {RUNTIME}", "Runtime: python3.9")
    (build / "template.yaml").write_text(text)

    failures = check(build, sys.executable, endpoint=NOWHERE, out=lambda _: None)

    assert any(f.startswith("GoodFunction: runtime python3.9, but the check runs Python") for f in failures)


def test_intrinsics_resolve_as_cloudformation_would():
    template = {
        "Parameters": {"Stage": {"Default": "dev"}, "Tracing": {"Default": "true"}},
        "Conditions": {"TracingOn": {"Fn::Equals": [{"Ref": "Tracing"}, "true"]}},
        "Resources": {},
    }
    physical = {"Bus": {"Ref": "sluice-x", "Name": "sluice-x", "Arn": "arn:bus"}}
    resolver = Resolver(template, {"Tracing": "false"}, physical)

    assert resolver.value({"Fn::Sub": "sluice/${Stage}/${AWS::Region}"}) == "sluice/dev/us-east-1"
    assert resolver.value({"Fn::If": ["TracingOn", "Active", "PassThrough"]}) == "PassThrough"
    assert resolver.value({"Fn::GetAtt": ["Bus", "Name"]}) == "sluice-x"
    assert resolver.value({"Fn::Sub": "${Bus.Arn}/rule"}) == "arn:bus/rule"
    with pytest.raises(KeyError, match="Nowhere"):
        resolver.value({"Ref": "Nowhere"})


def test_a_dependency_built_for_another_platform_or_version_is_refused(tmp_path: Path):
    from importlib.metadata import version

    from tools.package_check import Problems, check_pins, wheel_runs_on_lambda

    six = version("six")
    write(
        tmp_path / f"python/six-{six}.dist-info/METADATA",
        f"Metadata-Version: 2.1\nName: six\nVersion: {six}\n",
    )
    write(
        tmp_path / f"python/six-{six}.dist-info/WHEEL",
        "Wheel-Version: 1.0\nTag: cp311-cp311-manylinux_2_17_x86_64\n",
    )
    write(
        tmp_path / "python/pyyaml-0.1.dist-info/METADATA",
        "Metadata-Version: 2.1\nName: PyYAML\nVersion: 0.1\n",
    )
    problems = Problems()

    check_pins("CoreLayer", tmp_path, problems)

    assert sorted(problems.found) == sorted(
        [
            f"CoreLayer: six {six} is a wheel for cp311-cp311-manylinux_2_17_x86_64, not Lambda's "
            "CPython 3.12, x86_64, glibc 2.34 (Amazon Linux 2023)",
            f"CoreLayer: the layer has PyYAML 0.1, the dev venv {version('pyyaml')} "
            "(layers/core/requirements.txt or constraints.txt and pyproject.toml disagree)",
        ]
    )
    assert wheel_runs_on_lambda("cp312-abi3-manylinux_2_28_x86_64")  # DuckDB 2.0.1's wheel
    assert wheel_runs_on_lambda("cp39-abi3-manylinux2014_x86_64")  # the stable ABI of an older CPython
    assert not wheel_runs_on_lambda("cp312-cp312-manylinux_2_35_x86_64")  # newer glibc than AL2023's
    assert not wheel_runs_on_lambda("cp312-cp312-manylinux_2_17_aarch64")
