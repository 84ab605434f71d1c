"""The plain peer of the embedded engine: transformers' `generate()` with a
`TextIteratorStreamer`, in a thread per request, behind a minimal FastAPI SSE endpoint.

Written the way transformers' docs show streaming: `generate()` runs in a thread and the
endpoint iterates the streamer. It answers the same OpenAI chat-completion body with the
same chunk format (text chunks, then usage, then [DONE]), greedy, always `max_tokens`
tokens (`eos_token_id=None`: what `ignore_eos` asks of the gateway).

python -m benchmarks.streaming_chatbot.plain_server --model DIR --port P --threads 1
"""

from __future__ import annotations

import argparse
import asyncio
import json
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import torch
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse
from transformers import AutoModelForCausalLM, AutoTokenizer, TextIteratorStreamer


def create_app(model_path: Path, threads: int) -> FastAPI:
    torch.set_num_threads(threads)
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32).eval()
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    # One short generation pays for lazy initialisation, as the embedded engine's warm-up does.
    model.generate(**tokenizer("Hello", return_tensors="pt"), max_new_tokens=4, do_sample=False)
    app = FastAPI()

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok"}

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> StreamingResponse:
        body = json.loads(await request.body())
        inputs = tokenizer.apply_chat_template(
            body["messages"],
            add_generation_prompt=True,
            tokenize=True,
            return_dict=True,
            return_tensors="pt",
        )
        max_tokens = int(body.get("max_tokens", 64))
        streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)
        result: dict[str, Any] = {}

        def run() -> None:
            with torch.inference_mode():
                result["sequences"] = model.generate(
                    **inputs,
                    max_new_tokens=max_tokens,
                    do_sample=False,
                    eos_token_id=None,
                    pad_token_id=pad,
                    streamer=streamer,
                )

        thread = threading.Thread(target=run, daemon=True)
        thread.start()

        async def events() -> AsyncIterator[bytes]:
            def chunk(delta: dict, **extra: Any) -> bytes:
                choices = [{"index": 0, "delta": delta}]
                body = {"object": "chat.completion.chunk", "choices": choices, **extra}
                return b"data: " + json.dumps(body).encode() + b"\n\n"

            yield chunk({"role": "assistant", "content": ""})
            iterator = iter(streamer)
            done = object()
            while True:
                # The streamer's queue blocks: wait for it off the event loop.
                piece = await asyncio.to_thread(next, iterator, done)
                if piece is done:
                    break
                if piece:
                    yield chunk({"content": piece})
            await asyncio.to_thread(thread.join)
            produced = int(result["sequences"].shape[1] - inputs["input_ids"].shape[1])
            prompt = int(inputs["input_ids"].shape[1])
            usage = {"prompt_tokens": prompt, "completion_tokens": produced}
            yield chunk({}, usage={**usage, "total_tokens": prompt + produced})
            yield b"data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    app = create_app(args.model, args.threads)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
