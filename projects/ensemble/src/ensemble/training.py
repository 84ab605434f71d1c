"""Trains the demo ensemble: three digits classifiers that differ, so they disagree usefully.

    python -m ensemble train-demo --output models/demo

From scikit-learn's bundled digits (1,797 8x8 images; nothing is downloaded), split three
ways: a test split (450) that judges the ensemble, a stacking split (300) the stacker is
fitted on, and a pool the members train on, each a different half of it with
its own seed. The members differ in architecture and runtime too: a CNN (TorchScript), an
MLP exported to ONNX and quantised to int8 by the ONNX Runtime pack's gate, and a linear
model (TorchScript). Writes the member files, `members.yaml`, the stacker, both splits and
`report.json` with every member's and aggregation's accuracy on the test split. Takes
seconds on one CPU core.
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import yaml
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

from ensemble.architectures import DigitsCNN, DigitsLinear, DigitsMLP
from ensemble.checksums import sha256_of
from ensemble.onnx_export import batches, export_onnx
from ensemble.quantization import publish_classifier
from ensemble.stacking import Split, evaluate, fit_stacker

LABELS = [str(digit) for digit in range(10)]
TEST_ITEMS = 450
STACK_ITEMS = 300
SUBSET = 0.5  # of the pool, per member: each sees a different half
_HEADER = """\
# The demo ensemble (train-demo): three members that differ in architecture, runtime,
# seed and training subset. cnn is required: without it the request fails. mlp and
# linear are optional: without one the answer is degraded, and says so. See config.py
# for every field.
"""


@dataclass(frozen=True)
class TrainingReport:
    output_dir: Path
    accuracy: dict[str, float]  # on the test split: each member, each aggregation
    int8_member: bool  # whether the MLP member runs its int8 file
    seconds: float

    @property
    def best_member(self) -> float:
        return max(self.accuracy[name] for name in ("cnn", "mlp", "linear"))


def digits() -> tuple[np.ndarray, np.ndarray]:
    data = load_digits()
    return data.data.astype(np.float32), data.target.astype(np.int64)


def train_demo_ensemble(output_dir: Path, *, epochs: int = 40, seed: int = 0) -> TrainingReport:
    # One intra-op thread: networks this small train fastest on one, and the same result
    # comes out whatever the host's core count (more threads reorder the float sums).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _train_demo_ensemble(output_dir, epochs=epochs, seed=seed)
    finally:
        torch.set_num_threads(threads)


def _train_demo_ensemble(output_dir: Path, *, epochs: int, seed: int) -> TrainingReport:
    started = time.perf_counter()
    output_dir.mkdir(parents=True, exist_ok=True)
    x, y = digits()
    rest_x, test_x, rest_y, test_y = train_test_split(
        x, y, test_size=TEST_ITEMS, stratify=y, random_state=seed
    )
    pool_x, stack_x, pool_y, stack_y = train_test_split(
        rest_x, rest_y, test_size=STACK_ITEMS, stratify=rest_y, random_state=seed
    )
    Split(test_x, test_y).save(output_dir / "test.npz")
    Split(stack_x, stack_y).save(output_dir / "stack.npz")

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)  # torch.jit
        # A quarter of the epochs: trained fully the CNN is right on 99.6% of the test split
        # alone, and averaging in two weaker members only costs it (measured: 0.9956 against
        # the best aggregation's 0.9889). Members comparably accurate that err differently
        # are when an ensemble pays, and what the demo shows.
        cnn = _train(DigitsCNN, pool_x, pool_y, seed=seed + 1, epochs=max(1, epochs // 4))
        _save_torchscript(cnn, output_dir / "cnn.pt", pool_x[:2])
        linear = _train(DigitsLinear, pool_x, pool_y, seed=seed + 3, epochs=epochs * 2, lr=0.05)
        _save_torchscript(linear, output_dir / "linear.pt", pool_x[:2])
    mlp = _train(DigitsMLP, pool_x, pool_y, seed=seed + 2, epochs=epochs)
    mlp_file = _export_mlp(mlp, output_dir, calibration=pool_x, held_out=stack_x, labels=stack_y)

    members = [
        _member("cnn", "torch", output_dir / "cnn.pt", weight=2.0, required=True),
        _member("mlp", "onnxruntime", mlp_file, weight=1.0, hedge_after_ms=100),
        _member("linear", "torch", output_dir / "linear.pt", weight=1.0),
    ]
    members_path = output_dir / "members.yaml"
    document = {"labels": LABELS, "input": {"size": 64, "min": 0, "max": 16}}
    document |= {"stacker": "stacker.json", "members": members}
    members_path.write_text(_HEADER + yaml.safe_dump(document, sort_keys=False))
    fit_stacker(members_path, output_dir / "stack.npz")
    accuracy = evaluate(members_path, output_dir / "test.npz")
    seconds = round(time.perf_counter() - started, 2)
    report = TrainingReport(output_dir, accuracy, mlp_file.name.endswith(".int8.onnx"), seconds)
    body = {"accuracy": accuracy, "int8_member": report.int8_member, "seconds": seconds}
    (output_dir / "report.json").write_text(json.dumps(body, indent=2) + "\n")
    return report


def _member(name: str, runtime: str, path: Path, **fields: object) -> dict[str, object]:
    return {
        "name": name,
        "runtime": runtime,
        "path": path.name,
        "sha256": sha256_of(path),
        "deadline_ms": 1000,
        "required": False,
        **fields,
    }


def _train(
    network: Callable[[], nn.Module],
    x: np.ndarray,
    y: np.ndarray,
    *,
    seed: int,
    epochs: int,
    lr: float = 0.01,
) -> nn.Module:
    """A new `network` trained with Adam on a random SUBSET of (x, y), in shuffled batches
    of 64, everything random drawn from `seed`."""
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)  # the initial weights and dropout, as well as the subset
    model = network()
    chosen = torch.randperm(len(x), generator=generator)[: int(len(x) * SUBSET)]
    inputs, targets = torch.from_numpy(x)[chosen], torch.from_numpy(y)[chosen]
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(inputs), generator=generator)
        for start in range(0, len(order), 64):
            batch = order[start : start + 64]
            optimiser.zero_grad()
            loss_fn(model(inputs[batch]), targets[batch]).backward()
            optimiser.step()
    return model.eval()


def _save_torchscript(model: nn.Module, path: Path, example: np.ndarray) -> None:
    with torch.inference_mode():
        traced = torch.jit.trace(model, torch.from_numpy(example))
    torch.jit.save(traced, str(path))


def _export_mlp(
    model: nn.Module,
    folder: Path,
    *,
    calibration: np.ndarray,
    held_out: np.ndarray,
    labels: np.ndarray,
) -> Path:
    """The MLP as ONNX, through the int8 gate; the member runs the int8 candidate when the
    gate made one that keeps its accuracy (faster or not: the demo wants a member of another
    precision), else the published file. The gate's figures are in gate.json."""
    fp32 = folder / "mlp.fp32.onnx"
    export_onnx(
        model,
        fp32,
        example={"input": held_out[:2]},
        metadata={"labels": LABELS, "name": "mlp"},
        held_out=batches(held_out[:64]),
    )
    published = folder / "mlp.onnx"
    publish_classifier(
        fp32, published, calibration=calibration, held_out=held_out, labels=labels, batch_size=8
    )
    int8 = folder / "mlp.int8.onnx"
    return int8 if int8.is_file() else published
