"""The JPEG inputs every contender gets: crops of scikit-learn's two sample photos.

Built locally and deterministically (nothing is downloaded): sixteen crops of different
sizes, so decoding and resizing cost what they would for real camera-sized uploads.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

SIZES = ((640, 427), (512, 384), (400, 300), (320, 240))


def jpeg_payloads(count: int = 16, *, seed: int = 0, quality: int = 90) -> list[bytes]:
    from sklearn.datasets import load_sample_images

    photos = [Image.fromarray(image) for image in load_sample_images().images]
    rng = np.random.default_rng(seed)
    payloads = []
    for i in range(count):
        photo = photos[i % len(photos)]
        width, height = SIZES[i % len(SIZES)]
        scale = rng.uniform(0.6, 1.0)
        crop_w, crop_h = int(photo.width * scale), int(photo.height * scale)
        left = int(rng.integers(0, photo.width - crop_w + 1))
        top = int(rng.integers(0, photo.height - crop_h + 1))
        image = photo.crop((left, top, left + crop_w, top + crop_h)).resize((width, height))
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=quality)
        payloads.append(buffer.getvalue())
    return payloads
