"""Rendering the templates: the committed gallery in projects/ and answer combinations.

python -m tests.gallery --write     # regenerate projects/ (what `nox -s render` runs)
python -m tests.gallery --check     # fail when projects/ differs from a fresh render
python -m tests.gallery --combinations DIR [--kind KIND]   # every answer combination
python -m tests.gallery --render KIND COMBINATION DIR       # one of them

Every kind (a templates/<kind>/ with a kind.yml) is rendered to projects/<kind>/; its answer
combinations are "defaults" and those its manifest names.
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import sys
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from tests import kinds as manifests

ROOT = Path(__file__).resolve().parents[1]
PROJECTS = ROOT / "projects"


def project_kinds() -> list[str]:
    """Every kind: each folder of templates/ with a kind.yml, in copier.yml's order."""
    return manifests.kind_names()


def combinations(kind_name: str) -> dict[str, dict[str, object]]:
    """A kind's named answer combinations: "defaults", then its manifest's."""
    return manifests.kind(kind_name).combinations


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
    ignored = {"__pycache__", ".pytest_cache", ".ruff_cache", ".hypothesis", "models", ".venv"}
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


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--write", action="store_true")
    action.add_argument("--check", action="store_true")
    action.add_argument("--combinations", type=Path, metavar="DIR")
    action.add_argument("--render", nargs=3, metavar=("KIND", "COMBINATION", "DIR"))
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
    if args.render:
        kind_name, name, dst = args.render
        print(render(kind_name, Path(dst), combinations(kind_name)[name]))
        return 0
    stale = {kind: diff for kind in kinds if (diff := gallery_differences(kind))}
    for kind, diff in stale.items():
        print(f"projects/{kind} differs from a fresh render: {', '.join(diff)}")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
