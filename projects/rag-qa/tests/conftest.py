"""Fixtures: the demo LLM, prepared once per run, and real services around it.

Every service runs the real embedder (all-MiniLM-L6-v2 from its package), a real store
in a temporary folder (LanceDB; Milvus Lite where a test says so) and the embedded engine
on the demo SmolLM2 model.
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from rag_qa.app import create_app
from rag_qa.model_files import prepare_model
from rag_qa.settings import Settings
from tests.api_keys import HEADERS, SETTINGS
from tests.live_server import serve
from tests.workload import Workload

PROJECT = Path(__file__).resolve().parents[1]
CORPUS = PROJECT / "eval" / "corpus"


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The converted demo model; TEST_MODEL_DIR keeps it between runs."""
    target = os.environ.get("TEST_MODEL_DIR")
    path = Path(target) if target else tmp_path_factory.mktemp("model") / "smollm2"
    return prepare_model(path).path


@pytest.fixture(scope="session")
def make_settings(
    model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Callable[..., Settings]:
    """Settings for a test service; each call gets its own empty store folder."""

    def make(**overrides: object) -> Settings:
        values: dict[str, object] = {
            "model_path": model_dir,
            "engine": "embedded",
            "device": "cpu",
            "log_json": False,
            "rate_limit_rps": 0,
            "lancedb_path": tmp_path_factory.mktemp("lancedb"),
            **SETTINGS,
        }
        values.update(overrides)
        return Settings(_env_file=None, **values)  # type: ignore[arg-type]

    return make


@pytest.fixture(scope="session")
def auth_headers() -> dict[str, str]:
    """Headers every /v1 call needs: the API key, when the service requires one."""
    return dict(HEADERS)


@pytest.fixture(scope="module")
def fuzz_url(make_settings: Callable[..., Settings]) -> Iterator[str]:
    """The service as the schema fuzz run meets it: three documents of the evaluation
    corpus stored and no score or answerability threshold, so every question finds sources
    and reaches the model, with a short context and short answers and no rate limit, so
    each case answers within seconds."""
    settings = make_settings(
        answer_max_tokens=8,
        max_context_tokens=512,
        min_score=0.0,
        min_answerability=0.0,
        rate_limit_rps=0,
    )
    with serve(create_app(settings), timeout_s=120) as url:
        for path in sorted(CORPUS.iterdir())[:3]:
            response = upload(url, dict(HEADERS), path.name, path.read_bytes())
            assert response.status_code == 201, response.text
        yield url


@pytest.fixture(scope="module")
def base_url(make_settings: Callable[..., Settings]) -> Iterator[str]:
    """One service with an empty store, shared by a test module."""
    with serve(create_app(make_settings()), timeout_s=120) as url:
        yield url


def upload(
    base_url: str,
    headers: dict[str, str],
    name: str,
    data: bytes,
    content_type: str = "application/octet-stream",
) -> httpx.Response:
    return httpx.post(
        base_url + "/v1/documents",
        files={"file": (name, data, content_type)},
        headers=headers,
        timeout=120,
    )


def sse_events(response: httpx.Response) -> list[tuple[str, dict[str, object]]]:
    """(event name, data) of every server-sent event in a finished response."""
    events = []
    for block in response.text.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((fields["event"], json.loads(fields["data"])))
    return events


@pytest.fixture(scope="session")
def workload(make_settings: Callable[..., Settings]) -> Workload:
    """Questions the stored documents answer from two sources, with answers of 24 tokens,
    on an engine that decodes two at a time, each answer required to start within 6 s (a
    prompt with sources takes a while to read on a small CPU)."""
    sized = {
        "embedded_concurrency": 2,
        "max_concurrent_streams": 16,
        "first_token_timeout_s": 6.0,
        "request_memory_bytes": 256 * 2**20,  # a budget the burst's RSS is checked against
    }
    body = {
        "question": "When was the lighthouse completed?",
        "top_k": 2,
        "stream": False,
        "max_tokens": 24,
    }

    def prepare(url: str) -> None:
        path = CORPUS / "lighthouse-history.md"
        response = upload(url, dict(HEADERS), path.name, path.read_bytes())
        assert response.status_code == 201, response.text

    return Workload(
        # Each with a store of its own.
        app=lambda **settings: create_app(make_settings(**{**sized, **settings})),
        capacity=2,
        request={"method": "POST", "url": "/v1/ask", "json": body},
        prepare=prepare,
    )


@pytest.fixture(scope="session")
def chat_question() -> str:
    """A question the workload's document answers, so the chat route retrieves sources and
    asks the model (the OpenAI client's contract tests ask it)."""
    return "When was the lighthouse completed?"


@pytest.fixture(scope="session")
def streamed_by() -> str:
    """How the chat route streams its answer: a sentence at a time, each once it is
    attributed to its sources (the model's tokens are read, not passed on)."""
    return "sentence"


@pytest.fixture(scope="session")
def send_traffic() -> Callable[[httpx.Client], None]:
    """One round of typical traffic (the observability tests drive it): a new document,
    the same one again, a refused file, a search, a question the documents answer, one
    they do not, and an empty one (a 4xx); every answer streamed to its end."""
    document = "The Bell Rock lighthouse stands off the coast of Angus, completed in 1810."
    rounds = itertools.count()

    def ask(client: httpx.Client, question: str) -> None:
        body = {"question": question, "max_tokens": 8, "stream": True}
        with client.stream("POST", "/v1/ask", json=body) as response:
            for _ in response.iter_lines():
                pass

    def send(client: httpx.Client) -> None:
        note = f"# Note {next(rounds)}\n\n{document}\n"  # new text: a document, not a duplicate
        for _ in range(2):
            files = {"file": ("note.md", note.encode(), "text/markdown")}
            client.post("/v1/documents", files=files)
        refused = {"file": ("tool.exe", b"MZ", "application/octet-stream")}
        client.post("/v1/documents", files=refused)
        client.post("/v1/search", json={"query": "When was the Bell Rock lighthouse completed?"})
        ask(client, "When was the Bell Rock lighthouse completed?")
        ask(client, "How many moons does Jupiter have?")
        client.post("/v1/ask", json={"question": ""})

    return send
