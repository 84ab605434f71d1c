"""Uploaded files to clean text in sections: plain text, Markdown, HTML and PDF.

Each section keeps the headings above it (`("Install", "On Linux")`), so a chunk cut from
the middle of a long section still says what it is about.
"""

from __future__ import annotations

import io
import re
import unicodedata
from dataclasses import dataclass
from html.parser import HTMLParser
from http import HTTPStatus
from pathlib import PurePosixPath
from typing import ClassVar

from pypdf import PdfReader

from rag_qa.errors import ServiceError, UnsupportedMediaType

# Suffix to content type: the only types ingestion accepts.
CONTENT_TYPES = {
    ".txt": "text/plain",
    ".text": "text/plain",
    ".md": "text/markdown",
    ".markdown": "text/markdown",
    ".html": "text/html",
    ".htm": "text/html",
    ".pdf": "application/pdf",
}
MAX_FILENAME_CHARS = 255


class UnparsableDocument(ServiceError):
    status_code = HTTPStatus.UNPROCESSABLE_ENTITY
    code = "unparsable_document"


class EmptyDocument(ServiceError):
    status_code = HTTPStatus.UNPROCESSABLE_ENTITY
    code = "empty_document"


class InvalidFilename(ServiceError):
    status_code = HTTPStatus.UNPROCESSABLE_ENTITY
    code = "invalid_filename"


@dataclass(frozen=True)
class Section:
    headings: tuple[str, ...]
    text: str


@dataclass(frozen=True)
class ParsedDocument:
    filename: str
    content_type: str
    title: str
    sections: tuple[Section, ...]

    @property
    def text(self) -> str:
        """Everything, headings included: what identifies the document's content."""
        parts = []
        for section in self.sections:
            parts.extend(section.headings[-1:])
            parts.append(section.text)
        return "\n".join(parts)


def clean_filename(raw: str) -> str:
    """The name to store: the last path component, NFC, without control or format
    characters (NUL, bidi overrides), at most 255 characters. The name is only ever
    metadata - nothing is written under it - but lists and logs show it."""
    name = unicodedata.normalize("NFC", raw).replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C")
    name = " ".join(name.split())
    if name in {"", ".", ".."}:
        raise InvalidFilename(f"{raw!r} is not a usable file name")
    if len(name) > MAX_FILENAME_CHARS:
        stem, suffix = _split_suffix(name)
        name = stem[: MAX_FILENAME_CHARS - len(suffix)] + suffix
    return name


def content_type_of(filename: str) -> str:
    _, suffix = _split_suffix(filename)
    content_type = CONTENT_TYPES.get(suffix.lower())
    if content_type is None:
        accepted = ", ".join(sorted(set(CONTENT_TYPES)))
        raise UnsupportedMediaType(
            f"{filename!r}: only {accepted} files can be ingested",
            details={"accepted": sorted(set(CONTENT_TYPES.values()))},
        )
    return content_type


def parse(filename: str, data: bytes) -> ParsedDocument:
    """`filename` (already cleaned) and its bytes to a document; 415 or 422 when not."""
    content_type = content_type_of(filename)
    stem, _ = _split_suffix(filename)
    if content_type == "application/pdf":
        title, sections = _parse_pdf(filename, data)
    else:
        text = _decode(filename, data)
        if content_type == "text/html":
            title, sections = _parse_html(text)
        elif content_type == "text/markdown":
            title, sections = _parse_markdown(text)
        else:
            title, sections = "", [Section((), text)]
    cleaned = []
    for section in sections:
        headings = tuple(h for h in map(clean_text, section.headings) if h)
        text = clean_text(section.text)
        if text:
            cleaned.append(Section(headings, text))
    if not cleaned:
        raise EmptyDocument(f"{filename!r} has no text to index")
    return ParsedDocument(filename, content_type, clean_text(title) or stem, tuple(cleaned))


def clean_text(text: str) -> str:
    """NFC, no control characters but newlines, single spaces, at most one blank line."""
    text = unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n")
    text = "".join(ch if ch in "\n\t" or unicodedata.category(ch)[0] != "C" else " " for ch in text)
    lines = [" ".join(line.split()) for line in text.split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def _split_suffix(name: str) -> tuple[str, str]:
    suffix = PurePosixPath(name).suffix
    return name[: len(name) - len(suffix)], suffix


def _decode(filename: str, data: bytes) -> str:
    if b"\x00" in data:
        raise UnparsableDocument(f"{filename!r} is binary, not text")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UnparsableDocument(
            f"{filename!r} is not UTF-8 text (byte {exc.start}): convert it to UTF-8"
        ) from None


_MD_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_MD_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")


def _parse_markdown(text: str) -> tuple[str, list[Section]]:
    title = ""
    stack: list[tuple[int, str]] = []
    sections: list[Section] = []
    lines: list[str] = []
    fenced = False

    def flush() -> None:
        if lines:
            sections.append(Section(tuple(h for _, h in stack), "\n".join(lines)))
            lines.clear()

    for line in text.splitlines():
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
            continue
        match = None if fenced else _MD_HEADING.match(line)
        if match is None:
            lines.append(_MD_LINK.sub(r"\1", line))
            continue
        flush()
        level, heading = len(match.group(1)), _MD_LINK.sub(r"\1", match.group(2))
        if level == 1 and not title:
            title = heading
        while stack and stack[-1][0] >= level:
            stack.pop()
        stack.append((level, heading))
    flush()
    return title, sections


class _HtmlText(HTMLParser):
    """Visible text by heading; scripts, styles, navigation and page chrome dropped."""

    SKIP = frozenset({"script", "style", "noscript", "template", "svg", "nav", "footer", "head"})
    BLOCKS = frozenset(
        {"p", "div", "li", "br", "tr", "section", "article", "blockquote", "pre", "dd", "dt"}
    )
    HEADINGS: ClassVar[dict[str, int]] = {f"h{level}": level for level in range(1, 7)}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.title = ""
        self.sections: list[Section] = []
        self._stack: list[tuple[int, str]] = []
        self._parts: list[str] = []
        self._skipping: list[str] = []
        self._heading: tuple[int, list[str]] | None = None
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title":
            self._in_title = True
        elif tag in self.SKIP:
            self._skipping.append(tag)
        elif not self._skipping and tag in self.HEADINGS:
            self._flush()
            self._heading = (self.HEADINGS[tag], [])
        elif tag in self.BLOCKS:
            self._parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        elif self._skipping and tag == self._skipping[-1]:
            self._skipping.pop()
        elif self._heading is not None and tag in self.HEADINGS:
            level, words = self._heading
            self._heading = None
            while self._stack and self._stack[-1][0] >= level:
                self._stack.pop()
            self._stack.append((level, " ".join("".join(words).split())))
        elif tag in self.BLOCKS:
            self._parts.append("\n")

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data
        elif self._skipping:
            return
        elif self._heading is not None:
            self._heading[1].append(data)
        else:
            self._parts.append(data)

    def close(self) -> None:
        super().close()
        self._flush()

    def _flush(self) -> None:
        text = "".join(self._parts).strip()
        if text:
            self.sections.append(Section(tuple(h for _, h in self._stack), text))
        self._parts.clear()


def _parse_html(text: str) -> tuple[str, list[Section]]:
    parser = _HtmlText()
    parser.feed(text)
    parser.close()
    title = parser.title.strip()
    if not title:
        title = next((s.headings[0] for s in parser.sections if s.headings), "")
    return title, parser.sections


def _parse_pdf(filename: str, data: bytes) -> tuple[str, list[Section]]:
    if not data.lstrip()[:5] == b"%PDF-":
        raise UnparsableDocument(f"{filename!r} is named .pdf but is not a PDF file")
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            raise UnparsableDocument(f"{filename!r} is encrypted; upload it decrypted")
        pages = [page.extract_text() or "" for page in reader.pages]
        title = str((reader.metadata or {}).get("/Title") or "")
    except UnparsableDocument:
        raise
    except Exception as exc:  # pypdf raises many types on a malformed file
        raise UnparsableDocument(f"{filename!r} is not a readable PDF: {exc}") from None
    return title, [Section((), page) for page in pages]
