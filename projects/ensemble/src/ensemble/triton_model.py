"""A member whose model runs on a Triton Inference Server (`runtime: triton`).

Each batch is one call to Triton's HTTP endpoint with binary tensors, on a keep-alive
connection of the worker thread that runs it (the batcher's workers run calls side by
side, and an HTTP connection carries one call at a time). At start the model must be
ready on the server and take (batch, features) float32 and answer (batch, classes).
"""

from __future__ import annotations

import http.client
import json
import threading
import time

import numpy as np
from tritonclient.http import InferenceServerClient, InferInput, InferRequestedOutput, InferResult

from ensemble.config import MemberSpec
from ensemble.settings import Settings

_HEADER_LENGTH = "Inference-Header-Content-Length"


class TritonError(RuntimeError):
    """Triton refused a call, or the model there is not the one the member expects."""


class TritonModel:
    def __init__(
        self, settings: Settings, model: str, input_name: str, output_name: str, timeout_s: float
    ) -> None:
        self.url = settings.triton_url
        # Per blocking step (connect, send, each read): a call past the member's deadline
        # is abandoned by the member anyway, and its worker should not wait on longer.
        self.timeout_s = timeout_s
        self.model = model
        self.input_name = input_name
        self.output_name = output_name
        self._local = threading.local()

    @classmethod
    def load(cls, spec: MemberSpec, settings: Settings, features: int, classes: int) -> TritonModel:
        """Waits until the model is ready on Triton, and checks its inputs and outputs."""
        assert spec.model is not None
        timeout_s = min(settings.triton_timeout_s, spec.deadline_s)
        probe = cls(settings, spec.model, "", "", settings.triton_timeout_s)
        deadline = time.monotonic() + settings.triton_startup_timeout_s
        while True:
            try:
                status, _, _ = probe._send("GET", f"/v2/models/{spec.model}/ready")
                reason = f"HTTP {status}"
            except (OSError, http.client.HTTPException) as exc:
                status, reason = 0, str(exc) or type(exc).__name__
            if status == 200:
                break
            if time.monotonic() >= deadline:
                raise TritonError(
                    f"model {spec.model!r} is not ready on Triton at {settings.triton_url} "
                    f"after {settings.triton_startup_timeout_s:g} s ({reason})"
                )
            time.sleep(0.5)
        status, body, _ = probe._send("GET", f"/v2/models/{spec.model}")
        probe.close()
        if status != 200:
            raise TritonError(f"Triton answered {status} for model {spec.model!r}: {_error(body)}")
        metadata = json.loads(body)
        inputs, outputs = metadata.get("inputs", []), metadata.get("outputs", [])
        if len(inputs) != 1 or len(outputs) != 1:
            raise TritonError(f"model {spec.model!r} must have one input and one output")
        _check_tensor(spec.model, "input", inputs[0], features)
        _check_tensor(spec.model, "output", outputs[0], classes)
        return cls(settings, spec.model, inputs[0]["name"], outputs[0]["name"], timeout_s)

    def predict(self, batch: np.ndarray) -> np.ndarray:
        tensor = InferInput(self.input_name, list(batch.shape), "FP32")
        tensor.set_data_from_numpy(np.ascontiguousarray(batch, dtype=np.float32))
        body, json_size = InferenceServerClient.generate_request_body(
            [tensor], outputs=[InferRequestedOutput(self.output_name)]
        )
        headers = {"Content-Type": "application/octet-stream"}
        if json_size is not None:
            headers[_HEADER_LENGTH] = str(json_size)
        status, answer, header_length = self._send(
            "POST", f"/v2/models/{self.model}/infer", body, headers
        )
        if status != 200:
            raise TritonError(
                f"Triton answered {status} for model {self.model!r}: {_error(answer)}"
            )
        result = InferResult.from_response_body(answer, header_length=header_length)
        logits = result.as_numpy(self.output_name)
        if logits is None:
            raise TritonError(f"model {self.model!r} answered without {self.output_name!r}")
        return logits

    def close(self) -> None:
        """Closes this thread's connection, if it has one."""
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None

    def _connection(self) -> http.client.HTTPConnection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            host, _, port = self.url.rpartition(":")
            connection = http.client.HTTPConnection(host, int(port), timeout=self.timeout_s)
            self._local.connection = connection
        return connection

    def _send(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, bytes, int | None]:
        connection = self._connection()
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            answer = response.read()
        except (OSError, http.client.HTTPException):
            # A broken keep-alive connection is not reused; the next call opens another.
            connection.close()
            self._local.connection = None
            raise
        length = response.getheader(_HEADER_LENGTH)
        return response.status, answer, int(length) if length is not None else None


def _check_tensor(model: str, kind: str, tensor: dict[str, object], size: int) -> None:
    shape = [int(d) for d in tensor.get("shape", [])]  # type: ignore[attr-defined]
    if tensor.get("datatype") != "FP32" or shape[1:] != [size]:
        raise TritonError(
            f"model {model!r} has {kind} {tensor.get('name')!r} of {tensor.get('datatype')} "
            f"{shape}; the ensemble needs FP32 [-1, {size}]"
        )


def _error(body: bytes) -> str:
    try:
        document = json.loads(body)
    except ValueError:
        document = None
    if isinstance(document, dict) and "error" in document:
        return str(document["error"])
    return body[:200].decode(errors="replace")
