"""Image decoding and preprocessing, hardened against hostile input.

Every way an upload can be wrong ends in an InvalidInput (422) with its own code: no
bytes, not an image, a truncated file, or a decompression bomb (a small file that
decodes to an enormous pixel count). Decoding checks the pixel count from the header
before any pixels are decoded, and `decoded_bytes` says from the header what decoding
will take, so the service can reserve it first.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from image_classification.errors import InvalidInput

# The service enforces its own pixel limit (APP_MAX_IMAGE_PIXELS) from the header, with
# a clear error; Pillow's process-wide default would pre-empt it with a generic one.
Image.MAX_IMAGE_PIXELS = None
# Bytes per pixel of the modes Pillow keeps in fewer than four.
_BYTES_PER_PIXEL = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16B": 2, "I;16L": 2}


@dataclass(frozen=True)
class Preprocessing:
    """How the checkpoint expects its input: size, colour channels and normalisation."""

    input_size: tuple[int, int]  # (height, width)
    channels: int  # 1 (grayscale) or 3 (RGB)
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def __post_init__(self) -> None:
        if self.channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {self.channels}")
        if len(self.mean) != self.channels or len(self.std) != self.channels:
            raise ValueError("mean and std need one value per channel")
        if min(self.input_size) < 1 or min(self.std) <= 0:
            raise ValueError("input_size must be positive and std above zero")

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.channels, *self.input_size)


def open_image(
    data: bytes, spec: Preprocessing, *, max_pixels: int, name: str = "image"
) -> Image.Image:
    """The image with only its header read, its pixel count checked; a JPEG is set to
    decode at the smallest scale that still covers the model's input (a 4000x3000 photo
    for a 224x224 model decodes at 1/8 of its pixels). Raises InvalidInput."""
    if not data:
        raise InvalidInput(f"{name} is empty (0 bytes)", code="empty_image")
    with _decoding_errors(name):
        image = Image.open(io.BytesIO(data))
        width, height = image.size
        if width * height > max_pixels:
            raise InvalidInput(
                f"{name} is {width}x{height} = {width * height} pixels, "
                f"over the {max_pixels} pixel limit",
                code="image_too_large",
            )
        if image.format == "JPEG":
            side = max(spec.input_size)  # either way round, after an EXIF rotation
            image.draft("L" if spec.channels == 1 else "RGB", (side, side))
    return image


def decoded_bytes(image: Image.Image, spec: Preprocessing) -> int:
    """Memory that decoding an opened image takes at its peak: its pixels, a rotated copy
    and the converted copy (Pillow keeps multi-band pixels in 4 bytes)."""
    pixels = image.size[0] * image.size[1]
    decoded = pixels * _BYTES_PER_PIXEL.get(image.mode, 4)
    return 2 * decoded + pixels * (1 if spec.channels == 1 else 4)


def decode_image(
    data: bytes, spec: Preprocessing, *, max_pixels: int, name: str = "image"
) -> Image.Image:
    """Decodes `data` fully, or raises InvalidInput saying what is wrong with it."""
    image = open_image(data, spec, max_pixels=max_pixels, name=name)
    with _decoding_errors(name):
        image.load()
    return ImageOps.exif_transpose(image)


@contextlib.contextmanager
def _decoding_errors(name: str) -> Iterator[None]:
    """Pillow's errors as InvalidInput with a code for each way an upload can be wrong."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            yield
    except InvalidInput:
        raise
    except UnidentifiedImageError:
        raise InvalidInput(
            f"{name} is not an image in a supported format", code="invalid_image"
        ) from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise InvalidInput(
            f"{name} decodes to too many pixels: {exc}", code="image_too_large"
        ) from None
    except (OSError, SyntaxError, ValueError) as exc:
        # Pillow reports a cut-off file as OSError("image file is truncated ...").
        code = "truncated_image" if "truncated" in str(exc).lower() else "invalid_image"
        raise InvalidInput(f"{name} could not be decoded: {exc}", code=code) from None


def to_array(image: Image.Image, spec: Preprocessing) -> np.ndarray:
    """Resizes and normalises a decoded image into a float32 (C, H, W) array."""
    image = image.convert("L" if spec.channels == 1 else "RGB")
    height, width = spec.input_size
    if image.size != (width, height):
        image = image.resize((width, height), Image.Resampling.BILINEAR)
    pixels = np.asarray(image)
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    # (x / 255 - mean) / std as one multiply and one add, written straight into the
    # channels-first array: five times faster than the textbook expression, which
    # counts once the model itself is fast.
    scale = 1.0 / (255.0 * np.asarray(spec.std, dtype=np.float32))
    offset = -np.asarray(spec.mean, dtype=np.float32) / np.asarray(spec.std, dtype=np.float32)
    array = np.empty((spec.channels, height, width), dtype=np.float32)
    np.multiply(pixels.transpose(2, 0, 1), scale[:, None, None], out=array, casting="unsafe")
    array += offset[:, None, None]
    return array


def preprocess(
    data: bytes, spec: Preprocessing, *, max_pixels: int, name: str = "image"
) -> np.ndarray:
    return to_array(decode_image(data, spec, max_pixels=max_pixels, name=name), spec)
