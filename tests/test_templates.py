"""Every answer combination of every kind renders a clean project that follows its answers.

Each combination's lint and own tests run in its nox session; here are the checks of the
rendering itself, for every kind the manifests declare.
"""

from __future__ import annotations

import compileall
import re
import tomllib
from fnmatch import fnmatch
from pathlib import Path

import pytest
import yaml
from copier import run_copy

from tests import kinds
from tests.gallery import cases, combinations, project_kinds, render, template_source

# "<kind>/<combination>" for every kind: the keys of the `rendered` fixture.
COMBOS = [f"{kind}/{name}" for kind, name in cases()]
JINJA_LEFTOVER = re.compile(r"\{\{|\{%|%\}|\{#|#\}")  # "}}" alone is JSON, not Jinja
# Files whose output legitimately holds "{{ ... }}" for another template engine: Helm's
# chart templates (the vendored subcharts' too), Prometheus alert annotations
# ({{ $labels.job }}, also shipped in the chart's files/) and Grafana legends ({{route}}).
# Jinja statements and comments ({% %}, {# #}) are still forbidden there.
OTHER_TEMPLATE_ENGINES = (
    "deploy/helm/*/templates/*",
    "deploy/helm/*/charts/*/templates/*",
    "deploy/helm/*/files/alerts.rules.yml",
    "observability/alerts.rules.yml",
    "observability/dashboards/*.json",
)
JINJA_STATEMENT_LEFTOVER = re.compile(r"\{%|%\}|\{#|#\}")
# The defaults copier.yml gives the switches the combinations change.
DEFAULT_ANSWERS: dict[str, object] = {
    "tracing": True,
    "api_key_auth": False,
    "default_device": "cpu",
    "python_version": "3.11",
}


def files_of(project: Path) -> list[Path]:
    return [p for p in project.rglob("*") if p.is_file() and "__pycache__" not in p.parts]


def answers_of(combo: str) -> dict[str, object]:
    kind, name = combo.split("/")
    backends = kinds.kind(kind).get("backends")
    backend = {"inference_backend": backends[0]} if backends else {}
    return {**DEFAULT_ANSWERS, **backend, **combinations(kind)[name]}


@pytest.mark.parametrize("combo", COMBOS)
def test_no_template_syntax_is_left_in_names_or_text(rendered: dict[str, Path], combo: str) -> None:
    for path in files_of(rendered[combo]):
        relative = path.relative_to(rendered[combo])
        assert not JINJA_LEFTOVER.search(str(relative)), relative
        assert not path.name.endswith(".jinja"), relative
        text = path.read_text(encoding="utf-8")
        pattern = (
            JINJA_STATEMENT_LEFTOVER
            if any(fnmatch(relative.as_posix(), glob) for glob in OTHER_TEMPLATE_ENGINES)
            else JINJA_LEFTOVER
        )
        leftovers = [line for line in text.splitlines() if pattern.search(line)]
        assert not leftovers, f"{relative}: {leftovers[:3]}"
        if not text:
            continue  # an empty file (a package's __init__.py) needs no final newline
        assert text.endswith("\n"), f"{relative}: no newline at the end"
        assert not text.endswith("\n\n"), f"{relative}: blank lines at the end"


@pytest.mark.parametrize("combo", COMBOS)
def test_python_compiles_and_yaml_and_json_parse(rendered: dict[str, Path], combo: str) -> None:
    project = rendered[combo]
    assert compileall.compile_dir(project, quiet=1, force=True)
    for path in files_of(project):
        relative = path.relative_to(project).as_posix()
        if any(fnmatch(relative, glob) for glob in OTHER_TEMPLATE_ENGINES[:2]):
            continue  # Helm templates are YAML only once Helm renders them
        if path.suffix in {".yml", ".yaml"}:
            list(yaml.safe_load_all(path.read_text()))
        elif path.suffix == ".json":
            yaml.safe_load(path.read_text())  # JSON is YAML


@pytest.mark.parametrize("combo", COMBOS)
def test_files_follow_the_answers(rendered: dict[str, Path], combo: str) -> None:
    """What every kind shares: the recorded answers, auth, tracing and the Python version."""
    kind, name = combo.split("/")
    answers = answers_of(combo)
    project = rendered[combo]
    package = project / "src" / kinds.kind(kind).package
    assert (package / "app.py").is_file()
    assert (package / "auth.py").exists() == answers["api_key_auth"]
    assert (package / "tracing.py").exists() == answers["tracing"]
    assert (project / "tests" / "e2e" / "test_tracing.py").exists() == answers["tracing"]
    recorded = yaml.safe_load((project / ".copier-answers.yml").read_text())
    assert recorded["project_kind"] == kind
    for key, value in combinations(kind)[name].items():
        assert recorded[key] == value
    assert not {"kind", "layers", "project_files"} & set(recorded)  # derived, never recorded
    metadata = tomllib.loads((project / "pyproject.toml").read_text())["project"]
    sdk = any(dep.startswith("opentelemetry-sdk") for dep in metadata["dependencies"])
    assert sdk == answers["tracing"]
    assert metadata["requires-python"] == f">={answers['python_version']}"


@pytest.mark.parametrize("combo", COMBOS)
def test_every_layer_file_whose_name_holds_is_rendered(
    rendered: dict[str, Path], combo: str
) -> None:
    """Each file of the kind's packs and of the kind itself reaches the project, under its
    rendered name, unless a condition in its name says otherwise."""
    kind_name, _ = combo.split("/")
    kind = kinds.kind(kind_name)
    project = rendered[combo]
    answers = answers_of(combo)
    names = {
        "{{ package_name }}": kind.package,
        "{{ project_name }}": kind.name,
        "{{ _copier_conf.answers_file }}": ".copier-answers.yml",
    }
    for folder in kinds.layer_folders(kind, answers):
        for source in kinds.layer_files(folder):
            path = kinds.rendered_path(source, names, answers)
            if path is not None:
                assert (project / path).is_file(), f"{folder.name}/{source} did not reach {path}"


def test_the_kind_choices_are_the_manifests_in_order(tmp_path: Path) -> None:
    with template_source() as src, pytest.raises(ValueError, match="Invalid choice") as error:
        run_copy(str(src), tmp_path, data={"project_kind": "no-such-kind"}, defaults=True)
    offered = re.search(r"is not in (\[.*\])", str(error.value))
    assert offered
    assert yaml.safe_load(offered.group(1)) == project_kinds()


@pytest.mark.parametrize(
    ("answers", "message"),
    [
        ({"project_name": "Bad Name"}, "project_name must be lowercase"),
        ({"project_name": "-dash-first"}, "project_name must be lowercase"),
        ({"package_name": "1st_service"}, "package_name must be a lowercase Python identifier"),
        ({"package_name": "my-service"}, "package_name must be a lowercase Python identifier"),
        ({"package_name": "fastapi"}, "would shadow a module"),
        ({"author_email": "not-an-email"}, "author_email must look like"),
        ({"description": "   "}, "description must not be empty"),
    ],
)
@pytest.mark.parametrize("kind", project_kinds())
def test_bad_answers_are_rejected_with_a_clear_message(
    tmp_path: Path, kind: str, answers: dict[str, str], message: str
) -> None:
    with template_source() as src, pytest.raises(ValueError, match=message):
        run_copy(
            str(src),
            tmp_path / "out",
            data={"project_kind": kind, **answers},
            defaults=True,
            unsafe=True,
            quiet=True,
        )


@pytest.mark.parametrize("kind", project_kinds())
def test_a_package_named_like_a_module_the_kind_imports_is_refused(
    tmp_path: Path, kind: str
) -> None:
    # A package name is lowercase: only a module of that spelling could be shadowed.
    for module in [m for m in kinds.kind(kind).get("imports", []) if m.islower()]:
        with template_source() as src, pytest.raises(ValueError, match="would shadow a module"):
            run_copy(
                str(src),
                tmp_path / module,
                data={"project_kind": kind, "package_name": module},
                defaults=True,
                unsafe=True,
                quiet=True,
            )


@pytest.mark.parametrize("kind", project_kinds())
def test_names_flow_from_the_answers(tmp_path: Path, kind: str) -> None:
    project = render(kind, tmp_path / "p", {"project_name": "shop-vision", "tracing": False})
    assert (project / "src" / "shop_vision" / "app.py").is_file()
    assert 'name = "shop-vision"' in (project / "pyproject.toml").read_text()
    assert (project / "deploy" / "helm" / "shop-vision" / "Chart.yaml").is_file()
    code = "\n".join(p.read_text() for p in (project / "src").rglob("*.py"))
    assert "from shop_vision.settings import Settings" in code
    # The kind's default package is named nowhere as a module: not imported, not run with
    # -m, not a dotted path (the word itself may be plain prose in a docstring).
    package = re.escape(kinds.kind(kind).package)
    hard_coded = re.compile(rf"(?:from|import|-m)\s+{package}\b|\b{package}\.\w")
    assert not hard_coded.findall(code), hard_coded.findall(code)


def test_the_default_description_is_the_manifests(tmp_path: Path) -> None:
    for kind in kinds.all_kinds():
        project = render(kind.name, tmp_path / kind.name)
        pyproject = tomllib.loads((project / "pyproject.toml").read_text())
        assert pyproject["project"]["description"] == kind.manifest["description"]
