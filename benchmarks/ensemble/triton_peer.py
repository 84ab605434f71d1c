"""Triton serving the ensemble's exported repository (`export-triton`), for the
triton-ensemble and ours-triton contenders, until SIGTERM.

It is the project's own test server (its tests/triton_server.py): Triton's C++ server and
its ensemble scheduler, the one PyTriton bundles, with each member bound from its file and
run in this process, because that bundle has only the Python backend (no libtorch or
onnxruntime backend). Every member call therefore crosses from Triton to this process and
back; a full Triton runs the same files in-process in its own backends.

python -m benchmarks.ensemble.triton_peer --repository DIR --port P --threads N
(with the rendered project's root and src/ on PYTHONPATH, before this repository's)
"""

from __future__ import annotations

import argparse
import signal
import threading
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repository", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    import torch
    from tests.triton_server import running_triton  # the rendered project's tests package

    torch.set_num_threads(args.threads)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with running_triton(args.repository, http_port=args.port):
        print(f"Triton ready on 127.0.0.1:{args.port}", flush=True)
        stop.wait()


if __name__ == "__main__":
    main()
