"""The sequential peer: plain FastAPI that calls the same members one after another.

What one would write first: a plain `def` endpoint (run in FastAPI's thread pool, so
concurrent requests run side by side), every member called in turn on the request's
inputs, no batching, no deadlines, no breaker; then the weighted mean of the members'
probabilities, with the members file's weights. It loads the members through the
service's own loaders (common.py) and combines them with the service's own `softmax` and
`weighted`, so every difference from the service is in how the work is scheduled. It takes
the service's JSON body and answers the same `predictions`.

With `--floor` it calls no member and answers every request with the answer it computed
once at start, for the first row of the demo's test split: the same body read and checked,
the same JSON written, so what it measures is HTTP, FastAPI and the load generator alone.

python -m benchmarks.ensemble.sequential_server --members DIR/members.yaml --port P [--floor]
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Literal

import numpy as np
import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel

from benchmarks.ensemble.common import load_members


class ClassifyRequest(BaseModel):
    inputs: list[list[float]]
    aggregation: Literal["weighted"] = "weighted"


def create_app(members_path: Path, threads: int, device: str, *, floor: bool = False) -> FastAPI:
    from ensemble.aggregation import softmax, weighted

    spec, models = load_members(members_path, threads, device)
    names = [member.name for member in spec.members]
    weights = [member.weight for member in spec.members]
    labels = spec.labels
    app = FastAPI()

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    def answer(inputs: np.ndarray) -> dict[str, Any]:
        answers = [
            softmax(np.asarray(model.predict(inputs)).astype(np.float32)) for model in models
        ]
        combined = weighted(answers, weights)
        predictions = []
        for i, row in enumerate(combined):
            best = int(row.argmax())
            predictions.append(
                {
                    "index": i,
                    "label": labels[best],
                    "score": round(float(row[best]), 6),
                    "members": [
                        {
                            "member": name,
                            "label": labels[int(answer[i].argmax())],
                            "score": round(float(answer[i].max()), 6),
                        }
                        for name, answer in zip(names, answers, strict=True)
                    ],
                }
            )
        return {"aggregation": "weighted", "members": names, "predictions": predictions}

    with np.load(members_path.parent / "test.npz") as data:  # train-demo's test split
        fixed = answer(data["inputs"][:1].astype(np.float32))

    @app.post("/v1/classify")
    def classify(body: ClassifyRequest) -> dict[str, Any]:
        inputs = np.asarray(body.inputs, dtype=np.float32)
        if floor:
            return fixed
        return answer(inputs)

    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--members", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--floor", action="store_true", help="answer without the members")
    args = parser.parse_args()
    app = create_app(args.members, args.threads, args.device, floor=args.floor)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
