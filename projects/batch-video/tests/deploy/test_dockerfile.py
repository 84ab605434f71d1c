"""The Dockerfiles against the project they package: what they copy, run and expose."""

from __future__ import annotations

import fnmatch
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from batch_video.settings import Settings
from tests.deploy.tools import CHART, DOCKERFILES, ROOT, executable

IDS = [path.name for path in DOCKERFILES]


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    found: list[tuple[str, str]] = []
    pending = ""
    for raw in dockerfile.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        pending = f"{pending} {line}" if pending else line
        if pending.endswith("\\"):
            pending = pending[:-1].rstrip()
            continue
        keyword, _, rest = pending.partition(" ")
        found.append((keyword.upper(), rest.strip()))
        pending = ""
    return found


def arguments(dockerfile: Path, keyword: str) -> list[str]:
    return [rest for key, rest in instructions(dockerfile) if key == keyword]


def runtime_stage(dockerfile: Path) -> list[tuple[str, str]]:
    steps = instructions(dockerfile)
    last_from = max(i for i, (key, _) in enumerate(steps) if key == "FROM")
    return steps[last_from:]


def in_build_context(relative: str) -> bool:
    """Whether .dockerignore lets `relative` into the build context (last match wins)."""
    included = True
    for raw in (ROOT / ".dockerignore").read_text().splitlines():
        pattern = raw.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negated = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        if fnmatch.fnmatch(relative, pattern) or fnmatch.fnmatch(relative, pattern + "/*"):
            included = negated
    return included


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=IDS)
def test_every_copy_source_exists_in_the_build_context(dockerfile: Path) -> None:
    copies = [rest for rest in arguments(dockerfile, "COPY") if "--from=" not in rest]
    assert copies, "the image copies nothing from the project"
    for rest in copies:
        *sources, _destination = [word for word in rest.split() if not word.startswith("--")]
        for source in sources:
            relative = source.rstrip("/")
            assert (ROOT / relative).exists(), f"COPY {source}: no such path in the project"
            assert in_build_context(relative), f"COPY {source}: .dockerignore leaves it out"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=IDS)
def test_the_entrypoint_runs_the_services_command(dockerfile: Path) -> None:
    entrypoint = json.loads(arguments(dockerfile, "ENTRYPOINT")[-1])
    command = json.loads(arguments(dockerfile, "CMD")[-1])
    assert entrypoint[:2] == ["python", "-m"], entrypoint
    # The module imports and its CLI knows the command: `python -m <module> serve --help`.
    result = subprocess.run(
        [sys.executable, *entrypoint[1:], *command, "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=IDS)
def test_the_exposed_port_is_the_apps_and_the_charts_port(dockerfile: Path) -> None:
    exposed = {int(port.split("/")[0]) for port in arguments(dockerfile, "EXPOSE")}
    app_port = Settings.model_fields["port"].default
    chart_port = yaml.safe_load((CHART / "values.yaml").read_text())["containerPort"]
    assert exposed == {app_port} == {chart_port}
    env = " ".join(arguments(dockerfile, "ENV"))
    assert f"APP_PORT={app_port}" in env
    healthcheck = arguments(dockerfile, "HEALTHCHECK")
    assert healthcheck, "no HEALTHCHECK"
    assert f"127.0.0.1:{app_port}/healthz" in healthcheck[0]


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=IDS)
def test_the_runtime_stage_is_slim_and_runs_unprivileged(dockerfile: Path) -> None:
    steps = instructions(dockerfile)
    assert sum(key == "FROM" for key, _ in steps) >= 2, "not a multi-stage build"
    runtime = runtime_stage(dockerfile)
    users = [rest for key, rest in runtime if key == "USER"]
    assert users, "the runtime stage runs as root"
    assert users[-1].split(":")[0] not in {"root", "0"}
    runs = " ".join(rest for key, rest in runtime if key == "RUN")
    for compiler in ("gcc", "g++", "build-essential", "clang", "apt-get install"):
        assert compiler not in runs, f"the runtime stage installs {compiler}"
    declared = " ".join(rest for key, rest in steps if key in {"ARG", "ENV"})
    assert not re.search(r"(SECRET|TOKEN|PASSWORD|API_KEYS?)\b", declared, re.I), declared


def test_base_images_are_pinned_to_a_release() -> None:
    for dockerfile in DOCKERFILES:
        defaults = [rest for rest in arguments(dockerfile, "ARG") if rest.startswith("BASE_IMAGE=")]
        assert defaults, f"{dockerfile.name}: no BASE_IMAGE default"
        image = defaults[0].split("=", 1)[1]
        assert re.fullmatch(r"[\w./-]+:\d+\.\d+\.\d+-[\w.-]+|[\w./-]+@sha256:[0-9a-f]{64}", image)


def test_torch_is_only_ever_pytorchs_cpu_build_in_the_cpu_image() -> None:
    cpu, gpu = DOCKERFILES
    cpu_args = " ".join(arguments(cpu, "ARG"))
    runtime = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    if any(re.match(r"torch\b", requirement) for requirement in runtime):
        assert "TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu" in cpu_args
        assert re.search(r"TORCH_VERSION=[\d.]+\+cpu\b", cpu_args)
    else:
        # The service runs without torch: none reaches the runtime stage of either image.
        for dockerfile in DOCKERFILES:
            runtime_stage = dockerfile.read_text().split(" AS runtime", 1)[1]
            assert "torch" not in runtime_stage.lower(), dockerfile.name
            versions = re.findall(r"TORCH_VERSION=(\S+)", " ".join(arguments(dockerfile, "ARG")))
            assert all(version.endswith("+cpu") for version in versions), versions
    assert "APP_DEVICE=cuda" in " ".join(arguments(gpu, "ENV"))


def test_hadolint_finds_nothing_at_warning_or_above() -> None:
    hadolint = executable("hadolint")
    result = subprocess.run(
        [hadolint, "--failure-threshold", "warning", *map(str, DOCKERFILES)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_checkov_passes_the_dockerfiles() -> None:
    checkov = executable("checkov")
    files = [arg for path in DOCKERFILES for arg in ("-f", str(path))]
    report = run_checkov(checkov, [*files, "--framework", "dockerfile"])
    assert report["failed"] == [], report["failed"]
    assert report["passed"] > 0


def run_checkov(checkov: str, args: list[str]) -> dict[str, object]:
    """Runs checkov offline; every skip it honours carries a written reason."""
    result = subprocess.run(
        [checkov, *args, "--skip-download", "--output", "json", "--quiet", "--compact"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    text = result.stdout.strip()
    assert text, result.stderr[-2000:]
    reports = json.loads(text)
    reports = reports if isinstance(reports, list) else [reports]
    failed, passed = [], 0
    for report in reports:
        checks = report.get("results", {})
        failed += [
            f"{c['check_id']} {c.get('resource')} {c.get('file_path')}"
            for c in checks.get("failed_checks", [])
        ]
        passed += report.get("summary", {}).get("passed", 0)
        for skipped in checks.get("skipped_checks", []):
            reason = (skipped.get("check_result") or {}).get("suppress_comment", "")
            assert len(reason.strip()) > 10, f"{skipped['check_id']} is skipped without a reason"
    return {"failed": failed, "passed": passed}
