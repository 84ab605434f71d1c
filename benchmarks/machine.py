"""A description of the machine a run happened on, saved with its results."""

from __future__ import annotations

import os
import platform
import re
import subprocess
import tomllib
from importlib import metadata
from pathlib import Path
from typing import Any

import psutil


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def gpus() -> list[str]:
    try:
        result = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [line.strip() for line in result.stdout.splitlines() if line.strip()]


def versions(packages: list[str]) -> dict[str, str]:
    found = {}
    for name in packages:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


# What every suite runs on; a suite adds its peers (its requirements.txt) and the project's
# dependencies.
PACKAGES = ["torch", "numpy", "fastapi", "uvicorn", "httpx"]
NAME = re.compile(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def requirement_names(path: Path) -> list[str]:
    """The distribution names in a requirements file (no versions, extras or markers)."""
    if not path.is_file():
        return []
    names = []
    for line in path.read_text().splitlines():
        if match := NAME.match(line.split("#", 1)[0]):
            names.append(match.group(1))
    return names


def dependency_names(pyproject: Path) -> list[str]:
    """The distribution names a project depends on (its pyproject.toml)."""
    if not pyproject.is_file():
        return []
    dependencies = tomllib.loads(pyproject.read_text()).get("project", {}).get("dependencies", [])
    return [match.group(1) for line in dependencies if (match := NAME.match(line))]


def describe(packages: list[str]) -> dict[str, Any]:
    """The machine, and the versions of `packages` installed here."""
    memory = psutil.virtual_memory()
    return {
        "cpu_model": cpu_model(),
        "logical_cpus": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "memory_gib": round(memory.total / 2**30, 1),
        "gpus": gpus(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "loadavg_at_start": [round(v, 2) for v in os.getloadavg()],
        "packages": versions(list(dict.fromkeys(packages))),
    }


def summary_line(machine: dict[str, Any]) -> str:
    gpu = ", ".join(machine["gpus"]) or "no GPU"
    return (
        f"{machine['cpu_model']}, {machine['usable_cpus']} usable CPUs, "
        f"{machine['memory_gib']} GiB, {gpu}; {machine['platform']}, Python {machine['python']}"
    )
