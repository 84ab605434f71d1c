"""The ensemble as a Triton model repository: `python -m ensemble export-triton`.

Writes, from a members file:

    <member>/config.pbtxt    each torch member on the PyTorch (libtorch) backend, each
    <member>/1/model.pt      ONNX Runtime member on the onnxruntime backend, with the
    <member>/1/model.onnx    member's batch size, batching delay and workers
    ensemble/config.pbtxt    ensemble scheduling: one input fanned out to every member,
    ensemble/1/              each member's logits as an output named after it
    members.yaml             the same ensemble with every member on Triton (runtime:
                             triton), for the service: point APP_MEMBERS_PATH at it

The service calls each member's model on its own, so each keeps its deadline, breaker and
hedging, and an optional member that is slow or down is left out of the answer. The
`ensemble` model answers only when every member has: it is there for clients that want
one call to Triton and can wait for the slowest member.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import onnxruntime as ort
import yaml

from ensemble.checksums import sha256_of
from ensemble.config import EnsembleSpec, MemberSpec, load_ensemble
from ensemble.settings import Settings

ENSEMBLE_MODEL = "ensemble"
ENSEMBLE_INPUT = "INPUT"
# The libtorch backend's tensor names: a TorchScript module's arguments have none.
TORCH_INPUT, TORCH_OUTPUT = "INPUT__0", "OUTPUT__0"
_BACKENDS = {"torch": ("pytorch", "model.pt"), "onnxruntime": ("onnxruntime", "model.onnx")}


_MEMBER = """\
name: "%(name)s"
backend: "%(backend)s"
max_batch_size: %(max_batch_size)d
input [
  {
    name: "%(input_name)s"
    data_type: TYPE_FP32
    dims: [ %(features)d ]
  }
]
output [
  {
    name: "%(output_name)s"
    data_type: TYPE_FP32
    dims: [ %(classes)d ]
  }
]
dynamic_batching {
  max_queue_delay_microseconds: %(max_queue_delay_us)d
}
instance_group [
  {
    kind: KIND_AUTO
    count: %(instances)d
  }
]
"""

_ENSEMBLE = """\
name: "%(name)s"
platform: "ensemble"
max_batch_size: %(max_batch_size)d
input [
  {
    name: "%(input_name)s"
    data_type: TYPE_FP32
    dims: [ %(features)d ]
  }
]
output [
%(outputs)s
]
ensemble_scheduling {
  step [
%(steps)s
  ]
}
"""

_OUTPUT = """\
  {
    name: "%(name)s"
    data_type: TYPE_FP32
    dims: [ %(classes)d ]
  }"""

_STEP = """\
    {
      model_name: "%(name)s"
      model_version: -1
      input_map { key: "%(input_name)s" value: "%(ensemble_input)s" }
      output_map { key: "%(output_name)s" value: "%(name)s" }
    }"""


def member_config(
    name: str,
    *,
    backend: str,
    tensors: tuple[str, str],
    features: int,
    classes: int,
    max_batch_size: int,
    max_queue_delay_us: int,
    instances: int,
) -> str:
    """config.pbtxt of one member; the batch dimension is implicit in `dims`."""
    input_name, output_name = tensors
    return _MEMBER % {
        "name": name,
        "backend": backend,
        "max_batch_size": max_batch_size,
        "input_name": input_name,
        "output_name": output_name,
        "features": features,
        "classes": classes,
        "max_queue_delay_us": max_queue_delay_us,
        "instances": instances,
    }


def ensemble_config(
    members: dict[str, tuple[str, str]], *, features: int, classes: int, max_batch_size: int
) -> str:
    """config.pbtxt of the ensemble: `members` maps each member to its (input, output)."""
    outputs = [_OUTPUT % {"name": name, "classes": classes} for name in members]
    steps = [
        _STEP
        % {
            "name": name,
            "input_name": input_name,
            "output_name": output_name,
            "ensemble_input": ENSEMBLE_INPUT,
        }
        for name, (input_name, output_name) in members.items()
    ]
    return _ENSEMBLE % {
        "name": ENSEMBLE_MODEL,
        "max_batch_size": max_batch_size,
        "input_name": ENSEMBLE_INPUT,
        "features": features,
        "outputs": ",\n".join(outputs),
        "steps": ",\n".join(steps),
    }


def export_triton(members_path: Path, repository: Path, settings: Settings) -> Path:
    """Writes the repository under `repository` and returns its members file. Refuses an
    ensemble with a member Triton cannot run from a file (python, or already triton)."""
    spec = load_ensemble(members_path)
    unexportable = [m.name for m in spec.members if m.runtime not in _BACKENDS]
    if unexportable:
        raise ValueError(
            f"members {', '.join(unexportable)} are not torch or onnxruntime files; "
            "Triton cannot load them from this members file"
        )
    if any(m.name == ENSEMBLE_MODEL for m in spec.members):
        raise ValueError(f"a member named {ENSEMBLE_MODEL!r} would overwrite the ensemble model")
    features, classes = spec.input.size, len(spec.labels)
    tensors: dict[str, tuple[str, str]] = {}
    batch_sizes = []
    for member in spec.members:
        backend, filename = _BACKENDS[member.runtime]
        assert member.path is not None
        if member.sha256 and sha256_of(member.path) != member.sha256.lower():
            raise ValueError(
                f"member {member.name}'s file {member.path} has sha256 "
                f"{sha256_of(member.path)}, expected {member.sha256}"
            )
        tensors[member.name] = _tensor_names(member)
        max_batch_size = member.max_batch_size or settings.max_batch_size
        batch_sizes.append(max_batch_size)
        wait_ms = member.max_wait_ms if member.max_wait_ms is not None else settings.max_wait_ms
        model_dir = repository / member.name
        (model_dir / "1").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(member.path, model_dir / "1" / filename)
        (model_dir / "config.pbtxt").write_text(
            member_config(
                member.name,
                backend=backend,
                tensors=tensors[member.name],
                features=features,
                classes=classes,
                max_batch_size=max_batch_size,
                max_queue_delay_us=round(wait_ms * 1000),
                instances=member.workers or settings.inference_workers,
            )
        )
    ensemble_dir = repository / ENSEMBLE_MODEL
    (ensemble_dir / "1").mkdir(parents=True, exist_ok=True)
    (ensemble_dir / "config.pbtxt").write_text(
        ensemble_config(
            tensors, features=features, classes=classes, max_batch_size=min(batch_sizes)
        )
    )
    return _write_members(spec, members_path, repository, settings)


def _tensor_names(member: MemberSpec) -> tuple[str, str]:
    if member.runtime == "torch":
        return TORCH_INPUT, TORCH_OUTPUT
    assert member.path is not None
    session = ort.InferenceSession(str(member.path), providers=["CPUExecutionProvider"])
    inputs, outputs = session.get_inputs(), session.get_outputs()
    if len(inputs) != 1 or len(outputs) != 1:
        raise ValueError(f"member {member.name}'s ONNX model must have one input and one output")
    return inputs[0].name, outputs[0].name


def _write_members(
    spec: EnsembleSpec, members_path: Path, repository: Path, settings: Settings
) -> Path:
    """The members file of the same ensemble on Triton: each member keeps its weight,
    deadline, batching and breaker, and calls its model there. Its batch size is written
    out: a service with a larger default would send batches its model's config refuses."""
    members = []
    for member in spec.members:
        fields = member.model_dump(mode="json", exclude_defaults=True, exclude={"path", "sha256"})
        batch = member.max_batch_size or settings.max_batch_size
        members.append(
            {**fields, "runtime": "triton", "model": member.name, "max_batch_size": batch}
        )
    document: dict[str, object] = {
        "labels": spec.labels,
        "input": spec.input.model_dump(mode="json"),
        "members": members,
    }
    if spec.stacker is not None and spec.stacker.is_file():
        shutil.copyfile(spec.stacker, repository / spec.stacker.name)
        document["stacker"] = spec.stacker.name
    target = repository / "members.yaml"
    header = f"# The ensemble of {members_path.name} with every member on Triton.\n"
    target.write_text(header + yaml.safe_dump(document, sort_keys=False))
    return target
