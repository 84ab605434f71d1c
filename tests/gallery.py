"""Rendering the templates: the committed gallery in projects/ and answer combinations.

python tests/gallery.py --write     # regenerate projects/ (what `nox -s render` runs)
python tests/gallery.py --check     # fail when projects/ differs from a fresh render
python tests/gallery.py --combinations DIR [--kind KIND]   # every answer combination

Every kind (a templates/<kind>/ with a kind.yml) is rendered to projects/<kind>/; its answer
combinations are "defaults" and those its manifest names.
"""

from __future__ import annotations

import argparse
import filecmp
import re
import shutil
import sys
import tempfile
import tomllib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from tests.kinds import kind, kind_names

ROOT = Path(__file__).resolve().parents[1]
PROJECTS = ROOT / "projects"

def project_kinds() -> list[str]:
    """Every kind: each folder of templates/ with a kind.yml, in copier.yml's order."""
    return kind_names()


def combinations(kind_name: str) -> dict[str, dict[str, object]]:
    """A kind's named answer combinations: "defaults", then its manifest's."""
    return kind(kind_name).combinations


def cases(kinds: list[str] | None = None) -> list[tuple[str, str]]:
    """(kind, combination name) for every combination of every kind."""
    return [(kind, name) for kind in kinds or project_kinds() for name in combinations(kind)]


@contextmanager
def template_source() -> Iterator[Path]:
    """The template as a plain folder (no VCS), so renders do not depend on git state."""
    with tempfile.TemporaryDirectory(prefix="template-") as tmp:
        src = Path(tmp) / "src"
        src.mkdir()
        shutil.copy2(ROOT / "copier.yml", src / "copier.yml")
        shutil.copytree(
            ROOT / "templates", src / "templates", ignore=shutil.ignore_patterns("__pycache__")
        )
        yield src


def render(
    kind: str, dst: Path, answers: Mapping[str, object] | None = None, *, gallery: bool = False
) -> Path:
    from copier import run_copy

    with template_source() as src:
        data = {"project_kind": kind, **(answers or {})}
        if gallery:
            data["gallery"] = True
        run_copy(str(src), dst, data=data, defaults=True, unsafe=True, quiet=True, overwrite=True)
    return dst


def write_gallery(kinds: list[str] | None = None) -> None:
    for kind in kinds or project_kinds():
        target = PROJECTS / kind
        if target.exists():
            shutil.rmtree(target)
        render(kind, target, gallery=True)
        print(f"rendered projects/{kind}")


def gallery_differences(kind: str) -> list[str]:
    """Paths that differ between projects/<kind> and a fresh render; empty when equal."""
    if not (PROJECTS / kind).is_dir():
        return [f"projects/{kind} (missing: run `nox -s render`)"]
    with tempfile.TemporaryDirectory() as tmp:
        fresh = render(kind, Path(tmp) / kind, gallery=True)
        return _compare(fresh, PROJECTS / kind)


def _compare(left: Path, right: Path, prefix: str = "") -> list[str]:
    ignored = {"__pycache__", ".pytest_cache", ".ruff_cache", "models", ".venv"}
    cmp = filecmp.dircmp(left, right, ignore=list(ignored))
    differences = [f"{prefix}{name} (only in fresh render)" for name in cmp.left_only]
    differences += [f"{prefix}{name} (only in projects/)" for name in cmp.right_only]
    _, mismatch, errors = filecmp.cmpfiles(left, right, cmp.common_files, shallow=False)
    differences += [f"{prefix}{name} (content differs)" for name in mismatch + errors]
    for name in cmp.common_dirs:
        differences += _compare(left / name, right / name, f"{prefix}{name}/")
    return differences


def render_combinations(root: Path, kinds: list[str] | None = None) -> list[Path]:
    """Render every combination of the kinds (default: all) to root/<kind>/<combination>."""
    return [
        render(kind, root / kind / name, combinations(kind)[name]) for kind, name in cases(kinds)
    ]


# When one environment holds every kind's dependencies: nvidia-pytriton (the Triton back
# end) keeps numpy below 2, and pyarrow 22 and later (LanceDB's) refuse that numpy at
# import. Each project on its own resolves fine.
SHARED_ENVIRONMENT_CONSTRAINTS = {"pyarrow": "pyarrow<22"}


def requirements(kinds: list[str] | None = None) -> list[str]:
    """The union of every combination's runtime and test dependencies."""
    found: set[str] = set()
    with tempfile.TemporaryDirectory() as tmp:
        for project in render_combinations(Path(tmp), kinds):
            metadata = tomllib.loads((project / "pyproject.toml").read_text())["project"]
            found.update(metadata["dependencies"], metadata["optional-dependencies"]["test"])
    for package, constraint in SHARED_ENVIRONMENT_CONSTRAINTS.items():
        if any(re.match(rf"{package}\b", requirement) for requirement in found):
            found.add(constraint)
    return sorted(found)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--write", action="store_true")
    action.add_argument("--check", action="store_true")
    action.add_argument("--combinations", type=Path, metavar="DIR")
    action.add_argument("--requirements", action="store_true")
    action.add_argument("--kinds", action="store_true", help="the kinds with a template")
    parser.add_argument(
        "--kind", action="append", dest="only", metavar="KIND", help="only this kind (repeatable)"
    )
    args = parser.parse_args()
    kinds = args.only or project_kinds()
    unknown = sorted(set(kinds) - set(project_kinds()))
    if unknown:
        parser.error(f"no template for {unknown}; kinds with one: {project_kinds()}")
    if args.kinds:
        print("\n".join(kinds))
        return 0
    if args.write:
        write_gallery(kinds)
        return 0
    if args.combinations:
        for project in render_combinations(args.combinations, kinds):
            print(project)
        return 0
    if args.requirements:
        print("\n".join(requirements(kinds)))
        return 0
    stale = {kind: diff for kind in kinds if (diff := gallery_differences(kind))}
    for kind, diff in stale.items():
        print(f"projects/{kind} differs from a fresh render: {', '.join(diff)}")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
