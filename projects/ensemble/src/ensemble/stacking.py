"""The stacker's fit and the ensemble's evaluation, on splits the members never trained on.

    python -m ensemble fit-stacker --members models/demo/members.yaml --split models/demo/stack.npz
    python -m ensemble evaluate --members models/demo/members.yaml --split models/demo/test.npz

A split is an `.npz` with `inputs` (n, features) and `targets` (n,), the label indices. The
members run here exactly as the service runs them (same files, same runtimes), without
their batchers; fitting needs scikit-learn (the `export` extra).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ensemble.aggregation import AGGREGATIONS, Stacker, combine, softmax
from ensemble.config import EnsembleSpec, load_ensemble
from ensemble.members import load_model
from ensemble.settings import Settings

# The stacker's regularisation: strong, since it has members x classes inputs per class
# and a held-out split of a few hundred items to learn them from.
STACKER_C = 0.3


@dataclass(frozen=True)
class Split:
    inputs: np.ndarray
    targets: np.ndarray

    @classmethod
    def load(cls, path: Path) -> Split:
        with np.load(path) as data:
            return cls(data["inputs"].astype(np.float32), data["targets"].astype(np.int64))

    def save(self, path: Path) -> None:
        np.savez_compressed(path, inputs=self.inputs, targets=self.targets)


def member_probabilities(spec: EnsembleSpec, inputs: np.ndarray) -> dict[str, np.ndarray]:
    """Each member's class probabilities on `inputs`, run on the CPU in batches of 256."""
    settings = Settings.model_construct(device="cpu")
    out = {}
    for member in spec.members:
        model = load_model(member, settings, spec.input.size, len(spec.labels))
        rows = [model.predict(inputs[i : i + 256]) for i in range(0, len(inputs), 256)]
        out[member.name] = softmax(np.concatenate(rows).astype(np.float32))
    return out


def fit_stacker(members_path: Path, split_path: Path, output: Path | None = None) -> Path:
    """Fits the stacker on `split_path` and writes it where the members file says (or to
    `output`, `stacker.json` beside the members file by default)."""
    from sklearn.linear_model import LogisticRegression

    spec = load_ensemble(members_path)
    split = Split.load(split_path)
    answered = member_probabilities(spec, split.inputs)
    names = tuple(answered)
    features = np.concatenate([answered[name] for name in names], axis=1)
    regression = LogisticRegression(C=STACKER_C, max_iter=2000).fit(features, split.targets)
    classes = len(spec.labels)
    coef = np.zeros((classes, features.shape[1]))
    intercept = np.full(classes, -1e3)  # a label missing from the split is never chosen
    coef[regression.classes_] = regression.coef_
    intercept[regression.classes_] = regression.intercept_
    target = output or spec.stacker or members_path.with_name("stacker.json")
    Stacker(names, tuple(spec.labels), coef, intercept, fitted_on=split_path.name).save(target)
    return target


def evaluate(members_path: Path, split_path: Path) -> dict[str, float]:
    """Top-1 accuracy of each member and each aggregation on the split."""
    spec = load_ensemble(members_path)
    split = Split.load(split_path)
    answered = member_probabilities(spec, split.inputs)
    stacker = Stacker.load(spec.stacker) if spec.stacker and spec.stacker.is_file() else None
    weights = {m.name: m.weight for m in spec.members}
    accuracy = {name: _accuracy(p, split.targets) for name, p in answered.items()}
    for aggregation in AGGREGATIONS:
        if aggregation == "stacking" and stacker is None:
            continue
        combined = combine(aggregation, answered, weights, stacker)
        accuracy[aggregation] = _accuracy(combined.probabilities, split.targets)
    return accuracy


def write_evaluation(accuracy: dict[str, float], path: Path) -> None:
    path.write_text(json.dumps(accuracy, indent=2) + "\n")


def _accuracy(probabilities: np.ndarray, targets: np.ndarray) -> float:
    return round(float((probabilities.argmax(axis=1) == targets).mean()), 4)
