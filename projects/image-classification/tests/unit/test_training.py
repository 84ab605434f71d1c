"""The demo model trains offline from scikit-learn's digits and generalises."""

from __future__ import annotations

import json

from image_classification.training import TrainingReport


def test_the_demo_model_reaches_95_percent_held_out_accuracy(demo_model: TrainingReport) -> None:
    assert demo_model.accuracy >= 0.95
    assert demo_model.test_images >= 400
    assert demo_model.train_images + demo_model.test_images == 1797


def test_training_writes_both_checkpoints_labels_and_samples(demo_model: TrainingReport) -> None:
    out = demo_model.output_dir
    for name in ("model.pt", "model.safetensors", "labels.txt", "report.json"):
        assert (out / name).stat().st_size > 0, name
    assert (out / "labels.txt").read_text().split() == [str(d) for d in range(10)]
    assert sorted(p.name for p in (out / "samples").iterdir()) == [
        f"digit-{d}.png" for d in range(10)
    ]
    assert json.loads((out / "report.json").read_text())["accuracy"] == demo_model.accuracy
