"""Parsing and chunking: clean text by section, chunks sized in the embedder's tokens."""

from __future__ import annotations

import itertools

import pytest

from rag_qa.chunking import Chunker
from rag_qa.documents import (
    EmptyDocument,
    InvalidFilename,
    ParsedDocument,
    Section,
    UnparsableDocument,
    clean_filename,
    parse,
)
from rag_qa.errors import UnsupportedMediaType
from tests.pdf import make_pdf

MARKDOWN = b"""# Field Manual

Intro line.

## Setup

Install the tool.

```
# not a heading
```

### On Linux

Use the [package manager](https://example.com).
"""

HTML = b"""<!doctype html><html><head><title>Harbour Guide</title>
<style>p { color: red }</style><script>var tracking = "secret";</script></head>
<body><nav>Home | About</nav><h1>Harbour</h1><p>Boats leave at&nbsp;nine.</p>
<h2>Tickets</h2><p>Tickets cost 4 euros.</p><footer>Copyright notice</footer></body></html>
"""


def test_markdown_sections_keep_their_heading_path() -> None:
    document = parse("manual.md", MARKDOWN)
    assert document.title == "Field Manual"
    assert document.content_type == "text/markdown"
    by_text = {s.text: s.headings for s in document.sections}
    assert by_text["Intro line."] == ("Field Manual",)
    assert by_text["Install the tool.\n\n# not a heading"] == ("Field Manual", "Setup")
    assert by_text["Use the package manager."] == ("Field Manual", "Setup", "On Linux")


def test_html_keeps_visible_text_by_heading_and_drops_page_chrome() -> None:
    document = parse("guide.html", HTML)
    assert document.title == "Harbour Guide"
    text = document.text
    assert "Boats leave at nine." in text
    for noise in ("color: red", "tracking", "Home | About", "Copyright"):
        assert noise not in text
    assert Section(("Harbour", "Tickets"), "Tickets cost 4 euros.") in document.sections


def test_plain_text_is_titled_by_its_file_name() -> None:
    document = parse(
        "notes.txt", "Caf\u00e9 opens at 8.\r\n\r\n\r\n\r\nClosed on Mondays.".encode()
    )
    assert document.title == "notes"
    assert document.sections[0].text == "Caf\u00e9 opens at 8.\n\nClosed on Mondays."


def test_a_real_pdf_is_read_page_by_page() -> None:
    document = parse("report.pdf", make_pdf(["The turbine spins at 1200 rpm.", "Page two."]))
    assert document.content_type == "application/pdf"
    assert "turbine spins at 1200 rpm" in document.sections[0].text
    assert "Page two" in document.sections[1].text


@pytest.mark.parametrize(
    ("name", "data", "error", "reason"),
    [
        ("fake.pdf", b"this is plain text, not a PDF", UnparsableDocument, "not a PDF"),
        ("broken.pdf", b"%PDF-1.4\n garbage without objects", UnparsableDocument, "readable"),
        ("latin1.txt", "caf\u00e9".encode("latin-1"), UnparsableDocument, "UTF-8"),
        ("binary.md", b"\x89PNG\r\n\x1a\n\x00\x00", UnparsableDocument, "binary"),
        ("blank.md", b"  \n\n\t\n", EmptyDocument, "no text"),
        ("chrome.html", b"<nav>menu</nav><script>x()</script>", EmptyDocument, "no text"),
        ("image.png", b"\x89PNG", UnsupportedMediaType, ".pdf"),
        ("archive.tar.gz", b"x", UnsupportedMediaType, ".md"),
    ],
)
def test_bad_documents_are_refused_with_a_reason(
    name: str, data: bytes, error: type[Exception], reason: str
) -> None:
    with pytest.raises(error, match=reason):
        parse(name, data)


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("../../etc/passwd.txt", "passwd.txt"),
        ("..\\..\\windows\\system.ini.md", "system.ini.md"),
        ("/abs/path/notes.md", "notes.md"),
        ("re\u0301sume\u0301.txt", "r\u00e9sum\u00e9.txt"),  # NFC
        ("invoice\u202etxt.md", "invoicetxt.md"),  # right-to-left override removed
        ("nul\x00byte.txt", "nulbyte.txt"),
        ("  many   spaces .md", "many spaces .md"),
        ("x" * 300 + ".md", "x" * 252 + ".md"),
    ],
)
def test_file_names_are_cleaned(raw: str, clean: str) -> None:
    assert clean_filename(raw) == clean


@pytest.mark.parametrize("raw", ["", "..", "../", "dir/", "\u202e\u200f"])
def test_unusable_file_names_are_refused(raw: str) -> None:
    with pytest.raises(InvalidFilename):
        clean_filename(raw)


def words(texts: list[str] | tuple[str, ...]) -> list[int]:
    """A stand-in token count for chunking tests: one token per word."""
    return [len(text.split()) for text in texts]


def test_chunks_fit_the_budget_overlap_and_keep_their_headings() -> None:
    sentences = [f"Sentence number {i} has exactly seven words." for i in range(40)]
    document = ParsedDocument(
        "a.md", "text/markdown", "Doc", (Section(("Part",), " ".join(sentences)),)
    )
    chunks = Chunker(words, size=40, overlap=10).split(document)
    assert len(chunks) > 5
    for chunk in chunks:
        assert len(chunk.embedding_text("Doc").split()) <= 40
        assert chunk.headings == ("Part",)
        assert chunk.embedding_text("Doc").startswith("Doc > Part\n")
    for before, after in itertools.pairwise(chunks):
        last = before.text.split(". ")[-1]
        assert after.text.startswith(last.rstrip(".")), "consecutive chunks share a sentence"
    joined = " ".join(c.text for c in chunks)
    assert all(s in joined for s in sentences), "no sentence is lost"
    assert [c.position for c in chunks] == list(range(len(chunks)))


def test_a_sentence_longer_than_a_chunk_is_cut_at_words() -> None:
    long = " ".join(f"w{i}" for i in range(95))
    document = ParsedDocument("a.txt", "text/plain", "", (Section((), long),))
    chunks = Chunker(words, size=40, overlap=0).split(document)
    assert [len(c.text.split()) for c in chunks] == [39, 39, 17]
    assert " ".join(c.text for c in chunks) == long
