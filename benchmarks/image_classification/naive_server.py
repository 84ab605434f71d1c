"""The naive peer: plain FastAPI, one forward pass per request, no batching.

Written the way FastAPI's docs suggest for blocking work: a plain `def` endpoint, which
FastAPI runs in its thread pool. It takes the service's JSON body (`{"images": [base64]}`)
and runs the service's own preprocessing.

python -m benchmarks.image_classification.naive_server --model M --port P --threads 1
"""

from __future__ import annotations

import argparse
import base64
from pathlib import Path

import torch
import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel

from benchmarks.image_classification.common import (
    load_model,
    preprocessing_spec,
    softmax,
    top_k,
)


class ClassifyRequest(BaseModel):
    images: list[str]


def create_app(model_path: Path, threads: int, device: str) -> FastAPI:
    from image_classification.preprocessing import preprocess

    module, metadata, labels = load_model(model_path, threads, device)
    spec = preprocessing_spec(metadata)
    app = FastAPI()

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok"}

    @app.post("/v1/classify")
    def classify(body: ClassifyRequest) -> dict:
        predictions = []
        for i, text in enumerate(body.images):
            array = preprocess(base64.b64decode(text), spec, max_pixels=25_000_000)
            with torch.inference_mode():
                probabilities = softmax(module(torch.from_numpy(array)[None].to(device)))[0]
            predictions.append({"index": i, "labels": top_k(probabilities, labels)})
        return {"model": metadata["name"], "predictions": predictions}

    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    app = create_app(args.model, args.threads, args.device)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
