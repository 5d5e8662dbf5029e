"""The package check on a copy of the real build, broken the two ways a template or layer change
breaks packaging: a handler path that does not exist, a module the layer lacks. Both must fail the
check naming the function and the module (tests/unit/test_package_check.py does the same on small
builds, in `make test`). Run by `make package-check` after `sam build`."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tools.package_check import check

ROOT = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("SLUICE_BUILD_DIR") or ROOT / ".aws-sam" / "build")
RUNTIME_PYTHON = os.environ.get("RUNTIME_PYTHON") or shutil.which("python3.12")


@pytest.fixture
def broken_build(tmp_path: Path) -> Path:
    if not (BUILD / "template.yaml").is_file() or not RUNTIME_PYTHON:
        pytest.fail(f"needs the build at {BUILD} and Python 3.12 (RUNTIME_PYTHON); run `make package-check`")
    copy = tmp_path / "build"
    shutil.copytree(BUILD, copy, symlinks=True)
    template = (copy / "template.yaml").read_text()
    # PlatformFunction's handler renamed to a module its package does not have...
    platform = template.index("CodeUri: PlatformFunction")
    handler = template.index("Handler: app.handler", platform)
    template = (
        template[:handler]
        + "Handler: handlers.app.handler"
        + template[handler + len("Handler: app.handler") :]
    )
    (copy / "template.yaml").write_text(template)
    # ...and a module the authorizer imports left out of the layer.
    (copy / "CoreLayer/python/sluice/auth/tokens.py").unlink()
    return copy


def test_a_broken_build_fails_naming_each_function_and_module(broken_build: Path):
    failures = check(
        broken_build, RUNTIME_PYTHON, out=lambda _: None, only={"PlatformFunction", "AuthorizerFunction"}
    )
    text = "\n".join(failures)

    assert (
        "PlatformFunction: handler handlers.app.handler: module 'handlers.app' is not in its package" in text
    )
    assert (
        "PlatformFunction (handler handlers.app.handler, tracing off): import failed: module 'handlers' is missing"
        in text
    )
    assert (
        "AuthorizerFunction (handler app.handler, tracing off): import failed: module 'sluice.auth.tokens' is missing"
        in text
    ), text
    assert all(f.startswith(("PlatformFunction", "AuthorizerFunction")) for f in failures), text
