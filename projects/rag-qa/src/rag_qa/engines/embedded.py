"""The embedded engine: the model runs in this process with PyTorch and transformers.

Meant for development and small CPU deployments: `copier copy` and one command give a
working service with no GPU and no second server. Each generation runs a plain
KV-cached decode loop on its own worker thread (`embedded_concurrency` at once), so it
can stop between any two tokens when its client goes away, and sample with its own seed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import torch
from transformers import AutoModelForCausalLM, PreTrainedTokenizerBase

from rag_qa.engines.base import (
    EngineEvent,
    Finished,
    GenerationRequest,
    SamplingParams,
    StopMatcher,
    TextDelta,
)
from rag_qa.observability import Metrics
from rag_qa.settings import Settings

logger = logging.getLogger(__name__)


@dataclass
class _Job:
    request: GenerationRequest
    loop: asyncio.AbstractEventLoop | None  # None: nobody listens (the warm-up)
    events: asyncio.Queue[EngineEvent | BaseException] = field(default_factory=asyncio.Queue)
    cancelled: threading.Event = field(default_factory=threading.Event)

    def emit(self, event: EngineEvent | BaseException) -> None:
        if self.loop is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop closed: nobody is listening
            self.loop.call_soon_threadsafe(self.events.put_nowait, event)


class EmbeddedEngine:
    name = "embedded"

    def __init__(
        self, settings: Settings, tokenizer: PreTrainedTokenizerBase, metrics: Metrics
    ) -> None:
        self.settings = settings
        self.tokenizer = tokenizer
        self.metrics = metrics
        self.concurrency = settings.embedded_concurrency
        self.kv_bytes_per_token = 0  # known once the model is loaded
        self._model: Any = None
        self._device = torch.device("cpu")
        self._eos: frozenset[int] = frozenset()
        self._pool = ThreadPoolExecutor(
            max_workers=settings.embedded_concurrency, thread_name_prefix="generate"
        )
        self._ready = False
        self._failure: str | None = None

    @property
    def ready(self) -> bool:
        return self._ready

    @property
    def failure(self) -> str | None:
        return self._failure

    async def start(self) -> None:
        try:
            await asyncio.get_running_loop().run_in_executor(self._pool, self._load)
        except Exception as exc:
            self._failure = f"{type(exc).__name__}: {exc}"
            raise
        self._ready = True

    async def stop(self) -> None:
        self._ready = False
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _load(self) -> None:
        torch.set_num_threads(self.settings.torch_threads)
        self._device = _device(self.settings.device)
        dtype = torch.float32 if self._device.type == "cpu" else torch.bfloat16
        model = AutoModelForCausalLM.from_pretrained(self.settings.model_path, dtype=dtype)
        self._model = model.to(self._device).eval()
        self.kv_bytes_per_token = _kv_bytes_per_token(model.config, dtype)
        eos = model.generation_config.eos_token_id
        ids = eos if isinstance(eos, list) else [eos]
        if self.tokenizer.eos_token_id is not None:
            ids.append(self.tokenizer.eos_token_id)
        self._eos = frozenset(i for i in ids if i is not None)
        # Short generations pay for lazy initialisation before the first request does.
        for _ in range(self.settings.warmup_iterations):
            request = GenerationRequest("warmup", self.tokenizer.encode("Hello"), SamplingParams(4))
            self._decode(_Job(request, loop=None))
        logger.info("embedded engine ready", extra={"device": str(self._device)})

    async def generate(self, request: GenerationRequest) -> AsyncIterator[EngineEvent]:
        job = _Job(request, asyncio.get_running_loop())
        self.metrics.llm_queue_depth.inc()
        self._pool.submit(self._run, job)
        try:
            while True:
                event = await job.events.get()
                if isinstance(event, BaseException):
                    raise event
                yield event
                if isinstance(event, Finished):
                    return
        finally:
            # Runs when the consumer stops early too: the decode loop sees the flag
            # before its next token and returns.
            job.cancelled.set()

    def _run(self, job: _Job) -> None:
        self.metrics.llm_queue_depth.dec()
        if job.cancelled.is_set():
            return
        self.metrics.llm_engine_running.inc()
        try:
            job.emit(self._decode(job))
        except Exception as exc:
            logger.exception("generation failed")
            job.emit(exc)
        finally:
            self.metrics.llm_engine_running.dec()

    @torch.inference_mode()
    def _decode(self, job: _Job) -> Finished:
        began = time.perf_counter()
        params = job.request.params
        prompt = job.request.prompt_token_ids
        generator = torch.Generator(device=self._device)
        if params.seed is not None:
            generator.manual_seed(params.seed)
        else:
            generator.seed()
        detokenizer = _Detokenizer(self.tokenizer)
        stops = StopMatcher(params.stop)
        inputs = torch.tensor([prompt], device=self._device)
        past: Any = None
        produced = 0
        reason: str = "length"
        while produced < params.max_tokens:
            if job.cancelled.is_set():
                break
            out = self._model(input_ids=inputs, past_key_values=past, use_cache=True)
            past = out.past_key_values
            token = _sample(out.logits[0, -1], params, generator)
            produced += 1
            self.metrics.llm_engine_generated_tokens.inc()
            if token in self._eos and not params.ignore_eos:
                reason = "stop"
                break
            text = stops.feed(detokenizer.add(token))
            if text:
                job.emit(TextDelta(text))
            if stops.stopped:
                reason = "stop"
                break
            inputs = torch.tensor([[token]], device=self._device)
        if not stops.stopped and (rest := stops.feed(detokenizer.flush()) + stops.flush()):
            job.emit(TextDelta(rest))
        return Finished(
            reason="stop" if reason == "stop" else "length",
            prompt_tokens=len(prompt),
            completion_tokens=produced,
            engine_s=time.perf_counter() - began,
        )


class _Detokenizer:
    """Turns token ids into text as they arrive, without splitting a UTF-8 character."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase) -> None:
        self._tokenizer = tokenizer
        self._ids: list[int] = []
        self._prefix = 0
        self._read = 0

    def add(self, token: int) -> str:
        self._ids.append(token)
        return self._advance(final=False)

    def flush(self) -> str:
        return self._advance(final=True)

    def _advance(self, *, final: bool) -> str:
        decode = self._tokenizer.decode
        before = decode(self._ids[self._prefix : self._read], skip_special_tokens=True)
        after = decode(self._ids[self._prefix :], skip_special_tokens=True)
        if len(after) <= len(before) or (after.endswith("\ufffd") and not final):
            return ""
        self._prefix, self._read = self._read, len(self._ids)
        return after[len(before) :]


def _sample(logits: torch.Tensor, params: SamplingParams, generator: torch.Generator) -> int:
    if params.greedy:
        return int(torch.argmax(logits))
    probs = torch.softmax(logits.float() / params.temperature, dim=-1)
    if params.top_p < 1.0:
        sorted_probs, order = torch.sort(probs, descending=True)
        # Keep the smallest set of tokens whose probability adds up to top_p.
        outside = torch.cumsum(sorted_probs, dim=-1) - sorted_probs > params.top_p
        sorted_probs[outside] = 0.0
        choice = torch.multinomial(sorted_probs, 1, generator=generator)
        return int(order[choice])
    return int(torch.multinomial(probs, 1, generator=generator))


def _device(setting: str) -> torch.device:
    if setting == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if setting == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("APP_DEVICE=cuda but torch sees no CUDA device")
    return torch.device(setting)


def _kv_bytes_per_token(config: Any, dtype: torch.dtype) -> int:
    """A key and a value per layer and KV head, for each token in the cache."""
    heads = getattr(config, "num_key_value_heads", None) or config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    return 2 * config.num_hidden_layers * heads * head_dim * dtype.itemsize
