"""How member answers combine: every function takes each member's class probabilities,
(inputs, classes) arrays in member order, and returns the ensemble's, same shape.

mean and weighted average the probabilities; vote counts each member's top label (the
score is the share of votes, ties going to the label with the higher mean probability);
stacking feeds every member's probabilities to a logistic regression fitted on a held-out
split (`fit-stacker`), which learns how far to trust each member on each label. Stacking
needs every member it was fitted on; without one the weighted mean answers instead.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

AGGREGATIONS = ("mean", "weighted", "vote", "stacking")


def mean(probabilities: Sequence[np.ndarray]) -> np.ndarray:
    return np.mean(np.stack(probabilities), axis=0)


def weighted(probabilities: Sequence[np.ndarray], weights: Sequence[float]) -> np.ndarray:
    w = np.asarray(weights, dtype=np.float64)
    stacked = np.stack(probabilities).astype(np.float64)
    return np.tensordot(w / w.sum(), stacked, axes=1).astype(np.float32)


def vote(probabilities: Sequence[np.ndarray]) -> np.ndarray:
    """Vote shares per label; a tie goes to the label with the higher mean probability."""
    stacked = np.stack(probabilities)
    members = len(stacked)
    votes = np.zeros(stacked.shape[1:], dtype=np.float32)
    for member_probabilities in stacked:
        votes[np.arange(len(votes)), member_probabilities.argmax(axis=1)] += 1
    shares = votes / members
    # Less than half a vote's worth, so the mean only ever breaks ties.
    tie_break = stacked.mean(axis=0) * (0.5 / members)
    winners = (shares + tie_break).argmax(axis=1)
    out = shares.copy()
    # The winner holds the top score even when its share ties another label's.
    out[np.arange(len(out)), winners] += 1e-6
    return np.minimum(out, 1.0)


@dataclass(frozen=True)
class Stacker:
    """A multinomial logistic regression over the members' concatenated probabilities."""

    members: tuple[str, ...]
    labels: tuple[str, ...]
    coef: np.ndarray  # (classes, members * classes)
    intercept: np.ndarray  # (classes,)
    fitted_on: str = ""

    @classmethod
    def load(cls, path: Path) -> Stacker:
        raw = json.loads(path.read_text())
        stacker = cls(
            members=tuple(raw["members"]),
            labels=tuple(raw["labels"]),
            coef=np.asarray(raw["coef"], dtype=np.float64),
            intercept=np.asarray(raw["intercept"], dtype=np.float64),
            fitted_on=str(raw.get("fitted_on", "")),
        )
        classes = len(stacker.labels)
        if stacker.coef.shape != (
            classes,
            classes * len(stacker.members),
        ) or stacker.intercept.shape != (classes,):
            raise ValueError(
                f"{path.name}: coefficients of shape {stacker.coef.shape} do not fit "
                f"{len(stacker.members)} members over {classes} labels"
            )
        return stacker

    def save(self, path: Path) -> None:
        body = {
            "members": list(self.members),
            "labels": list(self.labels),
            "coef": self.coef.round(8).tolist(),
            "intercept": self.intercept.round(8).tolist(),
            "fitted_on": self.fitted_on,
        }
        path.write_text(json.dumps(body) + "\n")

    def missing(self, answered: Mapping[str, np.ndarray]) -> list[str]:
        return [name for name in self.members if name not in answered]

    def combine(self, answered: Mapping[str, np.ndarray]) -> np.ndarray:
        features = np.concatenate([answered[name] for name in self.members], axis=1)
        logits = features.astype(np.float64) @ self.coef.T + self.intercept
        return softmax(logits).astype(np.float32)


@dataclass(frozen=True)
class Combined:
    probabilities: np.ndarray  # (inputs, classes)
    aggregation: str  # the one that answered
    note: str | None = None  # why it is not the one asked for


def combine(
    aggregation: str,
    answered: Mapping[str, np.ndarray],
    weights: Mapping[str, float],
    stacker: Stacker | None,
) -> Combined:
    """The ensemble's probabilities from the members that answered, by `aggregation`."""
    names = list(answered)
    probabilities = [answered[name] for name in names]
    if aggregation == "stacking":
        if stacker is None:
            raise ValueError("no stacker is loaded")
        missing = stacker.missing(answered)
        if not missing:
            return Combined(stacker.combine(answered), "stacking")
        note = f"stacking needs {', '.join(missing)}; the weighted mean answered"
        return Combined(weighted(probabilities, [weights[n] for n in names]), "weighted", note)
    if aggregation == "mean":
        return Combined(mean(probabilities), "mean")
    if aggregation == "weighted":
        return Combined(weighted(probabilities, [weights[n] for n in names]), "weighted")
    if aggregation == "vote":
        return Combined(vote(probabilities), "vote")
    raise ValueError(f"unknown aggregation {aggregation!r}")


def agreement(answered: Mapping[str, np.ndarray], combined: np.ndarray) -> np.ndarray:
    """Per input, the share of members whose top label is the ensemble's."""
    top = combined.argmax(axis=1)
    agrees = [probabilities.argmax(axis=1) == top for probabilities in answered.values()]
    return np.mean(np.stack(agrees), axis=0)


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)
