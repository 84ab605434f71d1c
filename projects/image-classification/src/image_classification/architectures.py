"""Named model architectures, for checkpoints saved as safetensors weights.

A safetensors file holds tensors only, so the service must build the network before it
loads the weights. Name one registered here (APP_MODEL_ARCHITECTURE=digits_cnn), or any
importable factory as `module:function` (`torchvision.models:resnet18`); the factory is
called with `num_classes=<number of labels>`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

import torch
from torch import nn


class DigitsCNN(nn.Module):
    """The demo model: a small CNN for 32x32 single-channel digit images."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 16, kernel_size=3, padding=1),
            nn.BatchNorm2d(16),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(16, 32, kernel_size=3, padding=1),
            nn.BatchNorm2d(32),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, kernel_size=3, padding=1),
            nn.BatchNorm2d(64),
            nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool2d(1),
        )
        self.classifier = nn.Sequential(nn.Flatten(), nn.Dropout(0.2), nn.Linear(64, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


ARCHITECTURES: dict[str, Callable[..., nn.Module]] = {
    "digits_cnn": DigitsCNN,
}


def build_model(name: str, *, num_classes: int, in_channels: int) -> nn.Module:
    """Builds architecture `name` with freshly initialised weights."""
    if name in ARCHITECTURES:
        return ARCHITECTURES[name](num_classes=num_classes, in_channels=in_channels)
    module_name, sep, attr = name.partition(":")
    if not sep or not module_name or not attr:
        known = ", ".join(sorted(ARCHITECTURES))
        raise ValueError(f"unknown architecture {name!r}: use one of {known} or 'module:function'")
    factory = getattr(importlib.import_module(module_name), attr)
    return factory(num_classes=num_classes)
