"""The benchmark's model for ONNX Runtime: the same TorchScript ResNet-18, exported and
passed through the int8 gate by the service's own code (the onnxruntime answer's
`onnx_export` and `quantization` modules, imported from its rendered project).

The weights are random, so there is no accuracy to keep: the gate's held-out labels are
fp32 ONNX Runtime's own answers on augmented crops of the payload photos, and its
accuracy bound is agreement with fp32 (on this model nearly every input lands in one
class, so it says little). The speed bound is real.

python -m benchmarks.image_classification.onnx_model --checkpoint model.pt --output model.onnx
"""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

import numpy as np
from PIL import Image

from benchmarks.image_classification.model import INPUT_SIZE, MEAN, METADATA, STD
from benchmarks.image_classification.payloads import jpeg_payloads

CALIBRATION = 128
HELD_OUT = 64


def augmented(count: int, seed: int) -> np.ndarray:
    """`count` preprocessed crops and flips of the payload photos, as the service would
    preprocess them."""
    from image_classification.preprocessing import Preprocessing, to_array

    spec = Preprocessing(INPUT_SIZE, 3, MEAN, STD)
    photos = [Image.open(io.BytesIO(p)).convert("RGB") for p in jpeg_payloads()]
    rng = np.random.default_rng(seed)
    items = []
    for i in range(count):
        photo = photos[i % len(photos)]
        scale = rng.uniform(0.5, 1.0)
        width, height = int(photo.width * scale), int(photo.height * scale)
        left = int(rng.integers(0, photo.width - width + 1))
        top = int(rng.integers(0, photo.height - height + 1))
        crop = photo.crop((left, top, left + width, top + height))
        if rng.random() < 0.5:
            crop = crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        items.append(to_array(crop, spec))
    return np.stack(items)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    import torch
    from image_classification.onnx_export import INPUT_NAME, batches, export_onnx
    from image_classification.onnx_model import OnnxModel
    from image_classification.quantization import publish_classifier

    module = torch.jit.load(str(args.checkpoint), map_location="cpu").eval()
    calibration = augmented(CALIBRATION, seed=1)
    held_out = augmented(HELD_OUT, seed=2)
    fp32 = args.output.with_name(f"{args.output.stem}.fp32.onnx")
    exported = export_onnx(
        module,
        fp32,
        example={INPUT_NAME: held_out[:2]},
        metadata=METADATA,
        held_out=batches(held_out),
    )
    labels = OnnxModel.load(fp32).run(held_out).argmax(axis=1)
    gate = publish_classifier(
        fp32,
        args.output,
        calibration=calibration,
        held_out=held_out,
        labels=labels,
        batch_size=args.batch_size,
        threads=args.threads,
    )
    labels_file = args.checkpoint.with_name("labels.txt")
    args.output.with_name("labels.txt").write_bytes(labels_file.read_bytes())
    print(
        json.dumps(
            {
                "published": gate.published,
                "reason": gate.reason,
                "speedup": gate.speedup,
                "max_abs_difference": exported.max_abs_difference,
                "sha256": exported.sha256,
            }
        )
    )


if __name__ == "__main__":
    main()
