"""The limit: the raw model in-process, no HTTP, no decoding, at each batch size.

Prints one JSON object: images/s per batch size, and the best. The harness runs it as a
separate process so it gets the same torch thread count as every contender, and with
`--parallel N` runs N forward passes at once on N threads (one per core on CPU), the
most any contender can get out of the machine.

python -m benchmarks.image_classification.limit --model M --threads 1 --parallel 2
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from pathlib import Path

import torch


def images_per_second(
    module: torch.jit.ScriptModule,
    batch_size: int,
    device: torch.device,
    seconds: float,
    parallel: int = 1,
) -> float:
    """Images/s of `parallel` threads each running forward passes on one batch size."""
    inputs = torch.randn((batch_size, 3, 224, 224), generator=torch.Generator().manual_seed(0))
    inputs = inputs.to(device)
    with torch.inference_mode():
        module(inputs)  # warm-up: the first call of a TorchScript module optimises it
        _sync(device)
    counts = [0] * parallel
    start = threading.Barrier(parallel + 1)

    def run(index: int) -> None:
        with torch.inference_mode():
            start.wait()
            began = time.perf_counter()
            for _ in range(10_000):  # bounded; ends on time long before
                module(inputs)
                _sync(device)
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


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-sizes", default="1,4,8,16,32")
    parser.add_argument("--seconds", type=float, default=1.5)
    parser.add_argument("--parallel", type=int, default=1, help="forward passes at once")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    module = torch.jit.load(str(args.model), map_location=device).eval()
    by_batch = {
        int(size): round(
            images_per_second(module, int(size), device, args.seconds, args.parallel), 2
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
                "threads": args.threads,
                "parallel": args.parallel,
            }
        )
    )


if __name__ == "__main__":
    main()
