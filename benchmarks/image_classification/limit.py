"""The limit: the raw model in-process, no HTTP, no decoding, at each batch size.

Prints one JSON object: images/s per batch size, and the best. The harness runs it as a
separate process so it gets the same torch thread count as every contender.

python -m benchmarks.image_classification.limit --model M --threads 1 --device cpu
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch


def images_per_second(
    module: torch.jit.ScriptModule, batch_size: int, device: torch.device, seconds: float
) -> float:
    inputs = torch.randn((batch_size, 3, 224, 224), generator=torch.Generator().manual_seed(0))
    inputs = inputs.to(device)
    with torch.inference_mode():
        module(inputs)  # warm-up: the first call of a TorchScript module optimises it
        _sync(device)
        images, started = 0, time.perf_counter()
        for _ in range(10_000):  # bounded; ends on time long before
            module(inputs)
            _sync(device)
            images += batch_size
            if time.perf_counter() - started >= seconds:
                break
        return images / (time.perf_counter() - started)


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
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    module = torch.jit.load(str(args.model), map_location=device).eval()
    by_batch = {
        int(size): round(images_per_second(module, int(size), device, args.seconds), 2)
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
            }
        )
    )


if __name__ == "__main__":
    main()
