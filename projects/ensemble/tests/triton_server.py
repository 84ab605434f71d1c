"""A real Triton Inference Server on CPU, serving the ensemble's exported repository.

PyTriton ships the Triton server binary with its Python backend only, so each member's
model is bound from its file (TorchScript or ONNX) under the names, dims, batch size and
batching delay of its config.pbtxt, and this process runs it when Triton calls. The
`ensemble` model is Triton's own ensemble scheduler, loaded from the repository's
config.pbtxt through Triton's model repository API: the same scheduling that fans out to
the libtorch and onnxruntime backends on a full Triton.
"""

from __future__ import annotations

import contextlib
import os
import sysconfig
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
import tritonclient.http as triton_http
from google.protobuf import json_format, text_format
from tritonclient.grpc import model_config_pb2
from tritonclient.utils import InferenceServerException

from ensemble.triton_repository import ENSEMBLE_MODEL
from tests.live_server import free_port

# PyTriton guards the model repository API with a token; the tests hold it.
ACCESS_TOKEN = "ensemble-tests"
ACCESS_HEADERS = {"triton-access-token": ACCESS_TOKEN}


@dataclass(frozen=True)
class TritonEndpoint:
    url: str  # host:port of the HTTP endpoint


def read_config(model_dir: Path) -> model_config_pb2.ModelConfig:
    return text_format.Parse(
        (model_dir / "config.pbtxt").read_text(), model_config_pb2.ModelConfig()
    )


def _infer(
    model_dir: Path, input_name: str, output_name: str
) -> Callable[..., dict[str, np.ndarray]]:
    """What Triton's calls to the model run: its file, TorchScript or ONNX."""
    version = model_dir / "1"
    if (version / "model.pt").is_file():
        module = torch.jit.load(str(version / "model.pt"), map_location="cpu").eval()

        def run_torch(**inputs: np.ndarray) -> dict[str, np.ndarray]:
            with torch.inference_mode():
                return {output_name: module(torch.from_numpy(inputs[input_name])).numpy()}

        return run_torch
    session = ort.InferenceSession(str(version / "model.onnx"), providers=["CPUExecutionProvider"])
    onnx_input = session.get_inputs()[0].name

    def run_onnx(**inputs: np.ndarray) -> dict[str, np.ndarray]:
        return {output_name: session.run(None, {onnx_input: inputs[input_name]})[0]}

    return run_onnx


@contextlib.contextmanager
def running_triton(repository: Path, http_port: int | None = None) -> Iterator[TritonEndpoint]:
    """Triton with every member of `repository` and its ensemble, all ready; its HTTP
    endpoint on `http_port`, or a free port."""
    from pytriton.decorators import batch
    from pytriton.model_config import DynamicBatcher, ModelConfig, Tensor
    from pytriton.triton import Triton, TritonConfig, TritonSecurityConfig

    # Triton's Python backend links the system libpython; point it at this interpreter's.
    libdir = sysconfig.get_config_var("LIBDIR")
    os.environ["LD_LIBRARY_PATH"] = os.pathsep.join(
        p for p in (libdir, os.environ.get("LD_LIBRARY_PATH", "")) if p
    )
    http_port = http_port or free_port()
    triton_config = TritonConfig(
        http_port=http_port, grpc_port=free_port(), metrics_port=free_port(), exit_timeout_secs=5
    )
    security = TritonSecurityConfig(access_token=ACCESS_TOKEN)
    with Triton(config=triton_config, security_config=security) as triton:
        for model_dir in sorted(p.parent for p in repository.glob("*/config.pbtxt")):
            config = read_config(model_dir)
            if config.platform == "ensemble":
                continue
            [model_input], [model_output] = config.input, config.output
            triton.bind(
                model_name=config.name,
                # One function per instance: PyTriton runs as many instances as it is given.
                infer_func=[
                    batch(_infer(model_dir, model_input.name, model_output.name))
                    for _ in range(sum(group.count for group in config.instance_group) or 1)
                ],
                inputs=[
                    Tensor(name=model_input.name, dtype=np.float32, shape=tuple(model_input.dims))
                ],
                outputs=[
                    Tensor(name=model_output.name, dtype=np.float32, shape=tuple(model_output.dims))
                ],
                config=ModelConfig(
                    max_batch_size=config.max_batch_size,
                    batcher=DynamicBatcher(
                        max_queue_delay_microseconds=config.dynamic_batching.max_queue_delay_microseconds
                    ),
                ),
            )
        triton.run()
        url = f"127.0.0.1:{http_port}"
        _load_ensemble(url, read_config(repository / ENSEMBLE_MODEL))
        yield TritonEndpoint(url)


def _load_ensemble(url: str, config: model_config_pb2.ModelConfig) -> None:
    """Loads the ensemble from its config. Its members were bound from memory, not from the
    repository folder, so Triton reports that it could not poll them, and loads the
    ensemble on the members it has: readiness, not that report, says whether it worked."""
    client = triton_http.InferenceServerClient(url)
    try:
        with contextlib.suppress(InferenceServerException):
            client.load_model(
                config.name,
                headers=ACCESS_HEADERS,
                config=json_format.MessageToJson(config),
                files={"file:1/.keep": b""},
            )
        deadline = time.monotonic() + 30
        while not client.is_model_ready(config.name):
            if time.monotonic() > deadline:
                raise RuntimeError(f"Triton did not load the {config.name!r} ensemble")
            time.sleep(0.2)
    finally:
        client.close()
