"""`sluice dev --from-build`: handlers load from sam build's per-function folders, not the source tree."""

from __future__ import annotations

from pathlib import Path

import pytest

from sluice.local.cli import build_parser, use_build
from sluice.local.functions import FunctionRegistry
from sluice.local.template import ROOT, function_handler, load_template


def test_a_code_root_points_every_function_at_its_built_folder(tmp_path: Path):
    template = load_template()
    assert function_handler(template, "PlanRunFunction") == (ROOT / "functions/runs/", "tasks", "plan_run")
    assert function_handler(template, "PlanRunFunction", tmp_path) == (
        tmp_path / "PlanRunFunction",
        "tasks",
        "plan_run",
    )


def test_the_registry_loads_the_built_module_and_names_a_missing_one(tmp_path: Path):
    template = load_template()
    (tmp_path / "PlatformFunction").mkdir()
    (tmp_path / "PlatformFunction" / "app.py").write_text(
        "def handler(event, context):\n    return 'built'\n"
    )
    registry = FunctionRegistry(template, code_root=tmp_path)

    assert registry.handler("PlatformFunction")({}, None) == "built"
    with pytest.raises(
        LookupError, match=r"LineageFunction: handler module .*LineageFunction/app.py does not exist"
    ):
        registry.handler("LineageFunction")


def test_the_flag_defaults_to_sam_builds_folder():
    assert build_parser().parse_args(["dev", "--from-build"]).from_build == Path(".aws-sam/build")
    assert build_parser().parse_args(["dev", "--from-build", "out"]).from_build == Path("out")
    assert build_parser().parse_args(["dev"]).from_build is None


def test_without_a_built_layer_it_says_what_to_run(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="run `make build` first"):
        use_build(tmp_path)


def test_it_refuses_once_sluice_modules_came_from_the_source_tree(tmp_path: Path):
    (tmp_path / "CoreLayer/python/sluice").mkdir(parents=True)
    (tmp_path / "CoreLayer/python/sluice/__init__.py").write_text("")
    import sluice.domain  # noqa: F401 - this process has imported it from the source tree

    with pytest.raises(RuntimeError, match="already imported from the source tree"):
        use_build(tmp_path)
