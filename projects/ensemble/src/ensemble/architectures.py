"""The demo members' networks: three ways to read an 8x8 digit, so they err differently.

Each takes the 64 pixel intensities of scikit-learn's digits (0 to 16) as they come and
scales them itself, so a member's file is the whole model: the service passes inputs on
untouched, whatever the member.
"""

from __future__ import annotations

import torch
from torch import nn

PIXELS = 64
MAX_INTENSITY = 16.0


class DigitsCNN(nn.Module):
    """Two convolutions over the 8x8 image: sees strokes and their neighbours."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(16, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(0.2), nn.Linear(32 * 4 * 4, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        image = (x / MAX_INTENSITY).reshape(-1, 1, 8, 8)
        return self.head(self.features(image))


class DigitsMLP(nn.Module):
    """One hidden layer over the flat pixels: no notion of neighbourhood."""

    def __init__(self, num_classes: int = 10, hidden: int = 64) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(PIXELS, hidden), nn.ReLU(), nn.Dropout(0.1), nn.Linear(hidden, num_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x / MAX_INTENSITY)


class DigitsLinear(nn.Module):
    """Multinomial logistic regression: the weakest, and the cheapest."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.linear = nn.Linear(PIXELS, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x / MAX_INTENSITY)
