"""The project kinds and what their manifests say.

A kind is a folder `templates/<kind>/` with a `kind.yml`: its title and description, the
packs it uses, its answer combinations, its smoke request, what its tests need, its
benchmark suite and its guide page (docs/extending.md lists every field). Everything that
iterates over kinds (copier.yml's choices, the gallery, the nox sessions, the container
check, the benchmarks) reads them from here or from the same files, so adding a kind is
adding its folder.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
TEMPLATES = ROOT / "templates"
SHARED = TEMPLATES / "_shared"


@dataclass(frozen=True)
class Kind:
    name: str
    manifest: dict[str, Any] = field(repr=False)

    @property
    def folder(self) -> Path:
        return TEMPLATES / self.name

    @property
    def package(self) -> str:
        """The default package name of a project of this kind."""
        return self.name.replace("-", "_")

    @property
    def packs(self) -> list[str]:
        return list(self.manifest["packs"])

    @property
    def backends(self) -> list[str]:
        """The inference_backend choices, the default first."""
        return list(self.manifest.get("backends") or ["torch"])

    def packs_for(self, answers: dict[str, Any]) -> list[str]:
        """The packs a project with these answers is made from: the manifest's, then those
        its inference backend adds (`backend_packs`)."""
        backend = answers.get("inference_backend", self.backends[0])
        return self.packs + list((self.manifest.get("backend_packs") or {}).get(backend, []))

    @property
    def combinations(self) -> dict[str, dict[str, Any]]:
        """Named answer sets: "defaults" (no answers) first, then the manifest's."""
        return {"defaults": {}, **(self.manifest.get("combinations") or {})}

    def get(self, key: str, default: Any = None) -> Any:
        return self.manifest.get(key, default)


@cache
def all_kinds() -> tuple[Kind, ...]:
    """Every kind, in the order copier.yml offers them (by folder name)."""
    return tuple(
        Kind(path.parent.name, yaml.safe_load(path.read_text()))
        for path in sorted(TEMPLATES.glob("*/kind.yml"))
    )


def kind_names() -> list[str]:
    return [kind.name for kind in all_kinds()]


def kind(name: str) -> Kind:
    for found in all_kinds():
        if found.name == name:
            return found
    raise KeyError(f"no templates/{name}/kind.yml; kinds: {kind_names()}")


@cache
def packs() -> tuple[str, ...]:
    """Every pack: a folder of templates/_shared/ with a pack.yml."""
    return tuple(path.parent.name for path in sorted(SHARED.glob("*/pack.yml")))


# The parts of a layer that never become files of the project.
MANIFESTS = {"kind.yml", "pack.yml"}
PARTS = "parts"
_CONDITION = re.compile(r"^\{% if (not )?(\w+)(?: == '([^']*)')? %\}(.*)\{% endif %\}$")


def layer_folders(kind: Kind, answers: dict[str, Any] | None = None) -> list[Path]:
    """The folders a project of `kind` with these answers is made from: its packs in order,
    then its own."""
    return [SHARED / pack for pack in kind.packs_for(answers or {})] + [kind.folder]


def layer_files(folder: Path) -> list[str]:
    """Every file of a layer that becomes a file of the project, as a path in the layer."""
    return sorted(
        path.relative_to(folder).as_posix()
        for path in folder.rglob("*")
        if path.is_file()
        and path.relative_to(folder).parts[0] not in {*MANIFESTS, PARTS}
        and "__pycache__" not in path.parts
    )


def rendered_path(source: str, names: dict[str, str], answers: dict[str, object]) -> str | None:
    """Where a layer file lands in a project with these names and answers (None: its name
    leaves it out), the way templates/_shared/project_files.yml.jinja computes it."""
    parts = []
    for part in source.removesuffix(".jinja").split("/"):
        for template, value in names.items():
            part = part.replace(template, value)
        if match := _CONDITION.match(part):
            negate, answer, expected, name = match.groups()
            value = answers.get(answer)
            holds = str(value) == expected if expected is not None else value is True
            part = name if holds != bool(negate) else ""
        if "{{" in part or "{%" in part:
            raise ValueError(f"{source}: a name the layers cannot render ({part})")
        if not part:
            return None
        parts.append(part)
    return "/".join(parts)
