"""Checks that keep the guide in docs/ honest.

- every page in mkdocs.yml's nav exists, and every page under docs/ is in the nav;
- every relative Markdown link resolves to a file under docs/ (and to a heading, when it
  names an anchor);
- every repository path the guide names in backticks exists;
- links never leave docs/: repository files are named in backticks, not linked.

Only the standard library and PyYAML are used, so the checks run without building the
site.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
DOCS_DIR = REPO_ROOT / "docs"
MKDOCS_YML = REPO_ROOT / "mkdocs.yml"

# Backticked tokens that start with one of these name a file or folder of this repository.
REPO_PATH_PREFIXES = (
    "templates/",
    "projects/",
    "tests/",
    "benchmarks/",
    "docs/",
    ".ci/",
)
REPO_TOP_LEVEL_FILES = ("noxfile.py", "copier.yml", "pyproject.toml", "README.md", "mkdocs.yml")

FENCE_RE = re.compile(r"^(\s*)(`{3,}|~{3,})")
INLINE_CODE_RE = re.compile(r"(?<!`)`([^`\n]+)`(?!`)")
LINK_RE = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
IMAGE_RE = re.compile(r"!\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
HEADING_RE = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
ATTR_ID_RE = re.compile(r"\{[^}]*#([\w-]+)[^}]*\}\s*$")
PLACEHOLDER_RE = re.compile(r"[<>{}*$]|\.\.\.")


class _MkdocsLoader(yaml.SafeLoader):
    """A safe loader that accepts mkdocs.yml's !!python/name tags without running them."""


def _ignore_python_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> str:
    return suffix


_MkdocsLoader.add_multi_constructor("tag:yaml.org,2002:python/", _ignore_python_tag)
_MkdocsLoader.add_multi_constructor("!", _ignore_python_tag)


def load_mkdocs_config(path: Path = MKDOCS_YML) -> dict:
    return yaml.load(path.read_text(encoding="utf-8"), Loader=_MkdocsLoader)


def nav_pages(nav: object) -> list[str]:
    """Every Markdown page named anywhere in a mkdocs nav tree."""
    pages: list[str] = []
    if isinstance(nav, str):
        if not re.match(r"^[a-z]+://", nav):
            pages.append(nav)
    elif isinstance(nav, list):
        for item in nav:
            pages.extend(nav_pages(item))
    elif isinstance(nav, dict):
        for value in nav.values():
            pages.extend(nav_pages(value))
    return pages


def doc_files(docs_dir: Path = DOCS_DIR) -> list[Path]:
    return sorted(docs_dir.rglob("*.md"))


def strip_fenced_code(text: str) -> str:
    """Blank out fenced code blocks, keeping line numbers, so only prose is scanned."""
    out: list[str] = []
    fence: str | None = None
    for line in text.splitlines():
        match = FENCE_RE.match(line)
        if fence is None and match:
            fence = match.group(2)[0] * 3
            out.append("")
        elif fence is not None and line.strip().startswith(fence):
            fence = None
            out.append("")
        elif fence is not None:
            out.append("")
        else:
            out.append(line)
    return "\n".join(out)


def slugify(title: str) -> str:
    """The heading id Python-Markdown's toc extension gives a title (its default slugify)."""
    title = re.sub(r"`([^`]*)`", r"\1", title)
    title = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", title)
    title = re.sub(r"<[^>]+>", "", title)
    value = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode("ascii")
    value = re.sub(r"[^\w\s-]", "", value).strip().lower()
    return re.sub(r"[-\s]+", "-", value)


def heading_ids(text: str) -> set[str]:
    ids: set[str] = set()
    seen: dict[str, int] = {}
    for line in strip_fenced_code(text).splitlines():
        match = HEADING_RE.match(line)
        if not match:
            continue
        title = match.group(2)
        explicit = ATTR_ID_RE.search(title)
        if explicit:
            ids.add(explicit.group(1))
            continue
        slug = slugify(title)
        if slug in seen:
            seen[slug] += 1
            slug = f"{slug}_{seen[slug]}"
        else:
            seen[slug] = 0
        ids.add(slug)
    # Ids set by attr_list on other elements, e.g. "{ #my-id }".
    ids.update(re.findall(r"\{[^}]*#([\w-]+)[^}]*\}", text))
    return ids


def broken_links(page: Path, text: str, docs_dir: Path = DOCS_DIR) -> list[str]:
    """Relative links in one page that do not resolve inside docs/."""
    problems: list[str] = []
    prose = strip_fenced_code(text)
    prose = INLINE_CODE_RE.sub("", prose)
    targets = LINK_RE.findall(prose) + IMAGE_RE.findall(prose)
    for target in targets:
        if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        path_part, _, anchor = target.partition("#")
        if not path_part:
            resolved = page
        else:
            resolved = (page.parent / path_part).resolve()
            try:
                resolved.relative_to(docs_dir.resolve())
            except ValueError:
                problems.append(f"{target} leaves docs/ (name repository files in backticks)")
                continue
            if resolved.is_dir():
                resolved = resolved / "index.md"
            if not resolved.is_file():
                problems.append(f"{target} does not exist")
                continue
        if (
            anchor
            and resolved.suffix == ".md"
            and anchor not in heading_ids(resolved.read_text(encoding="utf-8"))
        ):
            problems.append(f"{target} names a heading that does not exist")
    return problems


def repo_paths(text: str) -> list[str]:
    """Backticked tokens in prose that name a repository path (placeholders skipped)."""
    found: list[str] = []
    for token in INLINE_CODE_RE.findall(strip_fenced_code(text)):
        token = token.strip()
        if " " in token or PLACEHOLDER_RE.search(token):
            continue
        if token.startswith(REPO_PATH_PREFIXES) or token in REPO_TOP_LEVEL_FILES:
            found.append(token)
    return found


def missing_repo_paths(text: str, repo_root: Path = REPO_ROOT) -> list[str]:
    """Repository paths named in the text that do not exist under repo_root."""
    missing = []
    for token in repo_paths(text):
        candidate = repo_root / token.split("::")[0].rstrip("/")
        if not candidate.exists():
            missing.append(token)
    return sorted(set(missing))


# --- the checks themselves --------------------------------------------------------------


def test_every_nav_page_exists_and_every_page_is_in_nav() -> None:
    config = load_mkdocs_config()
    listed = nav_pages(config["nav"])
    missing = [page for page in listed if not (DOCS_DIR / page).is_file()]
    assert not missing, f"pages in mkdocs.yml nav but not in docs/: {missing}"
    on_disk = {path.relative_to(DOCS_DIR).as_posix() for path in doc_files()}
    unlisted = sorted(on_disk - set(listed))
    assert not unlisted, f"pages in docs/ missing from mkdocs.yml nav: {unlisted}"
    duplicated = sorted({page for page in listed if listed.count(page) > 1})
    assert not duplicated, f"pages listed twice in nav: {duplicated}"


def test_every_relative_link_resolves() -> None:
    problems = []
    for page in doc_files():
        for problem in broken_links(page, page.read_text(encoding="utf-8")):
            problems.append(f"{page.relative_to(REPO_ROOT)}: {problem}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("page", doc_files(), ids=lambda p: p.relative_to(DOCS_DIR).as_posix())
def test_every_cited_repository_path_exists(page: Path) -> None:
    missing = missing_repo_paths(page.read_text(encoding="utf-8"))
    assert not missing, f"{page.relative_to(REPO_ROOT)} cites paths that do not exist: {missing}"


def test_every_page_has_a_title_and_real_content() -> None:
    for page in doc_files():
        text = page.read_text(encoding="utf-8")
        assert text.lstrip().startswith("# "), f"{page} must open with a '# ' title"
        words = len(strip_fenced_code(text).split())
        assert words >= 250, f"{page} has only {words} words of prose"


# --- the checker is proven to fail on bad input ------------------------------------------


def test_path_checker_reports_a_path_that_does_not_exist(tmp_path: Path) -> None:
    (tmp_path / "projects").mkdir()
    (tmp_path / "copier.yml").write_text("")
    text = (
        "See `projects/does-not-exist/x.py` and `copier.yml`.\n"
        "Placeholders are skipped: `templates/<kind>/` and `projects/{{ name }}/`.\n"
        "```\n`projects/inside-a-fence-is-ignored.py`\n```\n"
    )
    assert missing_repo_paths(text, repo_root=tmp_path) == ["projects/does-not-exist/x.py"]


def test_link_checker_reports_missing_files_anchors_and_escapes(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("# A\n\n## Real heading\n")
    page = docs / "b.md"
    text = (
        "[ok](a.md) [ok anchor](a.md#real-heading) [external](https://example.com)\n"
        "[gone](missing.md) [bad anchor](a.md#no-such-heading) [escape](../noxfile.py)\n"
    )
    problems = broken_links(page, text, docs_dir=docs)
    assert len(problems) == 3
    assert any("missing.md" in p for p in problems)
    assert any("no-such-heading" in p for p in problems)
    assert any("leaves docs/" in p for p in problems)


def test_slugify_matches_markdown_toc_ids() -> None:
    assert slugify("Scaling and load management") == "scaling-and-load-management"
    assert slugify("What `MicroBatcher` does") == "what-microbatcher-does"
    assert slugify("CPU, GPU & edge: targets") == "cpu-gpu-edge-targets"
