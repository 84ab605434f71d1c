"""The aggregations on hand-made member answers, where the right result is known."""

from __future__ import annotations

import numpy as np
import pytest

from ensemble.aggregation import Stacker, agreement, combine, mean, vote, weighted


def probs(*rows: list[float]) -> np.ndarray:
    return np.asarray(rows, dtype=np.float32)


A = probs([0.6, 0.3, 0.1], [0.2, 0.2, 0.6])
B = probs([0.1, 0.8, 0.1], [0.1, 0.1, 0.8])
C = probs([0.5, 0.4, 0.1], [0.3, 0.6, 0.1])


def test_mean_and_weighted_mean() -> None:
    np.testing.assert_allclose(mean([A, B]), (A + B) / 2, rtol=1e-6)
    np.testing.assert_allclose(weighted([A, B], [3, 1]), 0.75 * A + 0.25 * B, rtol=1e-6)
    # Weights are relative: scaling them all changes nothing.
    np.testing.assert_allclose(weighted([A, B], [30, 10]), weighted([A, B], [3, 1]), rtol=1e-6)


def test_vote_counts_top_labels_and_breaks_ties_by_mean_probability() -> None:
    shares = vote([A, B, C])
    # Input 0: A and C vote 0, B votes 1. Input 1: A and B vote 2, C votes 1.
    assert shares.argmax(axis=1).tolist() == [0, 2]
    assert shares[0, 0] == pytest.approx(2 / 3, abs=1e-5)
    tied = vote([A, B])  # input 0: one vote each for 0 and 1; B's 0.8 makes 1 win
    assert tied.argmax(axis=1).tolist() == [1, 2]
    assert tied[0, 1] == pytest.approx(0.5, abs=1e-5)


def test_agreement_is_the_share_of_members_on_the_combined_label() -> None:
    answered = {"a": A, "b": B, "c": C}
    combined = vote(list(answered.values()))
    np.testing.assert_allclose(agreement(answered, combined), [2 / 3, 2 / 3])


def test_stacking_applies_its_regression_and_falls_back_without_a_member(tmp_path) -> None:  # type: ignore[no-untyped-def]
    # A regression that trusts member b alone: the identity on b's block.
    coef = np.hstack([np.zeros((3, 3)), np.eye(3) * 10])
    stacker = Stacker(("a", "b"), ("x", "y", "z"), coef, np.zeros(3))
    stacker.save(tmp_path / "stacker.json")
    loaded = Stacker.load(tmp_path / "stacker.json")
    weights = {"a": 1.0, "b": 1.0}
    both = combine("stacking", {"a": A, "b": B}, weights, loaded)
    assert both.aggregation == "stacking"
    assert both.probabilities.argmax(axis=1).tolist() == [1, 2]
    alone = combine("stacking", {"a": A}, weights, loaded)
    assert alone.aggregation == "weighted"
    assert "needs b" in (alone.note or "")
    np.testing.assert_allclose(alone.probabilities, A, rtol=1e-6)


def test_a_stacker_of_the_wrong_shape_is_refused(tmp_path) -> None:  # type: ignore[no-untyped-def]
    Stacker(("a",), ("x", "y"), np.zeros((2, 3)), np.zeros(2)).save(tmp_path / "s.json")
    with pytest.raises(ValueError, match="do not fit"):
        Stacker.load(tmp_path / "s.json")
