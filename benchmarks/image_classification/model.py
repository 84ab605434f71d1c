"""The benchmark's model: a ResNet-18 written in plain torch, random weights, TorchScript.

torchvision does not import beside the CPU build of torch, so the network is written out
here. It has ResNet-18's layers and cost (about 1.8 GFLOPs, 11.7 M parameters at 224x224);
its weights are random (seeded), which changes nothing about speed. The export is what a
user would hand the service: a TorchScript file with the `metadata.json` extra file the
service reads its preprocessing from, and a labels.txt of 1000 labels beside it.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

INPUT_SIZE = (224, 224)
NUM_CLASSES = 1000
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
METADATA = {
    "name": "resnet18-random",
    "version": "bench-1",
    "architecture": "resnet18",
    "input_size": list(INPUT_SIZE),
    "channels": 3,
    "mean": list(MEAN),
    "std": list(STD),
}


class BasicBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.downsample(x))


class ResNet18(nn.Module):
    def __init__(self, num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, 64, 7, 2, 3, bias=False),
            nn.BatchNorm2d(64),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2, 1),
        )
        widths = (64, 128, 256, 512)
        stages: list[nn.Module] = []
        in_channels = 64
        for i, width in enumerate(widths):
            stride = 1 if i == 0 else 2
            stages += [BasicBlock(in_channels, width, stride), BasicBlock(width, width, 1)]
            in_channels = width
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512, num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.stages(self.stem(x)))
        return self.fc(torch.flatten(x, 1))


def build_checkpoint(directory: Path, *, seed: int = 0) -> Path:
    """Writes model.pt (TorchScript with metadata.json) and labels.txt; returns model.pt."""
    directory.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    model = ResNet18().eval()
    example = torch.zeros((1, 3, *INPUT_SIZE))
    with torch.no_grad():
        scripted = torch.jit.trace(model, example)
    path = directory / "model.pt"
    torch.jit.save(scripted, str(path), _extra_files={"metadata.json": json.dumps(METADATA)})
    labels = "\n".join(f"class_{i:04d}" for i in range(NUM_CLASSES)) + "\n"
    (directory / "labels.txt").write_text(labels)
    return path


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
