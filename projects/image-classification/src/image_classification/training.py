"""Trains the demo model: a small CNN on scikit-learn's bundled digits data, no download.

    python -m image_classification train-demo --output models/demo

Writes the same network in both checkpoint formats the service loads (TorchScript
`model.pt` and safetensors `model.safetensors`, each with its preprocessing metadata),
`labels.txt`, one held-out sample image per class under `samples/`, and `report.json`
with the held-out accuracy. Training takes a few seconds on one CPU core.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors.torch import save_file
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

from image_classification.architectures import DigitsCNN
from image_classification.model import METADATA_FILE, checkpoint_metadata
from image_classification.preprocessing import Preprocessing, to_array

DEMO_PREPROCESSING = Preprocessing(input_size=(32, 32), channels=1, mean=(0.3,), std=(0.4,))
DEMO_LABELS = tuple(str(digit) for digit in range(10))


@dataclass(frozen=True)
class TrainingReport:
    accuracy: float
    train_images: int
    test_images: int
    epochs: int
    seconds: float
    output_dir: Path


def digit_images() -> tuple[list[Image.Image], np.ndarray]:
    """The 1,797 8x8 digits as grayscale images (ink is bright), with their labels."""
    digits = load_digits()
    images = [
        Image.fromarray(np.round(pixels * (255 / 16)).astype(np.uint8), mode="L")
        for pixels in digits.images
    ]
    return images, digits.target.astype(np.int64)


def _shifted(batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random shifts of up to 3 pixels: cheap augmentation against off-centre digits."""
    dy, dx = torch.randint(-3, 4, (2,), generator=generator).tolist()
    return torch.roll(batch, shifts=(dy, dx), dims=(2, 3))


def train_demo_model(output_dir: Path, *, epochs: int = 25, seed: int = 0) -> TrainingReport:
    started = time.perf_counter()
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    previous_threads = torch.get_num_threads()
    # One thread: on small CPUs a tiny network trains many times faster than with several.
    torch.set_num_threads(1)
    try:
        images, targets = digit_images()
        indices = np.arange(len(images))
        train_idx, test_idx = train_test_split(
            indices, test_size=0.25, random_state=seed, stratify=targets
        )
        arrays = torch.from_numpy(
            np.stack([to_array(image, DEMO_PREPROCESSING) for image in images])
        )
        labels = torch.from_numpy(targets)
        model = DigitsCNN(num_classes=len(DEMO_LABELS), in_channels=1)
        optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
        scheduler = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=5e-3, total_steps=epochs * ((len(train_idx) + 63) // 64)
        )
        loss_fn = nn.CrossEntropyLoss()
        train_tensor = torch.from_numpy(train_idx)
        for _ in range(epochs):
            model.train()
            for batch in train_tensor[torch.randperm(len(train_tensor), generator=generator)].split(
                64
            ):
                optimizer.zero_grad()
                loss = loss_fn(model(_shifted(arrays[batch], generator)), labels[batch])
                loss.backward()
                optimizer.step()
                scheduler.step()
        model.eval()
        with torch.inference_mode():
            predicted = model(arrays[test_idx]).argmax(dim=1)
        accuracy = float((predicted == labels[test_idx]).float().mean())
        _write(output_dir, model, images, targets, test_idx)
    finally:
        torch.set_num_threads(previous_threads)
    report = TrainingReport(
        accuracy=accuracy,
        train_images=len(train_idx),
        test_images=len(test_idx),
        epochs=epochs,
        seconds=round(time.perf_counter() - started, 2),
        output_dir=output_dir,
    )
    (output_dir / "report.json").write_text(
        json.dumps({**report.__dict__, "output_dir": str(output_dir)}, indent=2) + "\n"
    )
    return report


def _write(
    output_dir: Path,
    model: nn.Module,
    images: list[Image.Image],
    targets: np.ndarray,
    test_idx: np.ndarray,
) -> None:
    output_dir.mkdir(parents=True, exist_ok=True)
    metadata = json.dumps(checkpoint_metadata("digits-cnn", "1", "digits_cnn", DEMO_PREPROCESSING))
    scripted = torch.jit.script(model)
    torch.jit.save(scripted, str(output_dir / "model.pt"), _extra_files={METADATA_FILE: metadata})
    save_file(
        {name: tensor.contiguous() for name, tensor in model.state_dict().items()},
        str(output_dir / "model.safetensors"),
        metadata={METADATA_FILE: metadata},
    )
    (output_dir / "labels.txt").write_text("\n".join(DEMO_LABELS) + "\n")
    samples = output_dir / "samples"
    samples.mkdir(exist_ok=True)
    for digit in range(len(DEMO_LABELS)):
        index = next(int(i) for i in test_idx if targets[i] == digit)
        images[index].save(samples / f"digit-{digit}.png")
