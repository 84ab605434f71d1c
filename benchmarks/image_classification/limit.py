"""The limit: the raw model in-process, no HTTP, no decoding, at each batch size.

Prints one JSON object: images/s per batch size, and the best. The harness runs it as a
separate process so it gets the same thread count as every contender, and with
`--parallel N` runs N forward passes at once on N threads (one per core on CPU), the
most any contender can get out of the machine. `--runtime torch` runs the TorchScript
checkpoint; `--runtime onnxruntime` an ONNX file, in one session shared by the threads
with `--threads` intra-op threads each, as the service's onnxruntime backend runs it.

python -m benchmarks.image_classification.limit --model M --threads 1 --parallel 2
python -m benchmarks.image_classification.limit --runtime onnxruntime --model model.onnx
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np


def images_per_second(
    forward: Callable[[], None], batch_size: int, seconds: float, parallel: int = 1
) -> float:
    """Images/s of `parallel` threads each calling `forward` (one batch) in a loop."""
    forward()  # warm-up: the first call optimises the graph
    counts = [0] * parallel
    start = threading.Barrier(parallel + 1)

    def run(index: int) -> None:
        start.wait()
        began = time.perf_counter()
        for _ in range(10_000):  # bounded; ends on time long before
            forward()
            counts[index] += batch_size
            if time.perf_counter() - began >= seconds:
                break

    workers = [threading.Thread(target=run, args=(i,)) for i in range(parallel)]
    for worker in workers:
        worker.start()
    start.wait()
    started = time.perf_counter()
    for worker in workers:
        worker.join()
    return sum(counts) / (time.perf_counter() - started)


def torch_forward(model: Path, threads: int, device: str) -> Callable[[int], Callable[[], None]]:
    import torch

    torch.set_num_threads(threads)
    target = torch.device(device)
    module = torch.jit.load(str(model), map_location=target).eval()

    def for_batch(batch_size: int) -> Callable[[], None]:
        generator = torch.Generator().manual_seed(0)
        inputs = torch.randn((batch_size, 3, 224, 224), generator=generator).to(target)

        def forward() -> None:
            with torch.inference_mode():
                module(inputs)
                if target.type == "cuda":
                    torch.cuda.synchronize()

        return forward

    return for_batch


def onnx_forward(model: Path, threads: int, device: str) -> Callable[[int], Callable[[], None]]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    providers = ["CUDAExecutionProvider"] if device == "cuda" else ["CPUExecutionProvider"]
    session = ort.InferenceSession(str(model), options, providers=providers)
    name = session.get_inputs()[0].name

    def for_batch(batch_size: int) -> Callable[[], None]:
        rng = np.random.default_rng(0)
        inputs = rng.standard_normal((batch_size, 3, 224, 224), dtype=np.float32)

        def forward() -> None:
            session.run(None, {name: inputs})

        return forward

    return for_batch


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--runtime", choices=("torch", "onnxruntime"), default="torch")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-sizes", default="1,4,8,16,32")
    parser.add_argument("--seconds", type=float, default=1.5)
    parser.add_argument("--parallel", type=int, default=1, help="forward passes at once")
    args = parser.parse_args()
    load = torch_forward if args.runtime == "torch" else onnx_forward
    for_batch = load(args.model, args.threads, args.device)
    by_batch = {
        int(size): round(
            images_per_second(for_batch(int(size)), int(size), args.seconds, args.parallel), 2
        )
        for size in args.batch_sizes.split(",")
    }
    best = max(by_batch, key=lambda size: by_batch[size])
    print(
        json.dumps(
            {
                "best": by_batch[best],
                "best_batch_size": best,
                "by_batch_size": by_batch,
                "unit": "images/s",
                "runtime": args.runtime,
                "model": args.model.name,
                "threads": args.threads,
                "parallel": args.parallel,
            }
        )
    )


if __name__ == "__main__":
    main()
