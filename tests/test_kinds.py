"""The kinds' manifests, the packs they use, and what keeps shared parts free of any kind."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from tests import kinds

ROOT = kinds.ROOT
KIND_NAMES = kinds.kind_names()
# What a manifest may say its tests need (the nox sessions provide each).
NEEDS = {"smollm2", "vllm", "redis", "browser"}
JINJA = re.compile(r"\{\{|\{%|\{#")
# Where nothing may name a kind: the shared layers and the repository's own machinery.
KIND_FREE = [
    *sorted(p for p in (ROOT / "templates" / "_shared").rglob("*") if p.is_file()),
    *sorted(p for p in (ROOT / "tests").glob("*.py") if p.name != "test_kinds.py"),
    ROOT / "noxfile.py",
    *sorted((ROOT / "benchmarks").glob("*.py")),
    ROOT / "benchmarks" / "requirements.txt",
    ROOT / ".ci" / "run",
]


@pytest.mark.parametrize("name", KIND_NAMES)
def test_a_manifest_says_what_the_rest_of_the_repository_reads(name: str) -> None:
    kind = kinds.kind(name)
    manifest = kind.manifest
    assert manifest["title"].strip()
    assert manifest["description"].strip()
    assert kind.packs[0] == "core", "every kind builds on the core pack"
    assert set(kind.packs) <= set(kinds.packs()), f"unknown packs {set(kind.packs)}"
    for backend, extra in (manifest.get("backend_packs") or {}).items():
        assert backend in kind.backends, f"backend_packs names {backend}, not a backend"
        assert set(extra) <= set(kinds.packs()), f"unknown packs {set(extra)}"
    assert manifest["smoke"], "a kind needs at least one smoke request"
    for step in manifest["smoke"]:
        assert step["name"]
        assert step["path"].startswith("/")
        assert step["expect"], f"{step['name']}: a smoke step checks its answer"
        assert ("json" in step) != ("files" in step), f"{step['name']}: a JSON body or files"
    assert set(manifest["tests"]["needs"]) <= NEEDS
    for combination in manifest.get("combinations") or {}:
        assert re.fullmatch(r"[a-z0-9-]+", combination)
    for combination in (manifest.get("container") or {}).get("combinations", []):
        assert combination in kind.combinations, f"container.combinations: {combination}"
    assert (ROOT / manifest["guide"]).is_file()
    if "benchmark" in manifest:  # optional: a kind may come without a suite
        assert (ROOT / "benchmarks" / manifest["benchmark"] / "__init__.py").is_file()
    assert (kind.folder / "README.md.jinja").is_file(), "a kind writes its own README"


def test_every_pack_says_what_it_is() -> None:
    for pack in kinds.packs():
        manifest = yaml.safe_load((kinds.SHARED / pack / "pack.yml").read_text())
        assert manifest["description"].strip(), pack
    assert "core" in kinds.packs()


def test_files_that_are_not_templates_hold_no_jinja() -> None:
    """Every layer file passes through Jinja on its way to the project: one without the
    .jinja suffix must come out as it is, so it may hold no Jinja syntax."""
    folders = [kinds.SHARED / pack for pack in kinds.packs()]
    folders += [kind.folder for kind in kinds.all_kinds()]
    found = [
        f"{folder.name}/{source}"
        for folder in folders
        for source in kinds.layer_files(folder)
        if not source.endswith(".jinja") and JINJA.search((folder / source).read_text())
    ]
    assert found == []


def test_every_part_a_layer_offers_is_one_the_core_assembles() -> None:
    """A part (parts/<name>) only counts where a shared file includes it: a misspelt part
    would silently add nothing."""
    assembled = set()
    for path in (kinds.SHARED / "core").rglob("*.jinja"):
        assembled |= set(re.findall(r'"/parts/([\w.-]+)"', path.read_text()))
        assembled |= set(re.findall(r'parts\("([\w.-]+)"\)', path.read_text()))
        assembled |= set(re.findall(r'last\("([\w.-]+)"\)', path.read_text()))
    folders = [kinds.SHARED / pack for pack in kinds.packs()]
    folders += [kind.folder for kind in kinds.all_kinds()]
    offered = {
        f"{folder.name}/parts/{part.name}": part.name
        for folder in folders
        for part in (folder / "parts").glob("*")
    }
    assert {where for where, name in offered.items() if name not in assembled} == set()


@pytest.mark.parametrize("path", KIND_FREE, ids=lambda p: str(p.relative_to(ROOT)))
def test_shared_parts_and_the_machinery_name_no_kind(path: Path) -> None:
    text = path.read_text(errors="replace")
    for name in KIND_NAMES:
        kind = kinds.kind(name)
        assert name not in text, f"{path.relative_to(ROOT)} names {name}"
        assert kind.package not in text, f"{path.relative_to(ROOT)} names {kind.package}"
    assert not re.search(r"project_kind\s*(==|!=|in\b)|\bllm_service\b", text)
