"""The project kinds and what their manifests say.

A kind is a folder `templates/<kind>/` with a `kind.yml`: its title and description, the
packs it uses, its answer combinations, its smoke request, what its tests need, its
benchmark suite and its guide page (docs/extending.md lists every field). Everything that
iterates over kinds (copier.yml's choices, the gallery, the nox sessions, the container
check, the benchmarks) reads them from here or from the same files, so adding a kind is
adding its folder.
"""

from __future__ import annotations

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
