"""A real Triton Inference Server on CPU (PyTriton's bundled server), dynamic batching on.

Two ways to serve the same model, each from the repository that the service's
`export-triton` wrote (its config.pbtxt gives the names, dims, max batch size and queue
delay):
- `--inputs tensors`: the model as exported, taking preprocessed FP32 tensors; the
  service's triton backend calls it.
- `--inputs jpeg`: Triton used directly, the way a client without our service would: the
  model takes the JPEG bytes (a BYTES tensor) and runs the service's own preprocessing
  before the forward pass, inside Triton's batch.

The Python backend links the system libpython: LD_LIBRARY_PATH must name this
interpreter's LIBDIR (the harness sets it when it starts this script).

python -m benchmarks.image_classification.triton_server --model-dir REPO/classifier \
    --inputs tensors --http-port P --grpc-port G --metrics-port M --threads 1
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from google.protobuf import text_format
from pytriton.decorators import batch
from pytriton.model_config import DynamicBatcher, ModelConfig, Tensor
from pytriton.triton import Triton, TritonConfig
from tritonclient.grpc import model_config_pb2

JPEG_INPUT = "IMAGE"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--inputs", choices=["tensors", "jpeg"], required=True)
    parser.add_argument("--http-port", type=int, required=True)
    parser.add_argument("--grpc-port", type=int, required=True)
    parser.add_argument("--metrics-port", type=int, required=True)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    config = text_format.Parse(
        (args.model_dir / "config.pbtxt").read_text(), model_config_pb2.ModelConfig()
    )
    [model_input], [model_output] = config.input, config.output
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    module = torch.jit.load(str(args.model_dir / "1" / "model.pt"), map_location=device).eval()

    if args.inputs == "tensors":
        input_tensor = Tensor(
            name=model_input.name, dtype=np.float32, shape=tuple(model_input.dims)
        )

        @batch
        def infer(**inputs: np.ndarray) -> dict[str, np.ndarray]:
            with torch.inference_mode():
                logits = module(torch.from_numpy(inputs[model_input.name]).to(device))
            return {model_output.name: logits.cpu().numpy()}

    else:
        from image_classification.model import ModelMetadata
        from image_classification.preprocessing import preprocess

        metadata = ModelMetadata.from_json((args.model_dir / "metadata.json").read_text())
        spec = metadata.preprocessing
        input_tensor = Tensor(name=JPEG_INPUT, dtype=np.bytes_, shape=(1,))

        @batch
        def infer(**inputs: np.ndarray) -> dict[str, np.ndarray]:
            images = [bytes(row[0]) for row in inputs[JPEG_INPUT]]
            arrays = [preprocess(data, spec, max_pixels=25_000_000) for data in images]
            with torch.inference_mode():
                logits = module(torch.from_numpy(np.stack(arrays)).to(device))
            return {model_output.name: logits.cpu().numpy()}

    triton_config = TritonConfig(
        http_address="127.0.0.1",
        http_port=args.http_port,
        grpc_address="127.0.0.1",
        grpc_port=args.grpc_port,
        metrics_address="127.0.0.1",
        metrics_port=args.metrics_port,
        exit_timeout_secs=5,
    )
    with Triton(config=triton_config) as triton:
        triton.bind(
            model_name=config.name,
            infer_func=infer,
            inputs=[input_tensor],
            outputs=[
                Tensor(name=model_output.name, dtype=np.float32, shape=tuple(model_output.dims))
            ],
            config=ModelConfig(
                max_batch_size=config.max_batch_size,
                batcher=DynamicBatcher(
                    max_queue_delay_microseconds=config.dynamic_batching.max_queue_delay_microseconds
                ),
            ),
            strict=True,
        )
        print(json.dumps({"serving": config.name, "inputs": args.inputs}), flush=True)
        triton.serve()


if __name__ == "__main__":
    main()
