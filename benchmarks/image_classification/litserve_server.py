"""The LitServe peer: the same model behind LitServe with its dynamic batching on.

Settings follow LitServe's own guidance: batching on (`max_batch_size`, `batch_timeout`),
and on CPU one inference worker per core (`workers_per_device`), each with the torch
thread count the harness gives every contender. It takes the service's JSON body and
runs the service's own preprocessing inside its workers (decode_request).

python -m benchmarks.image_classification.litserve_server --model M --port P --threads 1 \
    --workers 2 --max-batch-size 32 --batch-timeout 0.002
"""

from __future__ import annotations

import argparse
import base64
from pathlib import Path
from typing import Any

import litserve as ls
import numpy as np
import torch

from benchmarks.image_classification.common import (
    load_model,
    preprocessing_spec,
    softmax,
    top_k,
)


class ClassifierAPI(ls.LitAPI):
    def __init__(self, model_path: Path, threads: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.model_path = model_path
        self.threads = threads
        self.device = "cpu"

    def setup(self, device: str) -> None:
        from image_classification.preprocessing import preprocess

        self.device = device
        self.module, self.metadata, self.labels = load_model(self.model_path, self.threads, device)
        self.spec = preprocessing_spec(self.metadata)
        self.preprocess = preprocess

    def decode_request(self, request: dict) -> np.ndarray:
        data = base64.b64decode(request["images"][0])
        return self.preprocess(data, self.spec, max_pixels=25_000_000)

    def batch(self, inputs: list[np.ndarray]) -> torch.Tensor:
        return torch.from_numpy(np.stack(inputs)).to(self.device)

    def predict(self, x: torch.Tensor) -> np.ndarray:
        with torch.inference_mode():
            return softmax(self.module(x))

    def unbatch(self, output: np.ndarray) -> list[np.ndarray]:
        return list(output)

    def encode_response(self, output: np.ndarray) -> dict:
        return {
            "model": self.metadata["name"],
            "predictions": [{"index": 0, "labels": top_k(output, self.labels)}],
        }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--max-batch-size", type=int, default=32)
    parser.add_argument("--batch-timeout", type=float, default=0.002)
    args = parser.parse_args()
    api = ClassifierAPI(
        args.model,
        args.threads,
        max_batch_size=args.max_batch_size,
        batch_timeout=args.batch_timeout,
        api_path="/v1/classify",
    )
    server = ls.LitServer(
        api,
        accelerator="cuda" if args.device == "cuda" else "cpu",
        devices=1,
        workers_per_device=args.workers,
        timeout=60,
    )
    server.run(host="127.0.0.1", port=args.port, log_level="warning", generate_client_file=False)


if __name__ == "__main__":
    main()
